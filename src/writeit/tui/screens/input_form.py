"""The input form: the pipeline's inputs, a style primer and the models, then Start.

The form is often the first screen (`writeit run PIPELINE`), so it opens while the
writer is already typing and while `llm` is still loading its plugins: keys that arrive
before the form has focus are held and replayed into it, and Start waits for the model
list rather than judging the models against a half-loaded `llm`.
"""

from __future__ import annotations

import asyncio
import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static, TextArea

from writeit.models import PipelineConfiguration, WriteItError
from writeit.providers import OFFLINE_MODEL
from writeit.tui import keys
from writeit.tui.screens.early_keys import HoldsEarlyKeys


def uniform_models(pipeline: PipelineConfiguration) -> list[str] | None:
    """The models every step asks, when all steps ask the same ones."""
    lists = {tuple(pipeline.models_for(step)) for step in pipeline.steps}
    return list(lists.pop()) if len(lists) == 1 else None


def parse_models(text: str) -> list[str]:
    return [m for m in re.split(r"[,\s]+", text.strip()) if m]


def _check_models(models: list[str]) -> None:
    from writeit.engine import check_model

    for name in dict.fromkeys(models):
        check_model(name)


def _provider_facts() -> tuple[bool, list[str]]:
    """Whether a real provider is configured, and the usable model ids (one `llm` pass)."""
    from writeit import providers

    infos = providers.list_models()
    usable = [m.model_id for m in infos if m.usable]
    return providers.has_real_provider(infos), usable


START_LABEL = "Start (Ctrl+S)"


class InputFormScreen(HoldsEarlyKeys[None]):
    ACTION_IDS = ("start", "cancel")
    BINDINGS = [
        *keys.bindings(*ACTION_IDS),
        # Q types a q here, so the footer names the key that quits from a text box too.
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # -short: smaller text boxes

    def __init__(
        self,
        pipeline: str,
        inputs: dict[str, str],
        style: str | None,
        models: list[str],
        blind: bool | None = None,
        budget: float | None = None,
    ) -> None:
        super().__init__()
        self.given_blind = blind
        self.given_budget = budget
        self.pipeline_name = pipeline
        self.given_inputs = inputs
        self.given_style = style
        self.given_models = models
        self.pipeline: PipelineConfiguration | None = None
        self.problem = ""
        self._starting = False
        self._models_listed = asyncio.Event()  # set when the model list is in (or failed)

    def compose(self) -> ComposeResult:
        from writeit import config

        engine = self.app.engine
        try:
            self.pipeline = config.get_pipeline(self.pipeline_name, engine.pipeline_dirs())
        except WriteItError as error:
            self.problem = str(error)
        yield Static(id="form-title", classes="screen-title")
        with VerticalScroll(id="form"):
            if self.pipeline is None:
                yield Static(self.problem, classes="error", markup=False)
                yield Footer(compact=True)
                return
            yield Static("", id="offline-note", classes="notice")
            for spec in self.pipeline.inputs:
                label = spec.display_label + (" *" if spec.required else "")
                yield Label(label, classes="field-label", markup=False)
                if spec.help:
                    yield Static(spec.help, classes="field-help", markup=False)
                value = self.given_inputs.get(spec.name, spec.default or "")
                widget_id = f"input-{spec.name}"
                if spec.type == "choice" and spec.options:
                    options = [(o, o) for o in spec.options]
                    chosen = value if value in spec.options else Select.NULL
                    yield Select(options, value=chosen, allow_blank=not spec.required, id=widget_id)
                elif spec.is_multiline:
                    area = TextArea(value, id=widget_id, classes="long-input", soft_wrap=True)
                    area.border_subtitle = "Tab leaves the box"
                    yield area
                else:
                    yield Input(value, id=widget_id, placeholder=spec.default or "")
                yield Static("", id=f"error-{spec.name}", classes="field-error")
            yield Label("Style primer", classes="field-label")
            yield Static("Sent as the system prompt of every step.", classes="field-help")
            yield Select([], id="style", allow_blank=True, prompt="No style primer")
            yield Label("Models", classes="field-label")
            yield Static(
                "One candidate per model at every step, side by side; repeat a model for "
                "more candidates (markov, markov). Empty: the pipeline's own models.",
                classes="field-help",
            )
            yield Input(
                self._default_models_text(),
                id="models",
                placeholder=self._models_placeholder(),
                select_on_focus=False,
            )
            yield Static("", id="error-models", classes="field-error")
            yield Static("", id="models-note", classes="field-help")
            blind = self.given_blind
            yield Checkbox(
                "Blind review: candidates shuffled, models hidden until you choose",
                value=engine.preferences.blind_review if blind is None else blind,
                id="blind",
                compact=True,
            )
            yield Label("Budget (USD)", classes="field-label")
            yield Static(
                "The most the run may spend: it pauses before a step that would go past it. "
                "Empty: no limit.",
                classes="field-help",
            )
            yield Input(self._budget_text(), id="budget", placeholder="no limit", compact=True)
            yield Static("", id="error-budget", classes="field-error")
            yield Static("", id="forecast", classes="field-help")
        # Outside the scroll: Start and what it is doing stay in sight on a short terminal.
        with Horizontal(classes="buttons", id="form-buttons"):
            yield Button(START_LABEL, variant="primary", id="start", compact=True)
            yield Button("Cancel (Esc)", id="cancel", compact=True)
            yield Static("", id="error-form", classes="field-error")
        yield Footer(compact=True)

    def _default_models_text(self) -> str:
        if self.given_models:
            return ", ".join(self.given_models)
        assert self.pipeline is not None
        uniform = uniform_models(self.pipeline)
        if uniform == [OFFLINE_MODEL]:
            # Offline, a newcomer still sees candidates side by side (as `make run` does).
            uniform = [OFFLINE_MODEL] * 2
        return ", ".join(uniform) if uniform else ""

    def _budget_text(self) -> str:
        budget = self.given_budget
        if budget is None:
            budget = self.app.engine.preferences.default_budget_usd
        return "" if budget is None else f"{budget:g}"

    def _budget(self) -> float | None:
        """The budget typed in (None: no limit); a ValueError says what is wrong."""
        text = self.query_one("#budget", Input).value.strip().lstrip("$")
        if not text:
            return None
        value = float(text)
        if value < 0 or value != value:
            raise ValueError("a budget is an amount of 0 or more")
        return value

    # --- the forecast: what the whole run will cost, as the form stands --------------------

    @on(Input.Changed)
    @on(TextArea.Changed)
    @on(Select.Changed)
    def _form_changed(self) -> None:
        if self.pipeline is not None and self.is_mounted:
            self.run_worker(
                self._show_forecast, group="forecast", exclusive=True, exit_on_error=False
            )

    async def _show_forecast(self) -> None:
        """Forecast the run once the typing pauses (the worker is replaced on each key)."""
        await asyncio.sleep(0.3)
        await self._models_listed.wait()  # llm's models must be in to price them
        style_value = self.query_one("#style", Select).value
        style = "" if style_value == Select.NULL else str(style_value)
        engine = self.app.engine
        try:
            ahead = engine.forecast(
                pipeline=self.pipeline, inputs=self._values(), style=style, models=self._models()
            )
        except WriteItError as error:
            self.query_one("#forecast", Static).update(f"Forecast: {error}")
            return
        self.query_one("#forecast", Static).update(self._forecast_text(ahead))

    def _forecast_text(self, ahead) -> str:
        from writeit.tui import format as fmt

        if ahead.cost == 0:
            return "Forecast: $0, these models are free (offline)."
        whole = fmt.forecast(ahead.cost, ahead.low, ahead.high, ahead.estimated)
        steps = " · ".join(
            f"{name} {fmt.cost(part.cost) if part.cost is not None else 'unknown'}"
            for name in ahead.steps
            for part in [ahead.step(name)]
        )
        text = f"Forecast for the whole run: [b]{whole}[/b]  ({steps})"
        try:
            budget = self._budget()
        except ValueError:
            budget = None
        if budget is not None and ahead.cost is not None and ahead.cost > budget:
            text += f"\n[yellow]Over the budget of {fmt.cost(budget)}: the run would pause.[/]"
        if ahead.unpriced:
            text += f"\nNo known price for {', '.join(ahead.unpriced)}."
        return text

    def _models_placeholder(self) -> str:
        assert self.pipeline is not None
        return "; ".join(
            f"{s.name}: {', '.join(self.pipeline.models_for(s))}" for s in self.pipeline.steps
        )

    async def on_mount(self) -> None:
        title = self.query_one("#form-title", Static)
        if self.pipeline is None:
            title.update(f"Cannot start [b]{self.pipeline_name}[/b]")
            self.release_keys()
            return
        title.update(
            f"New [b]{self.pipeline.name}[/b] run  ·  {self.pipeline.description}  ·  "
            f"steps: {' → '.join(self.pipeline.step_names)}"
        )
        self.query_one("#offline-note").display = False
        # Not scrolled to: the top of the form (and the offline note, if any) stays in view.
        self.set_focus(self.query(".long-input, Input").first(), scroll_visible=False)
        self.release_keys()
        self.run_worker(self._fill_styles(), group="form", exit_on_error=False)
        self.run_worker(self._provider_note(), group="form", exit_on_error=False)
        self.run_worker(self._show_forecast, group="forecast", exclusive=True, exit_on_error=False)

    async def _fill_styles(self) -> None:
        from writeit import config

        engine = self.app.engine
        entries = await asyncio.to_thread(config.list_styles, engine.style_dirs())
        options = [
            (f"{e.name}: {e.item.description}" if e.item.description else e.name, e.name)
            for e in entries
            if e.item is not None
        ]
        select = self.query_one("#style", Select)
        select.set_options(options)
        wanted = (
            self.given_style if self.given_style is not None else engine.preferences.style_primer
        )
        if wanted and any(value == wanted for _, value in options):
            select.value = wanted

    async def _provider_note(self) -> None:
        """List the models once `llm` has loaded its plugins; Start waits for this."""
        try:
            await self._show_providers()
        finally:
            self._models_listed.set()

    async def _show_providers(self) -> None:
        from writeit.providers import OFFLINE_MODEL

        try:
            real, usable = await asyncio.to_thread(_provider_facts)
        except Exception as error:  # llm misconfigured: say so, the form still works
            self.query_one("#models-note", Static).update(f"Could not list models: {error}")
            return
        offline = self.query_one("#offline-note", Static)
        if not real:
            offline.update(
                f"No provider key is configured: runs use the offline model "
                f"[b]{OFFLINE_MODEL}[/b], which strings together words from your prompt "
                "(good for trying WriteIt, not for real articles). To add a provider, run "
                "[b]llm keys set openai[/b] in a shell, then put [b]gpt-4o-mini[/b] in Models."
            )
        offline.display = not real
        shown = ", ".join(usable[:10]) + (" …" if len(usable) > 10 else "")
        self.query_one("#models-note", Static).update(
            f"Usable now: {shown}  (all of them: writeit models)"
        )

    # --- starting --------------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        assert self.pipeline is not None
        values = {}
        for spec in self.pipeline.inputs:
            widget = self.query_one(f"#input-{spec.name}")
            if isinstance(widget, TextArea):
                values[spec.name] = widget.text
            elif isinstance(widget, Select):
                values[spec.name] = "" if widget.value == Select.NULL else str(widget.value)
            else:
                assert isinstance(widget, Input)
                values[spec.name] = widget.value
        return values

    def _clear_errors(self) -> None:
        for error in self.query(".field-error"):
            assert isinstance(error, Static)
            error.update("")
            error.remove_class("-shown", "-busy")

    def _error(self, where: str, message: str) -> None:
        error = self.query_one(f"#error-{where}", Static)
        error.update(message)
        error.set_class(bool(message), "-shown")
        error.remove_class("-busy")

    def _busy(self, message: str) -> None:
        """What Start is doing now, next to the button (not styled as an error)."""
        self._error("form", message)
        self.query_one("#error-form").add_class("-busy")

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.app.to_run_list()

    def action_start(self) -> None:
        """Read and check the form now; the models and the engine are waited for in a
        worker, since a key binding's action is awaited by the app and would hold every
        other key meanwhile."""
        if self.pipeline is None or self._starting:
            return
        self._clear_errors()
        values = self._values()
        if not self._inputs_given(values):
            return
        style_value = self.query_one("#style", Select).value
        style = "" if style_value == Select.NULL else str(style_value)
        try:
            budget = self._budget()
        except ValueError as error:
            self._error("budget", f"Budget: {error}")
            self.query_one("#budget", Input).focus()
            return
        self._starting = True
        work = self._start(values, style, self._models(), budget)
        self.run_worker(work, group="start", exit_on_error=False)

    def _models(self) -> list[str]:
        """The models typed in; none when they are the pipeline's own, so a run keeps
        per-step models if the pipeline changes."""
        assert self.pipeline is not None
        models = parse_models(self.query_one("#models", Input).value)
        return [] if models == uniform_models(self.pipeline) else models

    def _label_start(self, label: str) -> None:
        for button in self.query("#start").results(Button):  # gone once the run opened
            button.label = label

    async def _start(
        self, values: dict[str, str], style: str, models: list[str], budget: float | None = None
    ) -> None:
        assert self.pipeline is not None
        steps = self.pipeline.steps
        check = models or [m for s in steps for m in self.pipeline.models_for(s)]
        try:
            if await self._models_usable(check):
                await self._begin(values, style, models, budget)
        finally:
            self._starting = False
            self._label_start(START_LABEL)

    def _inputs_given(self, values: dict[str, str]) -> bool:
        """Mark every required input left empty; focus the first."""
        assert self.pipeline is not None
        missing = [s for s in self.pipeline.inputs if s.required and not values[s.name].strip()]
        for spec in missing:
            self._error(spec.name, f"{spec.display_label} is required.")
        if missing:
            self.query_one(f"#input-{missing[0].name}").focus()
        return not missing

    async def _models_usable(self, models: list[str]) -> bool:
        """Check the models once the model list is in. Until then `llm` may still be
        registering its plugins' models (it loads them in another thread at start-up),
        and a model the writer configured would be called unknown."""
        self._label_start("Checking models…")
        if not self._models_listed.is_set():
            self._busy("Checking models… (waiting for the list of installed models)")
            await self._models_listed.wait()
        self._busy("Checking models…")
        try:
            await asyncio.to_thread(_check_models, models)
        except WriteItError as error:
            self._error("form", "")
            self._error("models", str(error))
            self.query_one("#models", Input).focus()
            return False
        return True

    async def _begin(
        self, values: dict[str, str], style: str, models: list[str], budget: float | None = None
    ) -> None:
        assert self.pipeline is not None
        self._label_start("Starting…")
        self._busy("Starting…")
        try:
            run = await self.app.engine.start_run(
                self.pipeline_name,
                values,
                style=style,
                models=models,
                blind=self.query_one("#blind", Checkbox).value,
                budget_usd=budget,
            )
        except WriteItError as error:
            message = str(error)
            self._error("form", message)
            for spec in self.pipeline.inputs:
                if message.startswith(spec.name) or f"; {spec.name}" in message:
                    self._error(spec.name, message.split("\n")[0])
            return
        self.app.open_run(run.pipeline_run_id, start=True)
