"""WriteItApp: the screens over one engine, its update stream and the writer's keys.

The app owns the engine and one subscription to every run. Token deltas are
collected into `live_text` (read by the step view once per frame); every other
update is posted to the screens as an `EngineUpdated` message. Screens call the
engine through `attempt()`, which turns errors into notifications.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker

from writeit.engine import Busy, Engine
from writeit.models import ResponseStatus, WriteItError
from writeit.tui import keys
from writeit.tui.commands import ActionsProvider
from writeit.tui.drafts import Drafts, describe
from writeit.tui.format import short
from writeit.tui.live import LiveText
from writeit.tui.messages import EngineUpdated
from writeit.tui.screens.dialogs import FatalScreen
from writeit.tui.screens.export import ExportDialog
from writeit.tui.screens.help import SCREEN_SECTION, HelpScreen
from writeit.tui.screens.history import HistoryScreen
from writeit.tui.screens.input_form import InputFormScreen
from writeit.tui.screens.merge import MergeScreen
from writeit.tui.screens.new_run import NewRunDialog
from writeit.tui.screens.run_list import RunListScreen
from writeit.tui.screens.step_view import StepScreen
from writeit.updates import Update

T = TypeVar("T")
log = logging.getLogger(__name__)

# Every screen with keys of its own, for refusing a remap onto a key already in use there.
KEYED_SCREENS = (
    RunListScreen,
    InputFormScreen,
    StepScreen,
    MergeScreen,
    HistoryScreen,
    ExportDialog,
)


@functools.cache  # once a process: later apps (the tests start many) add nothing to it
def settle_heap() -> None:
    """Collect start-up garbage once, then move what is left (modules, classes, the
    engine) out of the garbage collector's sight.

    Python's full collections walk every tracked object; with Textual, llm and pydantic
    loaded that is a few hundred thousand, and a pass took 60-140 ms: the longest stalls
    of a streaming view (a pane fell behind its stream by as much). What is frozen here
    lives as long as the process anyway; widgets are created later and stay collectable.
    """
    gc.collect()
    gc.freeze()


class WriteItApp(App[None]):
    CSS_PATH = Path(__file__).with_name("writeit.tcss")
    TITLE = "WriteIt"
    NOTIFICATION_TIMEOUT = 4
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = [
        *keys.bindings("help", "quit"),
        Binding("ctrl+q", "app.quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        workspace: str | None = None,
        *,
        pipeline: str | None = None,
        inputs: dict[str, str] | None = None,
        style: str | None = None,
        models: list[str] | None = None,
        run_id: str | None = None,
        start: bool = False,
        engine: Engine | None = None,
        blind: bool | None = None,
        reopen: bool = False,
        budget: float | None = None,
    ) -> None:
        """`reopen`: with nothing else to open, go back to the run the writer last worked
        on (in any front end), if it is unfinished."""
        super().__init__()
        self.workspace_name = workspace
        self._start = {
            "pipeline": pipeline,
            "inputs": dict(inputs or {}),
            "style": style,
            "models": list(models or []),
            "run_id": run_id,
            "start": start,  # ask the run's current step at once (a replay's branch)
            "blind": blind,
            "reopen": reopen,
            "budget": budget,
        }
        self._engine = engine
        self.keymap: dict[str, str] = {}
        self.live_text = LiveText()
        self.drafts = Drafts(self)
        self.farewell = ""  # printed once the app has exited: the run and how to go on
        self._subscription = None
        self._quitting = False

    # --- start-up ----------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the engine failed to open"
        return self._engine

    def on_mount(self) -> None:
        if self._engine is None:
            try:
                from writeit.workspaces import get_workspace

                self._engine = Engine(get_workspace(self.workspace_name), front_end="tui")
            except WriteItError as error:
                self.push_screen(FatalScreen(str(error)))
                return
        preferences = self.engine.preferences
        self._apply_keymap(dict(preferences.keyboard_shortcuts))
        if preferences.theme in self.available_themes:
            self.theme = preferences.theme
        settle_heap()
        self._subscription = self.engine.subscribe(None, maxsize=100_000)
        self.run_worker(self._watch(), name="engine-updates", exit_on_error=False)
        self.push_screen(RunListScreen())
        start = self._start
        if start["pipeline"]:
            self.open_form(
                start["pipeline"],
                start["inputs"],
                start["style"],
                start["models"],
                start["blind"],
                start["budget"],
            )
        elif start["run_id"]:
            self.open_run(start["run_id"], resume="auto", start=start["start"])
        elif start["reopen"]:
            self._reopen_last()

    def _reopen_last(self) -> None:
        """Open the run of the last session at its step; nothing is asked of a model."""
        from writeit.models import PipelineStatus

        session = self.engine.last_session()
        run_id = session.active_pipeline_run_id if session else None
        if run_id is None:
            return
        try:
            summary = self.engine.store.summary(run_id)
        except WriteItError:
            return
        if summary.deleted or summary.status == PipelineStatus.COMPLETED:
            return
        self.open_run(run_id)
        self.notify(
            f"Reopened run {run_id[:8]} where you left off. Esc goes to all runs.",
            timeout=6,
        )

    def _apply_keymap(self, shortcuts: dict[str, str]) -> None:
        """The writer's remaps, less unknown actions and keys another action holds."""
        known, unknown = keys.check_keymap(shortcuts)
        screens = {SCREEN_SECTION[s.__name__]: s.ACTION_IDS for s in KEYED_SCREENS}
        self.keymap, refused = keys.refuse_clashes(known, screens)
        if self.keymap:
            self.set_keymap(self.keymap)
        if unknown:
            self.say(
                f"keyboard_shortcuts names unknown actions: {', '.join(unknown)}. "
                f"Known: {', '.join(sorted(keys.ACTIONS))}",
                title="Preferences",
                severity="warning",
            )
        for sentence in refused:
            self.say(sentence, title="Preferences", severity="warning", timeout=10)

    def watch_theme(self, theme: str) -> None:
        """A theme chosen in the palette (Ctrl+P, "Change theme") is the writer's from now on."""
        engine = getattr(self, "_engine", None)  # Textual sets a theme before __init__ ends
        if engine is None or engine.preferences.theme == theme:
            return
        engine.preferences.theme = theme
        self.run_worker(self._save_theme(theme), group="preferences", exit_on_error=False)

    async def _save_theme(self, theme: str) -> None:
        from writeit.workspaces import set_preference

        try:
            await asyncio.to_thread(set_preference, "theme", theme)
        except WriteItError as error:
            self.say(f"The theme was not saved: {error}", severity="warning")

    async def _watch(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        async for update in subscription:
            self._hear(update)
            while not subscription.queue.empty():  # a burst: take it in one go
                self._hear(subscription.queue.get_nowait())

    def _hear(self, update: Update) -> None:
        try:
            if update.kind == "delta":
                self.live_text.append(update.data["response_id"], update.data["text"])
                return
            if update.kind == "resync":
                self._recover_live_text(update.run_id)
            for screen in list(self.screen_stack):
                screen.post_message(EngineUpdated(update))
        except Exception:  # keep listening whatever one update did
            log.exception("handling an engine update failed")

    def _recover_live_text(self, run_id: str) -> None:
        """After dropped updates, take the streaming text from the engine's snapshot."""
        runs = {run_id} | {
            screen.run_id
            for screen in self.screen_stack
            if isinstance(getattr(screen, "run_id", None), str)
        }
        for rid in runs:
            try:
                run = self.engine.snapshot(rid)
            except WriteItError:
                continue
            for step in run.steps.values():
                for response in step.ai_responses:
                    if response.status == ResponseStatus.STREAMING:
                        self.live_text[response.response_id] = response.raw_output

    # --- navigation (screens call these) -------------------------------------------------

    def to_run_list(self) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, RunListScreen):
            self.pop_screen()

    def open_run(self, run_id: str, *, resume: bool | str = False, start: bool = False) -> None:
        """Show a run's current step; `resume` "auto" continues a paused or crashed run,
        "force" any unfinished one; `start` asks the current step's models."""
        self.to_run_list()
        self.push_screen(StepScreen(run_id, resume=resume, start=start))

    def open_form(
        self,
        pipeline: str,
        inputs: dict[str, str] | None = None,
        style: str | None = None,
        models: list[str] | None = None,
        blind: bool | None = None,
        budget: float | None = None,
    ) -> None:
        self.to_run_list()
        self.push_screen(
            InputFormScreen(pipeline, inputs or {}, style, models or [], blind, budget)
        )

    def action_new_run(self) -> None:
        def chosen(pipeline: str | None) -> None:
            if pipeline:  # the command line's --style and --model hold for the whole session
                start = self._start
                self.open_form(
                    pipeline, style=start["style"], models=start["models"], blind=start["blind"]
                )

        self.push_screen(NewRunDialog(), chosen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(type(self.screen).__name__))

    # --- errors ----------------------------------------------------------------------------

    async def attempt(self, awaitable: Awaitable[T], *, title: str = "") -> T | None:
        """Await an engine call; a failure becomes a notification, never a crash."""
        try:
            return await awaitable
        except Busy as error:
            self.notify(str(error), title=title or "Busy", severity="warning", markup=False)
        except WriteItError as error:
            self.notify(
                str(error), title=title or "Could not do that", severity="error", markup=False
            )
        except Exception as error:  # a bug or an unexpected provider error: report, keep going
            log.exception("unexpected error")
            self.notify(
                f"{type(error).__name__}: {error}",
                title="Unexpected error",
                severity="error",
                markup=False,
                timeout=10,
            )
        return None

    def call(self, work: Awaitable[Any]) -> Worker[Any]:
        """Run an engine call in an app worker: it outlives the screen that asked for it."""
        return self.run_worker(work, group="engine", exit_on_error=False)

    def say(self, message: str, **kwargs: Any) -> None:
        self.notify(message, markup=False, **kwargs)

    # --- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self._engine is not None:
            await self._keep_typing()
            if self._engine.streaming():
                self.say("Stopping the streams and saving their text…")
            try:
                await self._engine.close()
            except Exception:  # quitting must always work
                log.exception("closing the engine failed")
            self.farewell = self._farewell()
        if self._subscription is not None:
            self._subscription.close()
        message = Text(self.farewell) if self.farewell else None  # printed as it is: no markup
        self.exit(message=message)

    async def _keep_typing(self) -> None:
        """Whatever is typed in any input is kept as a draft before the app goes."""
        try:
            for screen in self.screen_stack:
                before_quit = getattr(screen, "before_quit", None)
                if before_quit is not None:
                    await before_quit()
            await self.drafts.flush()
        except Exception:  # quitting must always work
            log.exception("keeping the drafts failed")

    def _viewed_run(self) -> str | None:
        """The run on view (the topmost step view), for the words printed at exit."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, StepScreen):
                return screen.run_id
        return None

    def _farewell(self) -> str:
        """What the terminal says after the app: the run, how to go on, kept drafts."""
        run_id = self._viewed_run()
        lines = []
        if run_id is not None:
            lines += self._run_lines(run_id)
        kept = self.drafts.kept(self.drafts.touched | ({run_id} if run_id else set()))
        for rid, name in kept:
            lines.append(
                f"Unsent {describe(name)} in run {short(rid)} was kept as a draft; "
                "it comes back when you open the run."
            )
        return "\n".join(lines)

    def _run_lines(self, run_id: str) -> list[str]:
        try:
            run = self.engine.load(run_id)
        except WriteItError:
            return []
        where = f" --workspace {self.workspace_name}" if self.workspace_name else ""
        return [
            f"WriteIt run {run_id} ({run.pipeline.name}) is at step {run.current_step} "
            f"({run.status.value}).",
            f"Continue it with: writeit resume {short(run_id)}{where}",
        ]
