"""The merge view: tick two or more candidates, then let a model merge them (streamed)
with an instruction, or write the merged text by hand; edit it and use it.

Dismisses with the id of the run that holds the merge (a branch when the step had
already been built on), or None when nothing was merged.

The text in the editor is kept as a draft (`merge:<step>`) while it is typed and comes
back in the editor when the merge view opens again; it goes once the merge is done.
"""

from __future__ import annotations

import asyncio

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, SelectionList, Static, TextArea
from textual.widgets.selection_list import Selection

from writeit.models import AIResponse, PipelineRun, ResponseStatus, StepState
from writeit.providers import ProviderError
from writeit.tui import drafts, keys
from writeit.tui import format as fmt
from writeit.tui.messages import EngineUpdated
from writeit.tui.widgets.candidate import CandidatePane

PLACEHOLDER = """\
**Merge with a model:** tick two or more candidates (Space), write an instruction,
and press **{merge_ai}**: the merged text streams here, then you can edit it.

**Merge by hand:** tick the candidates to start from and press **{merge_edit}**; edit the
text, then **{merge_use}** uses it for this step.
"""


class MergeScreen(keys.SaysWhy, Screen[str | None]):
    ACTION_IDS = ("merge_ai", "merge_edit", "merge_use", "merge_diff", "close")
    BINDINGS = keys.bindings(*ACTION_IDS)

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: PipelineRun | None = None
        self.phase = "choose"  # choose -> merging -> edit
        self.merge_response_id: str | None = None
        self.merged_text: str | None = None  # what the AI merge produced and the step holds
        self.result_run_id: str | None = None
        self._streaming = False
        self._seeded: str | None = None  # the text the editor was filled with, not typed

    def _hint(self, text: str) -> str:
        return keys.hint(text, self.app.keymap)

    def compose(self) -> ComposeResult:
        yield Static("", id="merge-title", classes="screen-title")
        with Horizontal(id="merge-body"):
            with Vertical(id="merge-left"):
                yield Label("Candidates to merge (Space ticks)", classes="field-label")
                yield SelectionList[str](id="sources", compact=True)
                yield Label("Instruction for the AI merge", classes="field-label")
                yield Input(
                    placeholder="e.g. Structure of 1, examples of 2; keep it short",
                    id="instruction",
                    compact=True,
                )
                yield Label("Model that merges", classes="field-label")
                yield Select([], id="merge-model", prompt="model", compact=True)
                yield Static("", id="merge-error", classes="field-error")
                with Horizontal(classes="buttons"):
                    ai, hand = self._hint("AI merge {merge_ai}"), self._hint("By hand {merge_edit}")
                    yield Button(ai, variant="primary", id="ai", compact=True)
                    yield Button(hand, id="hand", compact=True)
            with Vertical(id="merge-right"):
                yield CandidatePane(None, None, label="merged text")
                yield TextArea("", id="merge-editor", soft_wrap=True)
                with Horizontal(classes="buttons"):
                    use = self._hint("Use this text {merge_use}")
                    yield Button(use, variant="success", id="use", compact=True)
                    yield Button(self._hint("Cancel ({close})"), id="cancel", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        run = await asyncio.to_thread(self.app.engine.load, self.run_id)
        self.run = run
        step = run.current
        done = [
            (number, r)
            for number, r in enumerate(step.candidates, 1)
            if r.status == ResponseStatus.COMPLETED
        ]
        self.query_one("#merge-title", Static).update(
            f"Merge candidates of [b]{run.current_step}[/b]  ·  run {fmt.short(run.pipeline_run_id)}"
            f"  ·  {len(done)} completed"
        )
        sources = self.query_one("#sources", SelectionList)
        for number, response in done:
            sources.add_option(
                Selection(_label(number, step, response), response.response_id, True)
            )
        models = list(dict.fromkeys(r.model_name for _, r in done))
        if step.hidden:  # in candidate order they would say which model wrote which
            models.sort()
        select = self.query_one("#merge-model", Select)
        select.set_options([(m, m) for m in models])
        if models:
            select.value = models[0]
        self.query_one("#merge-editor").display = False
        pane = self.query_one(CandidatePane)
        pane.show_text(self._hint(PLACEHOLDER))
        sources.focus()
        self.set_interval(1 / 30, self._flush)
        self._update_buttons()
        self._restore_draft(run)

    def _reveal(self, step: StepState) -> None:
        """The step is decided: a blind one's sources now name their models."""
        sources = self.query_one("#sources", SelectionList)
        numbered = {r.response_id: (n, r) for n, r in enumerate(step.candidates, 1)}
        for index in range(sources.option_count):
            found = numbered.get(sources.get_option_at_index(index).value)
            if found is not None:
                sources.replace_option_prompt_at_index(index, _label(found[0], step, found[1]))

    # --- the draft -------------------------------------------------------------------------

    def _draft(self) -> tuple[str, str]:
        """(run id, draft name): the run the merge lands in, once an AI merge made one."""
        assert self.run is not None
        return self.result_run_id or self.run_id, drafts.name("merge", self.run.current_step)

    def _restore_draft(self, run: PipelineRun) -> None:
        """Unsent merge text goes back into the editor. When the step's choice is an AI
        merge, the draft is taken as the writer's edit of it (what typing after an AI
        merge makes), so using it records "merged by X, edited by hand"."""
        text = self.app.drafts.get(*self._draft())
        step = run.current
        if not text.strip() or text.strip() == (step.merged_content or "").strip():
            return
        decision = step.decision
        if decision is not None and decision.how == "merged" and decision.merge_response_id:
            self.merged_text = step.merged_content or ""
            self.merge_response_id = decision.merge_response_id
            pane = self.query_one(CandidatePane)
            pane.show_text(self.merged_text)
            pane.label = f"{fmt.provenance(step)}: chosen for this step"
            pane.selected = True
            pane.update_meta()
        self._edit(text, seeded=False)
        self.app.say(
            f"Your unsent merge text for {run.current_step} is back in the editor. "
            + self._hint("{merge_use} uses it; {close} keeps it for later.")
        )

    @on(TextArea.Changed, "#merge-editor")
    def _typed(self) -> None:
        if self.run is None or self.phase != "edit":
            return
        text = self.query_one("#merge-editor", TextArea).text
        self.app.drafts.typed(*self._draft(), "" if text == self._seeded else text)

    def _update_buttons(self) -> None:
        self.query_one("#ai", Button).disabled = self.phase == "merging"
        self.query_one("#hand", Button).disabled = self.phase == "merging"
        self.query_one("#use", Button).disabled = self.phase != "edit"
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Shown dimmed while it cannot act (the key then says why: `why_not`)."""
        return None if self.why_not(action, parameters) else True

    def why_not(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        if action in ("merge_ai", "merge_edit") and self.phase == "merging":
            return "The AI merge is still writing; its text comes here."
        if action == "merge_diff" and len(self._ticked()) != 2:
            return "Tick two candidates (Space) to see what they differ in."
        if action == "merge_use" and self.phase != "edit":
            return self._hint(
                "Nothing to use yet: {merge_ai} merges with a model, {merge_edit} by hand."
            )
        return None

    def _ticked(self) -> list[str]:
        return list(self.query_one("#sources", SelectionList).selected)

    def _error(self, message: str) -> None:
        self.query_one("#merge-error", Static).update(message)

    # --- diff ------------------------------------------------------------------------------

    def action_merge_diff(self) -> None:
        """The two ticked candidates word by word, in the order of their numbers."""
        from writeit.tui.screens.diff import Compared, DiffScreen

        ids = self._ticked()
        if self.run is None or len(ids) != 2:
            return  # the key said why (`why_not`)
        step = self.run.current
        numbered = sorted((n, r) for n, r in enumerate(step.candidates, 1) if r.response_id in ids)
        old, new = (
            Compared(f"candidate {n} ({step.author(r)})", r.processed_content) for n, r in numbered
        )
        where = f"merging {self.run.current_step} · run {fmt.short(self.run_id)}"
        self.app.push_screen(DiffScreen(old, new, where=where))

    # --- AI merge --------------------------------------------------------------------------

    @on(Button.Pressed, "#ai")
    def _ai_pressed(self) -> None:
        self.action_merge_ai()

    def action_merge_ai(self) -> None:
        if self.phase == "merging":
            return
        ids = self._ticked()
        if len(ids) < 2:
            self._error("Tick two or more candidates for an AI merge (or write it by hand).")
            return
        self._error("")
        instruction = self.query_one("#instruction", Input).value.strip() or None
        model = self.query_one("#merge-model", Select).value
        self.phase = "merging"
        self._streaming = True
        self.merge_response_id = None
        pane = self.query_one(CandidatePane)
        pane.label = f"AI merge by {model}: streaming…"
        pane.update_meta()
        self._update_buttons()
        self.app.call(self._merge(ids, instruction, str(model)))

    async def _merge(self, ids: list[str], instruction: str | None, model: str) -> None:
        engine = self.app.engine
        run_id = self.result_run_id or self.run_id

        async def merge() -> PipelineRun:
            try:
                return await engine.merge(run_id, ids, instruction=instruction, model=model)
            except ProviderError as error:  # the failed merge is kept, maybe on a new branch
                self.result_run_id = error.run_id or self.result_run_id
                raise

        run = await self.app.attempt(merge(), title="Merge")
        pane = self.query_one(CandidatePane)
        if run is None:
            self._streaming = False
            self.phase = "choose"
            pane.label = "merged text"
            pane.update_meta()
            self._update_buttons()
            return
        step = run.steps[run.current_step]
        self.merged_text = step.merged_content or ""
        self.result_run_id = run.pipeline_run_id
        if step.decision is not None and step.decision.merge_response_id:
            self.merge_response_id = step.decision.merge_response_id
        self._streaming = False  # the tick stops writing into the pane
        pane.show_text(self.merged_text)
        pane.label = f"AI merge by {model}: chosen for this step"
        self._reveal(step)
        pane.selected = True
        pane.update_meta()
        self._edit(self.merged_text)
        self.app.say(
            self._hint(
                "The merged text is now this step's choice. Edit it below and press "
                "{merge_use}, or {close} to keep it as it is."
            )
        )

    @on(EngineUpdated)
    def _engine_updated(self, message: EngineUpdated) -> None:
        data = message.update.data
        if (
            self.phase == "merging"
            and message.kind == "response_started"
            and data.get("kind") == "merge"
        ):
            self.merge_response_id = data["response_id"]

    async def _flush(self) -> None:
        if self._streaming:
            rid = self.merge_response_id
            text = self.app.live_text.get(rid, "") if rid else ""
            self.query_one(CandidatePane).show_text(text, live=True)

    # --- by hand ---------------------------------------------------------------------------

    @on(Button.Pressed, "#hand")
    def _hand_pressed(self) -> None:
        self.action_merge_edit()

    def action_merge_edit(self) -> None:
        if self.phase == "merging" or self.run is None:
            return
        if self.phase == "edit":
            self.query_one("#merge-editor", TextArea).focus()
            return
        ids = self._ticked()
        if not ids:
            self._error("Tick at least one candidate to start from.")
            return
        self._error("")
        step = self.run.current
        texts = [step.response(i).processed_content for i in ids]
        self._edit("\n\n---\n\n".join(texts))

    def _edit(self, text: str, *, seeded: bool = True) -> None:
        """Open the editor on `text`; `seeded`: filled by the view, not typed (no draft)."""
        self.phase = "edit"
        self._seeded = text if seeded else None
        editor = self.query_one("#merge-editor", TextArea)
        editor.border_title = self._hint("Edit the merged text; {merge_use} uses it")
        editor.text = text
        self.query_one("#cancel", Button).label = self._hint("Close ({close})")
        editor.display = True
        self.query_one(CandidatePane).display = self.merged_text is not None
        editor.focus()
        self._update_buttons()

    # --- finishing -------------------------------------------------------------------------

    @on(Button.Pressed, "#use")
    def _use_pressed(self) -> None:
        self.action_merge_use()

    def action_merge_use(self) -> None:
        if self.phase != "edit":
            return
        text = self.query_one("#merge-editor", TextArea).text.strip()
        if not text:
            self._error("The merged text is empty.")
            return
        if self.merged_text is not None and text == self.merged_text.strip():
            self.app.call(self._done(self.result_run_id))
            return
        self.app.call(self._use(text))

    async def _use(self, text: str) -> None:
        engine = self.app.engine
        run_id = self.result_run_id or self.run_id
        ids = self._ticked()
        edited = self.merge_response_id if self.merged_text is not None else None
        await self.app.drafts.keep(*self._draft())  # kept until the merge is in the run
        run = await self.app.attempt(
            engine.merge(run_id, ids, text=text, edited_from=edited), title="Merge"
        )
        if run is not None:
            how = fmt.provenance(run.current)
            self.app.say(self._hint(f"Chosen for {run.current_step}: {how}. {{accept}} goes on."))
            await self._done(run.pipeline_run_id)

    async def _done(self, run_id: str | None) -> None:
        """The merge is the step's choice: its draft goes, and so does this view."""
        await self.app.drafts.given(*self._draft())
        if run_id is not None and run_id != (self.result_run_id or self.run_id):
            await self.app.drafts.given(run_id, self._draft()[1])
        self.dismiss(run_id)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_close()

    def action_close(self) -> None:
        if self.phase == "merging":
            self.app.say("The AI merge goes on in the background; its result becomes the choice.")
        if self.run is not None:  # leaving the editor: what was typed is kept now
            self.app.call(self.app.drafts.keep(*self._draft()))
        self.dismiss(self.result_run_id)

    async def before_quit(self) -> None:
        """Quitting: the editor's text, as it is now, is kept."""
        if self.run is not None:
            self._typed()
            await self.app.drafts.keep(*self._draft())


def _label(number: int, step: StepState, response: AIResponse) -> str:
    return f"{number} · {step.author(response)}: {fmt.one_line(response.processed_content, 40)}"
