"""WriteItApp: the screens over one engine, its update stream and the writer's keys.

The app owns the engine and one subscription to every run. Token deltas are
collected into `live_text` (read by the step view once per frame); every other
update is posted to the screens as an `EngineUpdated` message. Screens call the
engine through `attempt()`, which turns errors into notifications.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App
from textual.binding import Binding

from writeit.engine import Busy, Engine
from writeit.models import ResponseStatus, WriteItError
from writeit.tui import keys
from writeit.tui.commands import ActionsProvider
from writeit.tui.live import LiveText
from writeit.tui.messages import EngineUpdated
from writeit.tui.screens.dialogs import FatalScreen
from writeit.tui.screens.help import HelpScreen
from writeit.tui.screens.input_form import InputFormScreen
from writeit.tui.screens.new_run import NewRunDialog
from writeit.tui.screens.run_list import RunListScreen
from writeit.tui.screens.step_view import StepScreen
from writeit.updates import Update

T = TypeVar("T")
log = logging.getLogger(__name__)


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
        engine: Engine | None = None,
    ) -> None:
        super().__init__()
        self.workspace_name = workspace
        self._start = {
            "pipeline": pipeline,
            "inputs": dict(inputs or {}),
            "style": style,
            "models": list(models or []),
            "run_id": run_id,
        }
        self._engine = engine
        self.keymap: dict[str, str] = {}
        self.live_text = LiveText()
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

                self._engine = Engine(get_workspace(self.workspace_name))
            except WriteItError as error:
                self.push_screen(FatalScreen(str(error)))
                return
        preferences = self.engine.preferences
        self.keymap, unknown = keys.check_keymap(dict(preferences.keyboard_shortcuts))
        if self.keymap:
            self.set_keymap(self.keymap)
        if unknown:
            self.notify(
                f"keyboard_shortcuts names unknown actions: {', '.join(unknown)}. "
                f"Known: {', '.join(sorted(keys.ACTIONS))}",
                title="Preferences",
                severity="warning",
                markup=False,
            )
        if preferences.theme in self.available_themes:
            self.theme = preferences.theme
        settle_heap()
        self._subscription = self.engine.subscribe(None, maxsize=100_000)
        self.run_worker(self._watch(), name="engine-updates", exit_on_error=False)
        self.push_screen(RunListScreen())
        start = self._start
        if start["pipeline"]:
            self.open_form(start["pipeline"], start["inputs"], start["style"], start["models"])
        elif start["run_id"]:
            self.open_run(start["run_id"], resume="auto")

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
    ) -> None:
        self.to_run_list()
        self.push_screen(InputFormScreen(pipeline, inputs or {}, style, models or []))

    def action_new_run(self) -> None:
        def chosen(pipeline: str | None) -> None:
            if pipeline:  # the command line's --style and --model hold for the whole session
                self.open_form(pipeline, style=self._start["style"], models=self._start["models"])

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

    def call(self, work: Awaitable[Any]) -> None:
        """Run an engine call in an app worker: it outlives the screen that asked for it."""
        self.run_worker(work, group="engine", exit_on_error=False)

    def say(self, message: str, **kwargs: Any) -> None:
        self.notify(message, markup=False, **kwargs)

    # --- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self._engine is not None:
            if self._engine.streaming():
                self.say("Stopping the streams and saving their text…")
            try:
                await self._engine.close()
            except Exception:  # quitting must always work
                log.exception("closing the engine failed")
        if self._subscription is not None:
            self._subscription.close()
        self.exit()
