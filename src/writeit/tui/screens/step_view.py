"""The step view: one step of a run, its candidates streaming side by side, and the
writer's choice, feedback and moves (accept, back, fork, merge, regenerate...).

Engine calls run in workers; a ~30 fps tick brings streaming text up to date from the
app's `live_text` and, when an update says something changed (`_stale`), starts a
rebuild of the view from the engine's state (in a worker, so the panes keep following
their streams while the run loads).

Feedback typed in the box is kept as a draft (`feedback:<step>`, see `tui/drafts.py`)
until it is given; a key that cannot act now says why instead of doing nothing.
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
    TabbedContent,
    TextArea,
)
from textual.worker import Worker

from writeit.engine import check_model as engine_check_model
from writeit.models import (
    AIResponse,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepStatus,
    WriteItError,
)
from writeit.tui import drafts, keys
from writeit.tui import format as fmt
from writeit.tui.messages import EngineUpdated
from writeit.tui.screens.diff import Compared
from writeit.tui.widgets.candidate import CandidatePane
from writeit.tui.widgets.candidates import CandidateBoard
from writeit.tui.widgets.feedback import FeedbackArea
from writeit.tui.widgets.step_header import StepHeader

log = logging.getLogger(__name__)

FPS = 30
FOLLOW_SECONDS = 0.5  # how often the view looks for changes made by another process

STUCK = (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED)


class StepScreen(keys.SaysWhy, Screen[None]):
    # In footer order: what fits in 80 columns comes first.
    ACTION_IDS = (
        *(f"select_{n}" for n in range(1, 10)),
        "prev_tab",
        "next_tab",
        "quit",
        "help",
        "accept",
        "feedback",
        "merge",
        "pause",
        "regenerate",
        "resume_run",
        "back",
        "history",
        "export",
        "guide",
        "fork",
        "retry",
        "skip",
        "leave",
        "prompt",
        "zoom",
        "copy",
        "copy_article",
        "diff",
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
        self._box: tuple[str, str] | None = None  # (run id, step) whose feedback the box holds
        self._box_filled = ""  # what the box was filled with (given feedback or a draft)
        self._noted: tuple[str, str] | None = None  # the box whose restored draft was said
        self._box_given = ""  # the feedback given from the box: its text is no draft
        self._focused_once = False
        self._told_elsewhere = False
        self._giving: Worker | None = None  # feedback on its way to the run (Esc, a blur)

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StepHeader(id="step-header")
        yield Static("", id="notice", markup=False)
        title = self._hint("The prompt this step received ({prompt})")
        with (
            Collapsible(title=title, collapsed=True, id="prompt-box"),
            VerticalScroll(id="prompt-scroll"),
        ):
            yield Static("", id="prompt-text", markup=False)
        yield CandidateBoard(id="candidates")
        yield Label("", id="feedback-label", markup=False)
        yield FeedbackArea("", id="feedback", soft_wrap=True)
        yield Footer(compact=True)  # the palette key stays at the right, in sight at 80

    def on_mount(self) -> None:
        self.board.prices = dict(self.app.engine.preferences.pricing)
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

    def _hint(self, text: str) -> str:
        """`text` with `{action}` as the key that action has now (remaps included)."""
        return keys.hint(text, self.app.keymap)

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
        self.query_one(StepHeader).show(run, self.board.prices, *self._money(run))
        self.query_one("#notice", Static).update(self._notice(run))
        self.query_one("#notice").set_class(run.status == PipelineStatus.ERROR, "-error")
        self.query_one("#prompt-text", Static).update(run.current.prompt or "(not asked yet)")
        board = self.board
        had_focus = self.focused is not None and self.focused in board.query("*")
        rebuilt = await board.sync(run, self.size.width or self.app.size.width)
        if rebuilt and (had_focus or self.focused is None or not self._focused_once):
            self._focused_once = True
            self._focus_candidates()
        self.query_one("#feedback-label", Label).update(self._feedback_label(run))
        await self._fill_box(run)
        self.refresh_bindings()

    def _money(self, run: PipelineRun) -> tuple[float | None, str]:
        """The header's spend against the budget (None: no budget) and the forecast of the
        step about to run (this one before it starts, else the next), forecast again only
        when the step moves."""
        from writeit import pricing

        engine = self.app.engine
        spent = (
            pricing.spent(run, engine.preferences.pricing) if run.budget_usd is not None else None
        )
        step = run.current
        key = (run.pipeline_run_id, run.current_step, step.status, step.attempt, run.budget_usd)
        if getattr(self, "_ahead_key", None) != key:
            self._ahead_key, self._ahead_text = key, ""
            try:
                ahead = engine.forecast(run.pipeline_run_id)
            except WriteItError as error:
                log.info("no forecast for %s: %s", run.pipeline_run_id[:8], error)
                ahead = None
            if ahead is not None and ahead.steps and ahead.cost != 0:  # free: nothing to say
                name = ahead.steps[0]
                part = ahead.step(name)
                label = "forecast" if name == run.current_step else f"next ({name})"
                shown = fmt.forecast(part.cost, part.low, part.high, part.estimated)
                self._ahead_text = f"{label} {shown}"
        return spent, self._ahead_text

    def _feedback_label(self, run: PipelineRun) -> str:
        nxt = run.pipeline.next_step(run.current_step)
        if nxt:
            return self._hint(
                f"Feedback for {nxt}, the next step: {{feedback}} to write, "
                "{leave} to save and leave the box"
            )
        return self._hint(
            "Notes on this last step (kept in the history): {feedback} to write, {leave} to save"
        )

    # --- the notice: what the writer can do now --------------------------------------------

    def _notice(self, run: PipelineRun) -> str:
        step = run.current
        if (
            run.status == PipelineStatus.COMPLETED
            and run.current_step == run.pipeline.step_names[-1]
        ):
            return self._hint(
                "✓ The article is complete. {export} exports it, {copy_article} copies it. "
                "{back} goes back to change a step (a new branch keeps this version)."
            )
        if run.status == PipelineStatus.ERROR:
            return f"✗ {run.error}\n" + self._hint(
                "{regenerate} asks the models again; {guide} with an instruction; "
                "{retry} retries one."
            )
        writing = self._writing(run)
        if writing:
            return self._writing_notice(run, writing)
        streaming = [r for r in step.ai_responses if r.status == ResponseStatus.STREAMING]
        elsewhere = self.app.engine.generating_elsewhere(run) if streaming else None
        if elsewhere is not None:
            return self._hint(
                f"● Generating in another WriteIt process (pid {elsewhere}); its text shows "
                "here as it is saved. {pause} pauses it there."
            )
        if run.status == PipelineStatus.PAUSED and run.paused_because:
            engine = self.app.engine
            unpriced = [m for m in run.models_for(run.current_step) if not engine.price_of(m)]
            if unpriced and "is unknown" in run.paused_because:  # a higher budget cannot help
                return (
                    f"‖ Paused: {run.paused_because}. Set its price to go on (USD per million "
                    f"tokens): writeit config set pricing.{unpriced[0]}.input USD, and .output."
                )
            stopped = [n for n, r in enumerate(step.candidates, 1) if r.stopped_by_budget]
            take = (
                f" {keys.numbers(stopped, self.app.keymap)} takes a stopped candidate as it is."
                if stopped
                else ""
            )
            return self._hint(
                f"‖ Paused: {run.paused_because}. {{resume_run}} raises the budget and goes on."
                + take
            )
        if streaming or run.status == PipelineStatus.PAUSED:
            return self._hint(
                "‖ Paused: generation was stopped and its text kept. "
                "{resume_run} resumes; {regenerate} asks all models again."
            )
        notice = self._step_notice(run)
        return (
            f"Blind review: models hidden until you choose. {notice}"
            if run.current.hidden
            else notice
        )

    def _writing(self, run: PipelineRun) -> list[AIResponse]:
        """The current candidates this process is streaming now (not the ones of the same
        generation that already finished or failed)."""
        live = set(self.app.engine.streaming(run.pipeline_run_id))
        return [
            r
            for r in run.current.candidates
            if r.status == ResponseStatus.STREAMING and r.response_id in live
        ]

    def _writing_notice(self, run: PipelineRun, writing: list[AIResponse]) -> str:
        candidates = run.current.candidates
        models = "" if run.current.hidden else f" ({', '.join(r.model_name for r in writing)})"
        text = f"● {len(writing)} of {len(candidates)} writing{models}…  "
        finished = [n for n, r in enumerate(candidates, 1) if r.status == ResponseStatus.COMPLETED]
        if finished:
            pick = keys.numbers(finished, self.app.keymap)
            return text + self._hint(
                f"Choose a finished one now ({pick}; the others stop), or {{pause}} pauses "
                "them with their text kept."
            )
        return text + self._hint("{pause} pauses them with their text kept.")

    def _step_notice(self, run: PipelineRun) -> str:
        step = run.current
        if step.status == StepStatus.PENDING:
            models = ", ".join(run.models_for(run.current_step))
            return self._hint(f"No candidates yet. {{regenerate}} asks {models}.")
        if step.status == StepStatus.SKIPPED:
            return self._hint("↷ Skipped. {accept} goes on.")
        if step.status == StepStatus.COMPLETED:
            return self._chosen_notice(run)
        candidates = step.candidates
        if not candidates:
            return "Waiting for the models…"
        finished = [
            (n, r) for n, r in enumerate(candidates, 1) if r.status == ResponseStatus.COMPLETED
        ]
        if not finished:
            return self._hint(
                "No candidate finished. {retry} asks the same models again, "
                "{regenerate} regenerates the step."
            )
        if len(finished) == 1:
            number, response = finished[0]
            return self._hint(
                f"Only candidate {number} ({step.author(response)}) finished: {{accept}} goes on "
                "with it. {feedback} leaves feedback first; {retry} asks the others again."
            )
        numbers = keys.numbers([n for n, _ in finished], self.app.keymap)
        return self._hint(
            f"Choose a candidate with {numbers} or merge with {{merge}}, leave feedback with "
            "{feedback}, then {accept} to go on."
        )

    def _chosen_notice(self, run: PipelineRun) -> str:
        nxt = run.pipeline.next_step(run.current_step)
        goes = f"{{accept}} goes on to {nxt}" if nxt else "{accept} completes the article"
        candidates = run.current.candidates
        done = [n for n, r in enumerate(candidates, 1) if r.status == ResponseStatus.COMPLETED]
        numbers = keys.numbers(done, self.app.keymap)
        how = fmt.provenance(run.current) or "a text"
        return self._hint(
            f"✓ Chosen: {how}. {goes}. Choosing again ({numbers}, {{merge}}) is safe: "
            "earlier work stays in history."
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

    def focused_pane(self) -> CandidatePane | None:
        """The pane the writer is in: the focused one, else the tab on show, else the first."""
        node = self.focused
        while node is not None and not isinstance(node, CandidatePane):
            node = node.parent
        if isinstance(node, CandidatePane):
            return node
        if self.mode == "tabs":
            tabs = self.board.query_one(TabbedContent)
            active = tabs.get_pane(tabs.active) if tabs.active else None
            found = list(active.query(CandidatePane)) if active else []
            if found:
                return found[0]
        panes = list(self.board.query(CandidatePane))
        return panes[0] if panes else None

    # --- the feedback box and its draft -------------------------------------------------------

    @property
    def _area(self) -> TextArea:
        return self.query_one("#feedback", TextArea)

    async def _fill_box(self, run: PipelineRun) -> None:
        """Show the feedback of the step on view: the unsent draft, else what was given.
        Text typed for another step or run (before B, H, a branch) stays its draft."""
        area = self._area
        box = (run.pipeline_run_id, run.current_step)
        if box != self._box:
            await self.keep_typing()
            self._box = box
            self._put(area, run)
        elif not area.has_focus and area.text == self._box_filled:
            self._put(area, run)  # another process may have given feedback meanwhile

    def _put(self, area: TextArea, run: PipelineRun) -> None:
        given = run.current.user_feedback or ""
        draft = self.app.drafts.get(run.pipeline_run_id, self._draft_name(run.current_step))
        text = draft if draft.strip() and draft.strip() != given.strip() else given
        self._box_filled, self._box_given = text, given
        if area.text != text:
            area.text = text
        if text != given and self._noted != self._box:
            # said once per box, whenever the draft arrives (the drafts may be read after
            # the first build)
            self._noted = self._box
            self.app.say(
                f"Your unsent feedback for {run.current_step} is back in the box "
                "(kept as a draft). " + self._hint("{feedback} to edit it, {leave} to save it.")
            )

    @staticmethod
    def _draft_name(step: str) -> str:
        return drafts.name("feedback", step)

    @on(TextArea.Changed, "#feedback")
    def _feedback_typed(self) -> None:
        if self._box is None:
            return
        run_id, step = self._box
        text = self._area.text
        unsent = "" if text.strip() == self._box_given.strip() else text
        self.app.drafts.typed(run_id, self._draft_name(step), unsent)

    async def keep_typing(self) -> None:
        """Write the box's draft now (leaving the box or the step, quitting): the box as it
        is, whatever `Changed` messages are still on their way."""
        if self._box is not None:
            self._feedback_typed()
            await self.app.drafts.keep(self._box[0], self._draft_name(self._box[1]))

    async def before_quit(self) -> None:
        """Feedback left with Esc just before Q reaches the run (one commit), rather than
        staying a draft; then whatever is still typed is kept."""
        giving = self._giving
        if giving is not None and giving.is_running:
            await giving.wait()
        await self.keep_typing()

    async def save_feedback(self) -> None:
        """Give the box's text as feedback on the step it was typed for; its draft goes."""
        text = self._area.text.strip()
        run, box = self.run, self._box
        if run is None or box is None or box != (run.pipeline_run_id, run.current_step):
            return
        name = self._draft_name(box[1])
        if text == (run.current.user_feedback or ""):
            await self.app.drafts.given(box[0], name)
            return
        await self.keep_typing()  # kept until the feedback is in the run
        result = await self._do(self.app.engine.give_feedback(box[0], text), title="Feedback")
        if result is not None:  # maybe on a new branch: the box follows at the next refresh
            self._box_filled = self._box_given = text
            await self.app.drafts.given(box[0], name)
            self.app.say("Feedback saved: the next step's prompt receives it.")

    @on(DescendantBlur, "#feedback")
    def _feedback_blurred(self) -> None:
        self._giving = self.app.call(self.save_feedback())

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
                "Its answer takes this candidate's place; `writeit models` lists what is usable.",
                placeholder="e.g. gpt-4o-mini, or markov offline",
            ),
            chosen,
        )

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
                    f"run {fmt.short(old)} keeps the earlier choices "
                    + self._hint("({history} shows both)."),
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

    # --- keys that cannot act now say why ----------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hidden from the footer and the palette when it cannot act now (the key then
        says why: `on_key`)."""
        return self.why_not(action, parameters) is None

    def why_not(self, action: str, parameters: tuple[object, ...] = ()) -> str | None:
        """Why `action` cannot act now, or None when it can."""
        if action in ("next_tab", "prev_tab"):
            return (
                None
                if self.mode == "tabs"
                else self._hint(
                    "Every candidate fits side by side: {prev_tab} and {next_tab} switch tabs "
                    "when they do not."
                )
            )
        run = self.run
        if run is None:
            return None
        if action == "select":
            return self._why_not_select(run, int(str(parameters[0])) if parameters else 1)
        reasons = {
            "resume_run": self._why_not_resume,
            "retry": self._why_not_retry,
            "pause": self._why_not_pause,
            "diff": self._why_not_diff,
        }
        check = reasons.get(action)
        return check(run) if check else None

    def _why_not_select(self, run: PipelineRun, number: int) -> str | None:
        count = len(run.current.candidates)
        if number <= count:
            return None
        if not count:
            return self._hint("No candidates yet: {regenerate} asks the models.")
        return f"There is no candidate {number}: this step has {count}."

    def _why_not_resume(self, run: PipelineRun) -> str | None:
        stuck = any(r.status == ResponseStatus.STREAMING for r in run.current.ai_responses)
        live = self.app.engine.streaming(run.pipeline_run_id)
        if run.status == PipelineStatus.PAUSED or (stuck and not live):
            return None
        if live:
            return "The models are writing now: nothing to resume."
        return "Nothing to resume: the run was not paused or stopped."

    def _why_not_retry(self, run: PipelineRun) -> str | None:
        if any(r.status in STUCK for r in run.current.candidates):
            return None
        return self._hint(
            "No failed or stopped candidate to retry. {regenerate} asks them all again."
        )

    def _why_not_diff(self, run: PipelineRun) -> str | None:
        if self._diff_pair(run) is not None:
            return None
        if not run.current.candidates:
            return self._hint("No candidates to compare yet: {regenerate} asks the models.")
        return self._hint(
            "One candidate and no earlier attempt to compare it with: {regenerate} asks "
            "again; in the history ({history}), {branch_diff} compares a branch with its parent."
        )

    def _why_not_pause(self, run: PipelineRun) -> str | None:
        engine = self.app.engine
        if engine.streaming(run.pipeline_run_id) or engine.generating_elsewhere(run) is not None:
            return None
        return "Nothing is generating: there is nothing to pause."

    # --- actions ---------------------------------------------------------------------------

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
                    + self._hint(
                        f"{{accept}} goes on to {nxt}."
                        if nxt
                        else "{accept} completes the article."
                    )
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
                self.app.say(
                    self._hint("The article is complete. Press {export} to export it."),
                    title="Done",
                )
            elif run.current.status == StepStatus.PENDING:
                await self._do(engine.start_step(self.run_id), title="Start step")

        self._call(accept())

    def action_feedback(self) -> None:
        self._area.focus()

    def action_leave(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        if self._area.has_focus:
            self._focus_candidates()
            return
        self.app.to_run_list()

    def action_runs(self) -> None:
        self.app.to_run_list()

    def action_regenerate(self) -> None:
        self._call(self._do(self.app.engine.start_step(self.run_id), title="Regenerate"))

    def action_pause(self) -> None:
        async def pause() -> None:
            run = await self._do(self.app.engine.pause(self.run_id), title="Pause")
            if run is not None:
                self.app.say(self._hint("Paused: the text so far is kept. {resume_run} resumes."))

        self._call(pause())

    def action_guide(self) -> None:
        from writeit.tui.screens.dialogs import AskDialog

        if self.run is None:
            return
        run_id, step = self.run_id, self.run.current_step
        name = drafts.name("guide", step)

        def guided(instruction: str | None) -> None:
            if instruction:
                self._call(self._guide(run_id, name, instruction))
            else:  # left the dialog: what was typed is kept now, not in a second
                self._call(self.app.drafts.keep(run_id, name))

        self.app.push_screen(
            AskDialog(
                f"Regenerate {step} with an instruction",
                "Every model writes a new candidate following it; the current ones stay in history.",
                placeholder="e.g. Make every title a question; lead with the numbers",
                value=self.app.drafts.get(run_id, name),
                on_change=lambda text: self.app.drafts.typed(run_id, name, text),
            ),
            guided,
        )

    async def _guide(self, run_id: str, name: str, instruction: str) -> None:
        await self.app.drafts.keep(run_id, name)  # kept until the step has started with it
        run = await self._do(
            self.app.engine.start_step(run_id, guidance=instruction), title="Guide"
        )
        if run is not None:
            await self.app.drafts.given(run_id, name)

    def action_retry(self) -> None:
        run = self.run
        if run is None:
            return
        stuck = [r.response_id for r in run.current.candidates if r.status in STUCK]
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
                self.app.say(
                    self._hint(
                        "Step skipped: the article is complete. Press {export} to export it."
                    )
                )
            elif run.current.status == StepStatus.PENDING:
                await self._do(self.app.engine.start_step(self.run_id), title="Start step")

        self._call(skip())

    def action_resume_run(self) -> None:
        run = self.run
        if run is not None and run.paused_because and run.budget_usd is not None:
            self._raise_budget(run)
            return
        self._call(self._do(self.app.engine.resume(self.run_id), title="Resume"))

    def _raise_budget(self, run: PipelineRun) -> None:
        """A run paused by its budget goes on with a higher one, asked for here: each
        figure once, and a default that lets the next step run even at its high end."""
        from writeit import forecast, pricing
        from writeit.tui.screens.dialogs import AskDialog

        engine = self.app.engine
        spent = pricing.spent(run, engine.preferences.pricing)
        run_id, budget = self.run_id, run.budget_usd or 0.0
        try:
            ahead = engine.resume_forecast(run_id)
        except WriteItError as error:
            log.info("no forecast for %s: %s", run_id[:8], error)
            ahead = forecast.Forecast()
        lines = [f"Spent {fmt.cost(spent)} of {fmt.cost(budget)}."]
        suggested = forecast.suggested_budget(spent, ahead) if ahead.items else None
        if ahead.items:
            what = f"Step {ahead.steps[0]}"
            if run.current.status == StepStatus.RUNNING:
                what = f"Asking {', '.join(i.model for i in ahead.items)} again at {what.lower()}"
            shown = fmt.forecast(ahead.cost, ahead.low, ahead.high, ahead.estimated)
            lines.append(f"{what} is forecast at {shown}.")
        if suggested is not None:
            lines.append(f"{fmt.cost(suggested)} covers it at its high end.")
        stopped = [n for n, r in enumerate(run.current.candidates, 1) if r.stopped_by_budget]
        if stopped:
            numbers = keys.numbers(stopped, self.app.keymap)
            lines.append(f"Or cancel and choose a stopped candidate as it is ({numbers}).")
        default = suggested if suggested is not None else max(budget * 2, spent * 2, 0.01)

        def chosen(answer: str | None) -> None:
            if answer is None:
                return
            try:
                value = float(answer.strip().lstrip("$"))
            except ValueError:
                self.app.say(f"{answer!r} is not an amount in USD", severity="error")
                return
            resumed = engine.resume(run_id, budget_usd=value)
            self._call(self._do(resumed, title="Resume"))

        self.app.push_screen(
            AskDialog(
                "Raise the run's budget (USD) and go on",
                " ".join(lines),
                placeholder="e.g. 0.50",
                value=f"{default:g}",
            ),
            chosen,
        )

    def action_merge(self) -> None:
        from writeit.tui.screens.merge import MergeScreen

        run = self.run
        if run is None:
            return
        if self.app.engine.streaming(self.run_id):
            self.app.say(
                self._hint(
                    "Wait for the candidates to finish before merging, or {pause} pauses them."
                ),
                severity="warning",
            )
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
            if run_id and run_id != self.run_id:
                self.run_id = run_id
                self.run = None  # nothing of the old run shows while the new one loads
            self._stale = True

        self.app.push_screen(HistoryScreen(self.run_id), chosen)

    def action_export(self) -> None:
        from writeit.tui.screens.export import ExportDialog

        self.app.push_screen(ExportDialog(self.run_id))

    def action_prompt(self) -> None:
        box = self.query_one("#prompt-box", Collapsible)
        box.collapsed = not box.collapsed

    def action_zoom(self) -> None:
        """Z maximises the pane the writer is in; Z (or Esc) again restores the columns."""
        if self.maximized is not None:
            self.minimize()
            return
        pane = self.focused_pane()
        if pane is None:
            self.app.say("No candidate to maximise yet.", severity="warning")
            return
        self.maximize(pane, container=False)
        self.app.say(self._hint("{zoom} or {leave} restores the columns."), timeout=2)

    def action_copy(self) -> None:
        pane = self.focused_pane()
        text = self._pane_text(pane) if pane else ""
        if not text:
            self.app.say("No candidate text to copy yet.", severity="warning")
            return
        assert pane is not None
        what = f"candidate {pane.number}" if pane.number else "the merged text"
        self.app.copy_to_clipboard(text)
        self.app.say(f"Copied {what} ({len(text):,} characters) to the clipboard.")

    def _pane_text(self, pane: CandidatePane) -> str:
        run, response = self.run, pane.response
        if response is None:
            return (run.current.output or "") if run else ""
        return self._text(response)

    def _text(self, response: AIResponse) -> str:
        """A candidate's text as its pane shows it (a stream's text so far)."""
        if response.status == ResponseStatus.STREAMING:
            return self.app.live_text.get(response.response_id) or response.raw_output
        return response.raw_output

    def action_diff(self) -> None:
        from writeit.tui.screens.diff import DiffScreen

        run = self.run
        pair = self._diff_pair(run) if run else None
        if run is None or pair is None:
            return  # the key said why (`why_not`)
        where = f"{run.current_step} · run {fmt.short(run.pipeline_run_id)}"
        self.app.push_screen(DiffScreen(*pair, where=where))

    def _diff_pair(self, run: PipelineRun) -> tuple[Compared, Compared] | None:
        """The focused candidate and the next one; a step's only candidate and its
        model's candidate of the attempt before (the older text first); the merged text
        and the first candidate it came from. None when there is nothing to compare."""
        step = run.current
        candidates = step.candidates
        pane = self.focused_pane()
        if pane is not None and pane.response is None:
            return self._merge_pair(run)
        number = pane.number if pane and pane.number and pane.number <= len(candidates) else 1
        if len(candidates) > 1:
            other = number % len(candidates) + 1
            return self._compared(run, number), self._compared(run, other)
        earlier = step.earlier_candidate(candidates[0]) if candidates else None
        if earlier is None:
            return None
        label = f"attempt {earlier.attempt} ({step.author(earlier)})"
        return Compared(label, self._text(earlier)), self._compared(run, 1)

    def _compared(self, run: PipelineRun, number: int) -> Compared:
        response = run.current.candidates[number - 1]
        who = run.current.author(response)
        return Compared(f"candidate {number} ({who})", self._text(response))

    def _merge_pair(self, run: PipelineRun) -> tuple[Compared, Compared] | None:
        """What the merge (or the hand-written text) changed from its first source."""
        step = run.current
        sources = step.decision.response_ids if step.decision else []
        if step.output is None or not sources:
            return None
        source = step.response(sources[0])
        return (
            Compared(
                f"candidate {fmt.candidate_label(step, source.response_id)}", self._text(source)
            ),
            Compared("merged text", step.output),
        )

    def action_copy_article(self) -> None:
        run = self.run
        text = run.final_text if run else None
        if run is None or not text:
            self.app.say("No article yet: choose a candidate first.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        done = run.status == PipelineStatus.COMPLETED
        what = "the article" if done else "the latest chosen text (the run is not complete yet)"
        self.app.say(f"Copied {what}: {len(text):,} characters.")

    def action_next_tab(self) -> None:
        self.board.move_tab(1)

    def action_prev_tab(self) -> None:
        self.board.move_tab(-1)

    def action_new_run(self) -> None:
        self.app.action_new_run()
