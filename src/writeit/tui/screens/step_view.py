"""The step view: one step of a run, its candidates streaming side by side, and the
writer's choice, feedback and moves (accept, back, fork, merge, regenerate...).

Engine calls run in workers; a ~30 fps tick brings streaming text up to date from the
app's `live_text` and, when an update says something changed (`_stale`), starts a
rebuild of the view from the engine's state (in a worker, so the panes keep following
their streams while the run loads).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.events import DescendantBlur
from textual.screen import Screen
from textual.widgets import (
    Collapsible,
    Footer,
    Label,
    Static,
    TextArea,
)

from writeit.engine import check_model as engine_check_model
from writeit.models import (
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepStatus,
    WriteItError,
)
from writeit.tui import format as fmt
from writeit.tui import keys
from writeit.tui.messages import EngineUpdated
from writeit.tui.widgets.candidate import CandidatePane
from writeit.tui.widgets.candidates import CandidateBoard, selected_id
from writeit.tui.widgets.feedback import FeedbackArea
from writeit.tui.widgets.step_header import StepHeader

log = logging.getLogger(__name__)

FPS = 30
FOLLOW_SECONDS = 0.5  # how often the view looks for changes made by another process

STUCK = (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED)


class StepScreen(Screen[None]):
    # In footer order: what fits in 80 columns comes first.
    ACTION_IDS = (
        *(f"select_{n}" for n in range(1, 10)),
        "prev_tab",
        "next_tab",
        "accept",
        "feedback",
        "merge",
        "regenerate",
        "resume_run",
        "back",
        "history",
        "export",
        "help",
        "quit",
        "guide",
        "fork",
        "retry",
        "skip",
        "leave",
        "prompt",
        "runs",
        "new_run",
    )
    BINDINGS = keys.bindings(*ACTION_IDS, hidden=("new_run",))
    AUTO_FOCUS = None

    def __init__(self, run_id: str, *, resume: bool | str = False, start: bool = False) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: PipelineRun | None = None
        self.resume = resume
        self.start = start
        self._stale = True
        self._refreshing = False
        self._feedback_shown = ""
        self._focused_once = False
        self._told_elsewhere = False

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StepHeader(id="step-header")
        yield Static("", id="notice", markup=False)
        with (
            Collapsible(title="The prompt this step received (P)", collapsed=True, id="prompt-box"),
            VerticalScroll(id="prompt-scroll"),
        ):
            yield Static("", id="prompt-text", markup=False)
        yield CandidateBoard(id="candidates")
        yield Label(
            "Feedback for the next step: C to write, Esc to save and leave the box",
            id="feedback-label",
        )
        yield FeedbackArea("", id="feedback", soft_wrap=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.set_interval(1 / FPS, self._tick)
        self.set_interval(FOLLOW_SECONDS, self._follow_store)
        self.set_focus(None)
        if self.start or self.resume:
            self.app.call(self._begin())

    def on_resize(self) -> None:
        self.set_class(self.size.height < 30, "-short")
        self._stale = True

    def on_screen_resume(self) -> None:
        self._stale = True

    @on(EngineUpdated)
    def _engine_updated(self, message: EngineUpdated) -> None:
        if message.run_id == self.run_id:
            self._stale = True

    def _follow_store(self) -> None:
        """Another process (a CLI run, the server) may move this run on: LMDB tells no
        one, so look now and then (one small read) and rebuild when it did."""
        try:
            moved = self.app.engine.changed_elsewhere(self.run_id)
        except WriteItError:
            return
        if moved:
            self._stale = True
            if not self._told_elsewhere:  # once: while another process streams, it moves often
                self._told_elsewhere = True
                self.app.say("Another WriteIt process changed this run; showing it as it is now.")

    # --- the tick: bring streaming text up to date; rebuild when stale ---------------------

    async def _tick(self) -> None:
        if self._stale and not self._refreshing:
            # in a worker: loading the run waits for a thread, and the panes keep
            # following their streams meanwhile
            self._stale, self._refreshing = False, True
            self.run_worker(self._refresh_now(), group="refresh", exit_on_error=False)
        self._flush()

    async def _refresh_now(self) -> None:
        try:
            await self._refresh()
        except Exception as error:  # a drawing bug must not take the writer's session down
            log.exception("step view refresh failed")
            self.app.say(f"Display error: {error}", severity="error")
        finally:
            self._refreshing = False
        self._flush()  # new panes show their text now, not a frame later

    def _flush(self) -> None:
        if self.run is None or self.board.rebuilding:
            return
        try:
            self.board.flush(self.app.live_text, self.app.engine.preferences.streaming_buffer_size)
        except Exception as error:
            log.exception("step view refresh failed")
            self.app.say(f"Display error: {error}", severity="error")

    async def _refresh(self) -> None:
        engine = self.app.engine
        try:
            run = await engine.fetch(self.run_id)  # the engine's copy; a fold off the loop
        except Exception as error:
            self.app.say(f"Cannot load run {fmt.short(self.run_id)}: {error}", severity="error")
            return
        self.run = run
        self.query_one(StepHeader).show(run)
        self.query_one("#notice", Static).update(self._notice(run))
        self.query_one("#notice").set_class(run.status == PipelineStatus.ERROR, "-error")
        self.query_one("#prompt-text", Static).update(run.current.prompt or "(not asked yet)")
        board = self.board
        had_focus = self.focused is not None and self.focused in board.query("*")
        rebuilt = await board.sync(run, self.size.width or self.app.size.width)
        if rebuilt and (had_focus or self.focused is None or not self._focused_once):
            self._focused_once = True
            self._focus_candidates()
        nxt = run.pipeline.next_step(run.current_step)
        self.query_one("#feedback-label", Label).update(
            f"Feedback for {nxt}, the next step: C to write, Esc to save and leave the box"
            if nxt
            else "Notes on this last step (kept in the history): C to write, Esc to save"
        )
        feedback = self.query_one("#feedback", TextArea)
        stored = run.current.user_feedback or ""
        if not feedback.has_focus and feedback.text.strip() in ("", self._feedback_shown):
            if feedback.text != stored:
                feedback.text = stored
            self._feedback_shown = stored
        self.refresh_bindings()

    def _notice(self, run: PipelineRun) -> str:
        step = run.current
        candidates = step.candidates
        streaming = [r for r in step.ai_responses if r.status == ResponseStatus.STREAMING]
        live = self.app.engine.streaming(run.pipeline_run_id)
        numbers = f"1-{len(candidates)}" if len(candidates) > 1 else "1"
        nxt = run.pipeline.next_step(run.current_step)
        if (
            run.status == PipelineStatus.COMPLETED
            and run.current_step == run.pipeline.step_names[-1]
        ):
            return (
                "✓ The article is complete. E exports it. B goes back to change a step "
                "(a new branch keeps this version)."
            )
        if run.status == PipelineStatus.ERROR:
            return f"✗ {run.error}\nR asks the models again; G with an instruction; T retries one."
        if streaming and live:
            return (
                f"● {len(live)} model{'s' if len(live) != 1 else ''} writing…  "
                "You can choose once they finish. Q stops them and keeps the text."
            )
        elsewhere = self.app.engine.generating_elsewhere(run) if streaming else None
        if elsewhere is not None:
            return (
                f"● Generating in another WriteIt process (pid {elsewhere}); its text shows "
                "here as it is saved. You can choose once it finishes."
            )
        if streaming or run.status == PipelineStatus.PAUSED:
            return (
                "‖ Paused: generation was stopped and its text kept. "
                "U resumes; R asks all models again."
            )
        if step.status == StepStatus.PENDING:
            models = ", ".join(run.models_for(run.current_step))
            return f"No candidates yet. R asks {models}."
        if step.status == StepStatus.SKIPPED:
            return "↷ Skipped. A goes on."
        if step.status == StepStatus.COMPLETED:
            chosen = selected_id(run)
            if chosen:
                number = next(
                    (i + 1 for i, r in enumerate(candidates) if r.response_id == chosen), None
                )
                what = f"Candidate {number}" if number else "An earlier candidate"
                model = step.response(chosen).model_name
                what += f" ({model})"
            else:
                what = "The merged text"
            goes = f"A goes on to {nxt}" if nxt else "A completes the article"
            return (
                f"✓ {what} is chosen. {goes}. Choosing again ({numbers}, M) is safe: "
                "earlier work stays in history."
            )
        if step.status == StepStatus.RUNNING and not candidates:
            return "Waiting for the models…"
        return (
            f"Choose a candidate with {numbers} or merge with M, leave feedback with C, "
            "then A to go on."
        )

    # --- the candidates ----------------------------------------------------------------------

    @property
    def board(self) -> CandidateBoard:
        return self.query_one(CandidateBoard)

    @property
    def panes(self) -> dict[str, CandidatePane]:
        return self.board.panes

    @property
    def merged_pane(self) -> CandidatePane | None:
        return self.board.merged_pane

    @property
    def mode(self) -> str:
        return self.board.mode

    def _focus_candidates(self) -> None:
        if not self.board.focus_first():
            self.set_focus(None)

    # --- engine calls ----------------------------------------------------------------------

    def _call(self, work: Awaitable[None]) -> None:
        self.app.call(work)

    async def _do(self, awaitable: Awaitable, *, title: str = "") -> PipelineRun | None:
        run = await self.app.attempt(awaitable, title=title)
        if isinstance(run, PipelineRun):
            self._switch(run)
        return run

    def _switch(self, run: PipelineRun) -> None:
        if run.pipeline_run_id != self.run_id:
            old = self.run_id
            self.run_id = run.pipeline_run_id
            if run.parent_pipeline_run_id == old:
                self.app.say(
                    f"New branch {fmt.short(run.pipeline_run_id)} from step {run.branch_point}: "
                    f"run {fmt.short(old)} keeps the earlier choices (H shows both).",
                    title="Branched",
                )
        self._stale = True

    async def _begin(self) -> None:
        engine = self.app.engine
        if self.start:
            await self._do(engine.start_step(self.run_id), title="Start")
            return
        run = await asyncio.to_thread(engine.load, self.run_id)
        self.run_id = run.pipeline_run_id
        orphans = (
            any(r.status == ResponseStatus.STREAMING for r in run.current.ai_responses)
            and not engine.streaming(self.run_id)
            and engine.generating_elsewhere(run) is None
        )
        wanted = run.status == PipelineStatus.PAUSED or orphans
        if self.resume == "force":
            wanted = run.status != PipelineStatus.COMPLETED
        if wanted:
            self.app.say(f"Resuming run {fmt.short(self.run_id)} at {run.current_step}…")
            await self._do(engine.resume(self.run_id), title="Resume")

    async def save_feedback(self) -> None:
        area = self.query_one("#feedback", TextArea)
        text = area.text.strip()
        run = self.run
        if run is None or text == (run.current.user_feedback or ""):
            return
        result = await self._do(self.app.engine.give_feedback(self.run_id, text), title="Feedback")
        if result is not None:
            self._feedback_shown = text
            self.app.say("Feedback saved: the next step's prompt receives it.")

    @on(DescendantBlur, "#feedback")
    def _feedback_blurred(self) -> None:
        self._call(self.save_feedback())

    @on(FeedbackArea.Done)
    def _feedback_done(self) -> None:
        self._focus_candidates()  # the blur saves it

    @on(CandidatePane.RetryRequested)
    def _retry_one(self, message: CandidatePane.RetryRequested) -> None:
        from writeit.tui.screens.dialogs import AskDialog

        if not message.other_model:
            self._call(self._retry([message.response_id]))
            return

        def chosen(model: str | None) -> None:
            if model:
                self._call(self._retry([message.response_id], model=model))

        self.app.push_screen(
            AskDialog(
                "Ask another model for this candidate",
                "Its answer joins this step's candidates; `writeit models` lists what is usable.",
                placeholder="e.g. gpt-4o-mini, or markov offline",
            ),
            chosen,
        )

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_tab", "prev_tab"):
            return self.mode == "tabs"
        run = self.run
        if action == "resume_run":
            if run is None:
                return False
            stuck = any(r.status == ResponseStatus.STREAMING for r in run.current.ai_responses)
            return run.status == PipelineStatus.PAUSED or (
                stuck and not self.app.engine.streaming(run.pipeline_run_id)
            )
        if action == "retry":
            return run is not None and any(r.status in STUCK for r in run.current.candidates)
        return True

    def action_select(self, number: int) -> None:
        async def select() -> None:
            await self.save_feedback()
            before = self.run_id
            run = await self._do(self.app.engine.select(self.run_id, number - 1), title="Select")
            if run is not None and run.pipeline_run_id == before:  # a branch says so itself
                step = run.current
                chosen = (
                    step.ai_responses[step.user_selection]
                    if step.user_selection is not None
                    else None
                )
                nxt = run.pipeline.next_step(run.current_step)
                self.app.say(
                    f"Candidate {number} ({chosen.model_name if chosen else '?'}) chosen. "
                    + (f"A goes on to {nxt}." if nxt else "A completes the article.")
                )

        self._call(select())

    def action_accept(self) -> None:
        async def accept() -> None:
            engine = self.app.engine
            await self.save_feedback()
            run = await self._do(engine.accept(self.run_id), title="Accept")
            if run is None:
                return
            if run.status == PipelineStatus.COMPLETED:
                self.app.say("The article is complete. Press E to export it.", title="Done")
            elif run.current.status == StepStatus.PENDING:
                await self._do(engine.start_step(self.run_id), title="Start step")

        self._call(accept())

    def action_feedback(self) -> None:
        self.query_one("#feedback", TextArea).focus()

    def action_leave(self) -> None:
        area = self.query_one("#feedback", TextArea)
        if area.has_focus:
            self._focus_candidates()
            return
        self.app.to_run_list()

    def action_runs(self) -> None:
        self.app.to_run_list()

    def action_regenerate(self) -> None:
        self._call(self._do(self.app.engine.start_step(self.run_id), title="Regenerate"))

    def action_guide(self) -> None:
        from writeit.tui.screens.dialogs import AskDialog

        def guided(instruction: str | None) -> None:
            if instruction:
                self._call(
                    self._do(
                        self.app.engine.start_step(self.run_id, guidance=instruction),
                        title="Guide",
                    )
                )

        step = self.run.current_step if self.run else "this step"
        self.app.push_screen(
            AskDialog(
                f"Regenerate {step} with an instruction",
                "Every model writes a new candidate following it; the current ones stay in history.",
                placeholder="e.g. Make every title a question; lead with the numbers",
            ),
            guided,
        )

    def action_retry(self) -> None:
        run = self.run
        if run is None:
            return
        stuck = [r.response_id for r in run.current.candidates if r.status in STUCK]
        if not stuck:
            self.app.say("No failed candidate to retry. R regenerates the whole step.")
            return
        self._call(self._retry(stuck))

    async def _retry(self, response_ids: list[str], model: str | None = None) -> None:
        engine = self.app.engine
        for response_id in response_ids:
            if model:  # resolving a model can import a provider: not on the event loop
                try:
                    await asyncio.to_thread(engine_check_model, model)
                except WriteItError as error:
                    self.app.say(str(error), title="Retry", severity="error")
                    return
            run = await self._do(
                engine.retry_response(self.run_id, response_id, model=model), title="Retry"
            )
            if run is None:
                return

    def action_skip(self) -> None:
        async def skip() -> None:
            run = await self._do(self.app.engine.skip(self.run_id), title="Skip")
            if run is None:
                return
            if run.status == PipelineStatus.COMPLETED:
                self.app.say("Step skipped: the article is complete. Press E to export it.")
            elif run.current.status == StepStatus.PENDING:
                await self._do(self.app.engine.start_step(self.run_id), title="Start step")

        self._call(skip())

    def action_resume_run(self) -> None:
        self._call(self._do(self.app.engine.resume(self.run_id), title="Resume"))

    def action_merge(self) -> None:
        from writeit.tui.screens.merge import MergeScreen

        run = self.run
        if run is None:
            return
        if self.app.engine.streaming(self.run_id):
            self.app.say("Wait for the candidates to finish before merging.", severity="warning")
            return
        done = [r for r in run.current.candidates if r.status == ResponseStatus.COMPLETED]
        if not done:
            self.app.say("No completed candidate to merge yet.", severity="warning")
            return

        def merged(run_id: str | None) -> None:
            if run_id and run_id != self.run_id:
                self._switch(self.app.engine.load(run_id))
            self._stale = True

        self.app.push_screen(MergeScreen(self.run_id), merged)

    def action_fork(self) -> None:
        async def fork() -> None:
            step = self.run.current_step if self.run else None
            if step is None:
                return
            child = await self.app.attempt(self.app.engine.fork(self.run_id, step), title="Fork")
            if child is not None:
                old = self.run_id
                self.run_id = child.pipeline_run_id
                self._stale = True
                self.app.say(
                    f"Forked: new run {fmt.short(child.pipeline_run_id)} from step {step} "
                    f"of {fmt.short(old)}. You are on the new branch.",
                    title="Fork",
                )

        self._call(fork())

    def action_back(self) -> None:
        async def back() -> None:
            await self.save_feedback()
            run = await self._do(self.app.engine.rewind(self.run_id), title="Back")
            if run is not None:
                self.app.say(
                    f"Back at {run.current_step}. Choosing differently here starts a new "
                    "branch; nothing is lost."
                )

        self._call(back())

    def action_history(self) -> None:
        from writeit.tui.screens.history import HistoryScreen

        def chosen(run_id: str | None) -> None:
            if run_id:
                self.run_id = run_id
            self._stale = True

        self.app.push_screen(HistoryScreen(self.run_id), chosen)

    def action_export(self) -> None:
        from writeit.tui.screens.export import ExportDialog

        self.app.push_screen(ExportDialog(self.run_id))

    def action_prompt(self) -> None:
        box = self.query_one("#prompt-box", Collapsible)
        box.collapsed = not box.collapsed

    def action_next_tab(self) -> None:
        self.board.move_tab(1)

    def action_prev_tab(self) -> None:
        self.board.move_tab(-1)

    def action_new_run(self) -> None:
        self.app.action_new_run()
