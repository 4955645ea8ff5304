"""The engine: the one place that changes a run. The TUI, CLI and server only call it.

Every change is a list of events applied to a copy of the run (so an illegal change is
refused before anything is written) and appended to the store in one transaction,
off the event loop. Front ends watch runs through `subscribe()`.

Branching is lazy: going back (`rewind`) only moves the run's cursor. Changing
anything at a step that later steps already built on (another selection, new
feedback, a regeneration) forks a child run from just before that decision, so the
original stays whole in history and the method returns the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass
from typing import Any

from writeit import events as ev
from writeit import prompts, providers
from writeit.errors import (
    AlreadyRun,
    Busy,
    InvalidAction,
    InvalidInput,
    InvalidTransition,
    StepRunning,
    TooManyRuns,
    UnknownResponse,
)
from writeit.events import Event, EventType, apply
from writeit.forecast import Forecast
from writeit.generation import Generation, Payloads, _Claim, _streamer
from writeit.models import (
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepStatus,
    StylePrimer,
    UserPreferences,
    UserSession,
    WriteItError,
    new_id,
)
from writeit.providers import check_model
from writeit.runs import CACHE_SIZE, DECISIONS, Runs
from writeit.store import Store
from writeit.workspaces import Workspace, get_workspace, load_preferences

CHOICES = DECISIONS - {EventType.FEEDBACK_GIVEN}


__all__ = ["Activity", "AlreadyRun", "Busy", "Engine", "StepRunning", "TooManyRuns"]


@dataclass(frozen=True)
class Activity:
    """What a run is doing now, as every front end should say it.

    `state`: `generating` (here), `elsewhere` (another live WriteIt process, `pid`),
    `stopped` (candidates interrupted or orphaned, none streaming: resume asks again),
    `paused`, `error`, `completed`, `pending` (the current step has not run),
    `choosing` (candidates to choose from) or `decided` (the step has its output)."""

    state: str
    pid: int | None = None
    streaming: int = 0


class Engine(Runs, Generation):
    """Every change to a run: starting, asking models, choosing, moving, branching."""

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        preferences: UserPreferences | None = None,
        store: Store | None = None,
        retry_backoff: float = 0.5,
        cache_size: int = CACHE_SIZE,
        front_end: str = "",
    ) -> None:
        self.workspace = workspace or get_workspace()
        self.preferences = preferences or load_preferences()
        self.store = store or self.workspace.open_store()
        self.retry_backoff = retry_backoff
        Runs.__init__(self, cache_size)
        Generation.__init__(self)
        self.session = UserSession(
            user_id="default",
            workspace_path=self.workspace.path,
            preferences=self.preferences,
            front_end=front_end,
        )

    def activity(self, run: PipelineRun) -> Activity:
        """What `run` (as read from this engine) is doing now."""
        run_id = run.pipeline_run_id
        if run_id in self._claims or self.streaming(run_id):
            return Activity("generating", os.getpid(), len(self.streaming(run_id)))
        run = self._settled(run)
        pid = _streamer(run, run.current_step)
        if pid is not None:
            return Activity("elsewhere", pid, len(run.streaming_ids))
        if run.status in (PipelineStatus.PAUSED, PipelineStatus.ERROR, PipelineStatus.COMPLETED):
            return Activity(run.status.value)
        step = run.current
        if step.status == StepStatus.PENDING:
            return Activity("pending")
        if step.status != StepStatus.RUNNING:
            return Activity("decided")
        if any(c.status == ResponseStatus.INTERRUPTED for c in step.candidates):
            return Activity("stopped")
        return Activity("choosing")

    # --- starting --------------------------------------------------------------------

    async def start_run(
        self,
        pipeline: str | PipelineConfiguration,
        inputs: dict[str, str],
        *,
        style: str | None = None,
        models: list[str] | None = None,
        step_models: dict[str, list[str]] | None = None,
        user_id: str = "default",
        blind: bool | None = None,
        budget_usd: float | None = None,
    ) -> PipelineRun:
        """`blind` (default: the `blind_review` preference) hides each step's models
        and shuffles its candidates until the writer decides. `budget_usd` (default: the
        `default_budget_usd` preference) is the most the run may spend."""
        from writeit import config

        if isinstance(pipeline, str):
            pipeline = config.get_pipeline(pipeline, self.pipeline_dirs())
        values = prompts.check_inputs(pipeline, inputs)
        models = list(models or [])
        step_models = {k: list(v) for k, v in (step_models or {}).items() if v}
        asked = set(models) or {
            m for s in pipeline.steps for m in step_models.get(s.name) or pipeline.models_for(s)
        }
        for name in sorted(asked):
            check_model(name)
        primer: StylePrimer | None = None
        style = style if style is not None else self.preferences.style_primer
        if style:
            try:
                primer = config.get_style(style, self.style_dirs())
            except WriteItError:
                if style != self.preferences.style_primer:
                    raise
        run_id = new_id()
        created = ev.RunCreated(
            pipeline=pipeline.model_dump(mode="json"),
            inputs=values,
            style=primer.primer_id if primer else None,
            style_prompt=primer.format_for_prompt() if primer else "",
            primer=primer.model_dump(mode="json") if primer else None,
            models=models,
            step_models=step_models,
            user_id=user_id,
            blind=self.preferences.blind_review if blind is None else blind,
            budget_usd=_budget(budget_usd, self.preferences.default_budget_usd),
        )
        event = Event.of(created, seq=1, run_id=run_id)
        run = ev.new_run(event)
        extra = {f"primer:{primer.primer_id}": primer.model_dump(mode="json")} if primer else {}
        extra |= self._session_keys(run) or {}
        await asyncio.to_thread(self.store.append, run, [event], 0, extra=extra)
        self._remember(run)
        self._publish_status(run, EventType.RUN_CREATED)
        return run

    # --- executing a step --------------------------------------------------------------

    # --- executing a step --------------------------------------------------------------

    async def execute_step(
        self,
        run_id: str,
        *,
        guidance: str | None = None,
        models: list[str] | None = None,
    ) -> PipelineRun:
        """Ask every model of the current step for a candidate and wait for them all."""
        run = await self.start_step(run_id, guidance=guidance, models=models)
        return await self.wait(run.pipeline_run_id)

    async def wait(self, run_id: str) -> PipelineRun:
        """The run once its responses in flight (if any) have finished."""
        run_id = self.resolve(run_id)
        task = self._generations.get(run_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        return self.load(run_id)

    async def start_step(
        self,
        run_id: str,
        *,
        guidance: str | None = None,
        models: list[str] | None = None,
        again: bool = True,
    ) -> PipelineRun:
        """Ask every model of the current step for a candidate (again, if it ran before,
        unless `again` is False: then a step with candidates is refused with AlreadyRun,
        so a repeated request cannot spend tokens twice).

        Returns as soon as the requests are out, with the run's streaming responses;
        watch them with `subscribe()` and wait for them with `wait()`. The run returned
        may be a new branch (see the module docstring)."""
        run = await self.fetch(run_id)
        with self._claimed(run) as claim:
            return await self._start(run, claim, guidance=guidance, models=models, again=again)

    async def _start(
        self,
        run: PipelineRun,
        claim: _Claim,
        *,
        guidance: str | None = None,
        models: list[str] | None = None,
        again: bool = True,
    ) -> PipelineRun:
        run = self._hold(claim, await self._branch_if_behind(run, run.current_step))
        run_id = run.pipeline_run_id
        step_name = run.current_step
        chosen = list(models or run.models_for(step_name))
        if not chosen:
            raise InvalidInput(
                f"step {step_name!r} has no models to ask",
                hint="pass --model, or set defaults.models in the pipeline",
            )
        prompt = prompts.render_prompt(run, step_name, guidance or "")

        def build(current: PipelineRun) -> Payloads:
            step = current.steps[step_name]
            if not again and step.ai_responses:
                raise AlreadyRun(
                    f"step {step_name!r} of run {run_id[:8]} has already run",
                    hint="regenerate for new candidates; resume finishes interrupted ones",
                )
            specs = self._reopening(current, completed_ok=False)
            if step.status == StepStatus.RUNNING:
                specs.append(ev.StepReset(step=step_name))
            attempt = step.attempt + 1 if step.ai_responses else 1
            started = ev.StepStarted(
                step=step_name,
                models=chosen,
                prompt=prompt,
                attempt=attempt,
                guidance=guidance or None,
                order=random.sample(range(len(chosen)), len(chosen)) if current.blind else None,
            )
            return [*specs, started]

        run, _ = await self._launch(
            run_id, step_name, chosen, prompt, claim=claim, lead=build, instruction=guidance
        )
        return run

    # --- choosing ----------------------------------------------------------------------

    async def select(
        self,
        run_id: str,
        response: str | int,
        feedback: str | None = None,
        *,
        by: str | None = None,
    ) -> PipelineRun:
        """Choose a candidate (a response id, or an index into the latest candidates).

        Candidates still streaming in this process stop (their text is kept): the writer
        has chosen, and more tokens would be spent for nothing."""
        run = await self.fetch(run_id)
        step = run.current
        response_id = _response_id(step, response)
        response_obj = step.response(response_id)
        if response_obj.status != ResponseStatus.COMPLETED:
            raise InvalidInput(
                f"the {response_obj.model_name} response is {response_obj.status.value}",
                hint="wait for it to finish, or choose a finished one"
                if response_obj.status == ResponseStatus.STREAMING
                else "choose a finished one, or ask again for this one (retry)",
            )
        if self._stop_streams(run.pipeline_run_id, "the writer chose another candidate"):
            run = await self.wait(run.pipeline_run_id)
            step = run.current
        self._check_idle(run)
        same = (
            step.status == StepStatus.COMPLETED
            and step.user_selection is not None
            and (step.ai_responses[step.user_selection].response_id == response_id)
        )
        if same and (feedback is None or feedback == (step.user_feedback or "")):
            return run
        run = await self._branch_if_behind(run, step.step_name)
        step_name = step.step_name

        def build(current: PipelineRun) -> Payloads:
            chosen = ev.ResponseSelected(
                step=step_name,
                response_id=response_id,
                feedback=feedback,
                blind=current.steps[step_name].hidden,
                by=by,
            )
            return [*self._reopening(current), chosen]

        return await self._commit(run.pipeline_run_id, build)

    def _reopening(self, run: PipelineRun, *, completed_ok: bool = True) -> Payloads:
        """Acting on a new, paused or failed run brings it (back) to running first."""
        if run.status == PipelineStatus.INITIALIZING:
            return [ev.RunStarted()]
        if run.status in (PipelineStatus.PAUSED, PipelineStatus.ERROR):
            return [ev.RunResumed()]
        if run.status == PipelineStatus.COMPLETED and not completed_ok:
            short = run.pipeline_run_id[:8]
            raise InvalidAction(
                f"run {short} is completed",
                hint=f"fork it to change it: writeit fork {short} --step {run.current_step}",
            )
        return []

    async def give_feedback(
        self, run_id: str, feedback: str, step: str | None = None
    ) -> PipelineRun:
        """Feedback on the current step; the next step's prompt receives it. With `step`
        the previous step, feedback on what the current step is about to build on: taken
        only before the current step runs (afterwards it would rewrite what that step
        was asked; rewind and select again with feedback instead, which branches)."""
        run = await self.fetch(run_id)
        if step is not None and step != run.current_step:
            return await self._feedback_before(run, step, feedback)
        step = run.current
        if (step.user_feedback or "") == feedback:
            return run
        run = await self._branch_if_behind(run, step.step_name, keep_choice=True)
        return await self._commit(
            run.pipeline_run_id,
            lambda current: [ev.FeedbackGiven(step=current.current_step, feedback=feedback)],
        )

    async def _feedback_before(self, run: PipelineRun, step: str, feedback: str) -> PipelineRun:
        current_step = run.current_step
        if step != run.pipeline.previous_step(current_step):
            raise InvalidInput(
                f"feedback goes on the current step {current_step!r} or the one before it",
                hint="rewind to that step first",
            )
        if (run.steps[step].user_feedback or "") == feedback:
            return run

        def build(current: PipelineRun) -> Payloads:
            if current.current_step != current_step or current.current.ai_responses:
                raise AlreadyRun(
                    f"step {current.current_step!r} has already run on {step!r} as it was",
                    hint=f"rewind to {step!r} and select again with feedback (this branches)",
                )
            return [ev.FeedbackGiven(step=step, feedback=feedback)]

        return await self._commit(run.pipeline_run_id, build)

    async def merge(
        self,
        run_id: str,
        responses: list[str | int],
        *,
        instruction: str | None = None,
        text: str | None = None,
        model: str | None = None,
        edited_from: str | None = None,
        by: str | None = None,
    ) -> PipelineRun:
        """Merge candidates: with `text` as written by hand, else streamed by a model.
        `edited_from` names the response (an AI merge) that `text` is the writer's edit of,
        so the provenance says "merged by a model, edited by hand"."""
        run = await self.fetch(run_id)
        step = run.current
        if edited_from is not None:
            edited_from = step.response(edited_from).response_id
        ids = [_response_id(step, r) for r in responses]
        sources = [step.response(i) for i in ids]
        if text is None and len(ids) < 2:
            raise InvalidInput("an AI merge needs two or more responses", hint="pick at least two")
        for source in sources:
            if source.status != ResponseStatus.COMPLETED:
                raise InvalidInput(
                    f"the {source.model_name} response is {source.status.value}; merge completed ones"
                )
        if text is not None:
            self._check_idle(run)
            run = await self._branch_if_behind(run, step.step_name)
            return await self._merged(
                run.pipeline_run_id,
                step.step_name,
                ids,
                text,
                instruction,
                edited=edited_from,
                by=by,
            )
        with self._claimed(run) as claim:
            run = self._hold(claim, await self._branch_if_behind(run, step.step_name))
            run_id, step_name = run.pipeline_run_id, step.step_name
            prompt = prompts.merge_prompt([s.processed_content for s in sources], instruction)
            merge_model = model or sources[0].model_name
            run = await self._generate(
                run_id,
                step_name,
                [merge_model],
                prompt,
                claim=claim,
                kind="merge",
                instruction=instruction,
            )
            merged = run.steps[step_name].ai_responses[-1]
            if merged.status != ResponseStatus.COMPLETED:
                raise providers.ProviderError(
                    f"the merge by {merge_model} failed: {merged.error}",
                    code="merge_failed",
                    run_id=run_id,  # may be a new branch: the failed merge is shown there
                )
            text = merged.processed_content
            return await self._merged(
                run_id, step_name, ids, text, instruction, merged.response_id, by=by
            )

    async def _merged(
        self,
        run_id: str,
        step_name: str,
        ids: list[str],
        text: str,
        instruction: str | None,
        merge_id: str | None = None,
        *,
        edited: str | None = None,
        by: str | None = None,
    ) -> PipelineRun:
        final_text = text

        def build(current: PipelineRun) -> Payloads:
            merged = ev.ResponsesMerged(
                step=step_name,
                text=final_text,
                response_ids=ids,
                merge_response_id=merge_id,
                edited_from=edited,
                instruction=instruction or None,
                blind=current.steps[step_name].hidden,
                by=by,
            )
            return [*self._reopening(current), merged]

        return await self._commit(run_id, build)

    async def judge(self, run_id: str, model: str) -> PipelineRun:
        """Ask a judge model to score the current step's completed candidates (0..1)."""
        run = await self.fetch(run_id)
        check_model(model)
        step = run.current
        completed = [r for r in step.candidates if r.status == ResponseStatus.COMPLETED]
        if not completed:
            raise InvalidAction(f"step {step.step_name!r} has no completed candidate to judge")
        prompt = prompts.judge_prompt(step.prompt, [r.processed_content for r in completed])
        with self._claimed(run) as claim:
            run = await self._generate(
                run.pipeline_run_id, step.step_name, [model], prompt, claim=claim, kind="judge"
            )
        verdict = run.steps[step.step_name].ai_responses[-1]
        if verdict.status != ResponseStatus.COMPLETED:
            raise providers.ProviderError(
                f"the judge {model} failed: {verdict.error}",
                code="judge_failed",
                run_id=run.pipeline_run_id,
            )
        scores = {
            completed[index].response_id: score
            for index, score in prompts.parse_scores(
                verdict.processed_content, len(completed)
            ).items()
        }
        if not scores:
            return run
        return await self._commit(
            run.pipeline_run_id,
            lambda current: [ev.ResponsesJudged(step=step.step_name, scores=scores, judge=model)],
        )

    async def retry_response(
        self, run_id: str, response: str | int, model: str | None = None
    ) -> PipelineRun:
        """Ask again for one failed or interrupted candidate, optionally of another model."""
        run = await self.fetch(run_id)
        step = run.current
        old = step.response(_response_id(step, response))
        if old.status == ResponseStatus.COMPLETED and model is None:
            raise InvalidInput(
                "that response completed", hint="regenerate the step to get new candidates"
            )
        if model:
            check_model(model)
        with self._claimed(run) as claim:
            return await self._generate(
                run.pipeline_run_id,
                step.step_name,
                [model or old.model_name],
                step.prompt,
                claim=claim,
                # a failed one is replaced in place; a finished one gains a neighbour
                replaces=[old.response_id] if old.status != ResponseStatus.COMPLETED else None,
            )

    async def regenerate(self, run_id: str, guidance: str | None = None) -> PipelineRun:
        """New candidates for the current step; `guidance` steers them (G in the TUI)."""
        return await self.execute_step(run_id, guidance=guidance)

    # --- moving ------------------------------------------------------------------------

    async def accept(self, run_id: str) -> PipelineRun:
        """Go on from a decided step: to the next step, or complete the run at the end. A
        step with exactly one finished candidate and no choice yet goes on with it."""
        run = await self.fetch(run_id)
        step = run.current
        finished = [c for c in step.candidates if c.status == ResponseStatus.COMPLETED]
        if step.status == StepStatus.RUNNING and len(finished) == 1:
            run = await self.select(run.pipeline_run_id, finished[0].response_id)
            step = run.current
        self._check_idle(run)
        if step.status not in (StepStatus.COMPLETED, StepStatus.SKIPPED):
            raise InvalidAction(
                f"step {step.step_name!r} has no choice yet",
                hint="select a candidate (1..9) or merge some before going on",
            )

        def build(current: PipelineRun) -> Payloads:
            following = current.pipeline.next_step(current.current_step)
            if following is None:
                if current.status == PipelineStatus.COMPLETED:
                    return []
                return [*self._reopening(current), ev.RunCompleted()]
            return [ev.StepAdvanced(from_step=current.current_step, to=following)]

        return await self._commit(run.pipeline_run_id, build)

    async def skip(self, run_id: str, *, by: str | None = None) -> PipelineRun:
        run = await self.fetch(run_id)
        self._check_idle(run)
        spec = run.pipeline.step(run.current_step)
        if not spec.skippable:
            raise InvalidAction(
                f"step {spec.name!r} cannot be skipped",
                hint="the pipeline marks skippable steps with `skippable: true`",
            )
        run = await self._branch_if_behind(run, spec.name)

        def build(current: PipelineRun) -> Payloads:
            specs = self._reopening(current)
            if current.current.status == StepStatus.RUNNING:
                specs.append(ev.StepReset(step=spec.name))
            skipped = ev.StepSkipped(step=spec.name, blind=current.current.hidden, by=by)
            return [*specs, skipped]

        await self._commit(run.pipeline_run_id, build)
        return await self.accept(run.pipeline_run_id)

    async def rewind(self, run_id: str, step: str | None = None) -> PipelineRun:
        """Move back to an earlier step (default: the previous one). Nothing is dropped."""
        run = await self.fetch(run_id)
        self._check_idle(run)
        target = step or run.pipeline.previous_step(run.current_step)
        if target is None:
            raise InvalidAction("already at the first step")
        run.pipeline.step(target)
        if run.pipeline.step_names.index(target) > run.step_index:
            raise InvalidAction(
                f"{target!r} comes after the current step {run.current_step!r}",
                hint="rewind goes back; accept the current step to go on",
            )
        if run.steps[target].status == StepStatus.PENDING:
            raise InvalidAction(f"step {target!r} has not run yet")
        return await self._commit(run.pipeline_run_id, lambda current: [ev.Rewound(step=target)])

    async def fork(self, run_id: str, step: str) -> PipelineRun:
        """A new run sharing this one's history up to `step`'s decision (no copying)."""
        run = await self.fetch(run_id)
        run.pipeline.step(step)
        if run.steps[step].status not in (StepStatus.COMPLETED, StepStatus.SKIPPED):
            raise InvalidAction(
                f"step {step!r} is not completed in run {run.pipeline_run_id[:8]}",
                hint="fork from a step that has a selection",
            )
        events = await asyncio.to_thread(self.store.events, run.pipeline_run_id)
        decisions = [e.seq for e in events if e.type in DECISIONS and e.step == step]
        return await self._fork_at(run, step, decisions[-1], current_step=step)

    async def _branch_if_behind(
        self, run: PipelineRun, step: str, *, keep_choice: bool = False
    ) -> PipelineRun:
        """Fork when a change at `step` would rewrite work that later steps built on.

        The branch starts just before the step's first choice (a pick, merge or skip,
        all made once its candidates finished), so a new choice is made there; with
        `keep_choice` (new feedback only) it starts after the last decision. Feedback
        given while the candidates streamed does not move the branch into the stream."""
        names = run.pipeline.step_names
        later = names[names.index(step) + 1 :]
        built_on = any(run.steps[name].status != StepStatus.PENDING for name in later)
        decided = run.steps[step].status in (StepStatus.COMPLETED, StepStatus.SKIPPED)
        if not (built_on or run.status == PipelineStatus.COMPLETED) or not decided:
            return run
        events = await asyncio.to_thread(self.store.events, run.pipeline_run_id)
        last_start = max(
            (e.seq for e in events if e.type == EventType.STEP_STARTED and e.step == step),
            default=0,
        )
        decisions = [
            e.seq for e in events if e.type in DECISIONS and e.step == step and e.seq > last_start
        ]
        choices = [
            e.seq for e in events if e.type in CHOICES and e.step == step and e.seq > last_start
        ]
        branch_seq = decisions[-1] if keep_choice else (choices or decisions)[0] - 1
        return await self._fork_at(run, step, branch_seq, current_step=step)

    async def _fork_at(
        self,
        run: PipelineRun,
        step: str,
        branch_seq: int,
        current_step: str,
        *,
        replay: dict[str, Any] | None = None,
    ) -> PipelineRun:
        parent_id = run.pipeline_run_id
        child = await asyncio.to_thread(self.store.state_at, parent_id, branch_seq)
        child_id = new_id()
        forked = ev.RunForked(
            parent=parent_id,
            branch_point=step,
            branch_seq=branch_seq,
            current_step=current_step,
            **(replay or {}),
        )
        # A response still streaming at the branch point streams on in the parent only.
        reason = "still streaming when this branch was made; see the parent run"
        specs: Payloads = [
            forked,
            *(
                ev.ResponseInterrupted(response_id=rid, reason=reason)
                for rid in child.streaming_ids
            ),
        ]
        events = []
        for payload in specs:
            events.append(Event.of(payload, seq=child.last_seq + 1, run_id=child_id))
            apply(child, events[-1])
        extra = self._session_keys(child) or {}
        if replay and child.primer is not None:
            extra[f"primer:{child.primer.primer_id}"] = child.primer.model_dump(mode="json")
        await asyncio.to_thread(self.store.append, child, events, 0, extra=extra or None)
        self._remember(child)
        self._publish("forked", parent_id, child=child_id, step=step, branch_seq=branch_seq)
        self._publish_status(child, EventType.RUN_FORKED)
        return child

    # --- replaying ---------------------------------------------------------------------

    async def replay(
        self,
        run_id: str,
        from_step: str,
        *,
        models: list[str] | None = None,
        style: str | None = None,
        start: bool = False,
    ) -> PipelineRun:
        """A new branch that keeps every choice made before `from_step` (no model is
        asked for them) and asks `from_step` and the steps after it again: of `models`
        and in `style` when given (`style=""`: no style), both recorded on the branch's
        `run_forked`. The parent stays as it was.

        With `start`, `from_step`'s models are asked at once (the TUI, the server: watch
        with `subscribe()`); else the branch waits at `from_step` (a headless replay
        drives it with the autopilot)."""
        run = await self.fetch(run_id)
        names = run.pipeline.step_names
        run.pipeline.step(from_step)
        earlier = names[: names.index(from_step)]
        short = run.pipeline_run_id[:8]
        for name in earlier:
            if run.steps[name].status not in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                raise InvalidAction(
                    f"step {name!r} of run {short} has no choice yet, so {from_step!r} "
                    "has nothing to build on",
                    hint=f"replay from {name!r}, or choose there first: writeit resume {short}",
                )
        for name in sorted(set(models or [])):
            check_model(name)
        changes: dict[str, Any] = {"replay": True}
        if models:
            table = {name: run.models_for(name) for name in earlier}
            changes |= {
                "models": [],
                "step_models": table | dict.fromkeys(names[len(earlier) :], list(models)),
            }
        if style is not None:
            changes |= self._replay_style(style)
        events = await asyncio.to_thread(self.store.events, run.pipeline_run_id)
        branch_seq = _replay_point(events, earlier, short)
        child = await self._fork_at(
            run, from_step, branch_seq, current_step=from_step, replay=changes
        )
        if start:
            return await self.start_step(child.pipeline_run_id)
        return child

    def _replay_style(self, style: str) -> dict[str, Any]:
        """A replay's style as `run_forked` records it ("" for none)."""
        from writeit import config

        if not style:
            return {"style": None, "style_prompt": "", "primer": None}
        primer = config.get_style(style, self.style_dirs())
        return {
            "style": primer.primer_id,
            "style_prompt": primer.format_for_prompt(),
            "primer": primer.model_dump(mode="json"),
        }

    # --- pausing, resuming, completing --------------------------------------------------

    async def pause(self, run_id: str) -> PipelineRun:
        """Stop any streaming (text so far is kept) and mark the run paused. A run
        streaming in another process is paused in the log; that process stops its
        streams at its next checkpoint."""
        run_id = self.resolve(run_id)
        if self._stop_streams(run_id, "paused by the writer"):
            await self.wait(run_id)  # the generation records them interrupted

        def build(current: PipelineRun) -> Payloads:
            if current.status == PipelineStatus.PAUSED:
                return []
            if current.status != PipelineStatus.RUNNING:
                raise InvalidTransition(
                    f"run {run_id[:8]} is {current.status.value}; only a running run can be paused"
                )
            return [ev.RunPaused()]

        return await self._commit(run_id, build, retry=True)

    async def resume(
        self, run_id: str, model: str | None = None, *, budget_usd: float | None = None
    ) -> PipelineRun:
        """Continue a paused, failed or interrupted (crashed) run where it stopped: the
        current step's interrupted candidates are asked again, in their place. With
        `model`, that model is asked instead, for the failed candidates too. With
        `budget_usd`, the run's budget is that from now on (raise it to go on)."""
        run = await self.fetch(run_id)
        if model:
            check_model(model)
        if budget_usd is not None:
            run = await self.set_budget(run.pipeline_run_id, budget_usd)
        with self._claimed(run) as claim:
            return await self._resume(run, claim, model)

    async def _resume(self, run: PipelineRun, claim: _Claim, model: str | None) -> PipelineRun:
        run_id = run.pipeline_run_id
        if run.status == PipelineStatus.COMPLETED:
            return run
        run = await self._commit(run_id, self._reopening)
        step = run.current
        if step.status == StepStatus.PENDING:
            return await self._start_and_wait(run, claim)
        if step.status != StepStatus.RUNNING:
            return run
        candidates = step.candidates
        again = {ResponseStatus.INTERRUPTED} | ({ResponseStatus.FAILED} if model else set())
        redo = [r for r in candidates if r.status in again]
        if redo:
            return await self._generate(
                run_id,
                step.step_name,
                [model or r.model_name for r in redo],
                step.prompt,
                claim=claim,
                replaces=[r.response_id for r in redo],
            )
        if candidates and all(r.status == ResponseStatus.FAILED for r in candidates):
            return await self._start_and_wait(run, claim)
        return run

    async def _start_and_wait(self, run: PipelineRun, claim: _Claim) -> PipelineRun:
        run = await self._start(run, claim)
        return await self.wait(run.pipeline_run_id)

    async def set_budget(self, run_id: str, budget_usd: float | None) -> PipelineRun:
        """The most the run may spend from now on, in USD (None: no limit)."""
        run = await self.fetch(run_id)
        value = None if budget_usd is None else _budget(budget_usd, None)
        if run.budget_usd == value:
            return run
        return await self._commit(
            run.pipeline_run_id, lambda current: [ev.BudgetSet(budget_usd=value)]
        )

    def forecast(
        self,
        run_id: str | None = None,
        *,
        pipeline: str | PipelineConfiguration | None = None,
        inputs: dict[str, str] | None = None,
        style: str | None = None,
        models: list[str] | None = None,
        step_models: dict[str, list[str]] | None = None,
    ) -> Forecast:
        """What the steps still to run will cost: of a run (from its current step if
        it has not run, else the next), or of a new run of `pipeline` with `inputs`."""
        from writeit import forecast

        if run_id is not None:
            return forecast.of_run(self.load(self.resolve(run_id)), self.price_of, self.history)
        if pipeline is None:
            raise InvalidInput("forecast a run id, or a pipeline with its inputs")
        return forecast.of_new_run(
            pipeline,
            inputs or {},
            style=self.preferences.style_primer if style is None else style,
            models=models or [],
            step_models=step_models or {},
            pipeline_dirs=self.pipeline_dirs(),
            style_dirs=self.style_dirs(),
            price_of=self.price_of,
            history=self.history(),
        )

    async def delete(self, run_id: str) -> PipelineRun:
        """Hide a run from listings; its history stays, since forks may share it."""
        run = await self.fetch(run_id)
        self._check_idle(run)
        return await self._commit(run.pipeline_run_id, lambda current: [ev.RunDeleted()])

    async def close(self) -> None:
        """Stop every stream with its text checkpointed, pausing the runs it belonged to."""
        for run_id in {s.run_id for s in self._streams.values()}:
            with contextlib.suppress(WriteItError):
                await self.pause(run_id)
        await self.logged()


# --- helpers -------------------------------------------------------------------------------


def _budget(given: float | None, default: float | None) -> float | None:
    """A run's budget in USD: the one given, else the preference; never negative."""
    value = given if given is not None else default
    if value is not None and value < 0:
        raise InvalidInput(f"a budget of {value} USD", hint="give a budget of 0 or more")
    return value


def _replay_point(events: list[Event], earlier: list[str], short: str) -> int:
    """The event a replay branches after: the last decision (choice or feedback) on the
    steps before the replayed one, none of the later steps begun yet (1, the run's
    creation, for a replay from the first step)."""
    kept = set(earlier)
    point = max(
        (e.seq for e in events if e.type in DECISIONS and e.step in kept),
        default=1,
    )
    begun = [e.seq for e in events if e.type == EventType.STEP_STARTED and e.step not in kept]
    if begun and min(begun) < point:
        raise InvalidAction(
            f"run {short} changed an earlier step after a later one had begun",
            hint="replay from a branch made at that change (writeit tree lists them)",
        )
    return point


def _response_id(step: Any, response: str | int) -> str:
    """A response of the step from a candidate's 0-based index or an id (or a prefix)."""
    if isinstance(response, int):
        candidates = step.candidates
        if not 0 <= response < len(candidates):
            raise UnknownResponse(
                f"step {step.step_name!r} has no candidate at index {response}",
                hint=f"indexes are 0..{len(candidates) - 1} (the TUI numbers them 1..)"
                if candidates
                else "run the step first",
            )
        return candidates[response].response_id
    prefix = response.strip().lower()
    matches = [r.response_id for r in step.ai_responses if r.response_id.startswith(prefix)]
    if len(matches) != 1:
        raise UnknownResponse(
            f"{'no' if not matches else 'more than one'} response of step "
            f"{step.step_name!r} matches {response!r}",
            hint="use an id from the run's candidates",
        )
    return matches[0]
