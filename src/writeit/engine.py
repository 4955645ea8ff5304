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
import functools
import logging
import os
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from writeit import events as ev
from writeit import processes, prompts, providers, quality
from writeit.errors import (
    AlreadyRun,
    Busy,
    InvalidAction,
    InvalidInput,
    StepRunning,
    TooManyRuns,
)
from writeit.events import Event, EventType, Payload, apply
from writeit.models import (
    AIResponse,
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepStatus,
    StylePrimer,
    TokenUsage,
    UserPreferences,
    UserSession,
    WriteItError,
    new_id,
    utcnow,
)
from writeit.providers import check_model
from writeit.store import Conflict, Store
from writeit.updates import Subscription, Update
from writeit.workspaces import Workspace, get_workspace, load_preferences

CACHE_SIZE = 64  # idle runs kept folded in memory; runs generating are never evicted
CHECKPOINT_SECONDS = 0.5  # a crash loses at most this much of a streaming response
CONFLICT_RETRIES = 5  # a stream's own writes, refolded when another process got in first
log = logging.getLogger(__name__)
MOVES = {EventType.STEP_ADVANCED, EventType.REWOUND, EventType.STEP_SKIPPED}
DECISIONS = {
    EventType.RESPONSE_SELECTED,
    EventType.RESPONSES_MERGED,
    EventType.STEP_SKIPPED,
    EventType.FEEDBACK_GIVEN,
}
CHOICES = DECISIONS - {EventType.FEEDBACK_GIVEN}
# Runs claimed by any engine of this process: a stream recorded with this pid is live
# while its run is claimed here (engines share a process in tests and tools).
_claimed_here: Counter[str] = Counter()


__all__ = ["AlreadyRun", "Busy", "Engine", "StepRunning", "TooManyRuns"]


@dataclass
class _Stream:
    """One response being streamed in this process: its text not yet checkpointed.

    `taken` chunks at the buffer's head are in a write in flight; they leave the buffer
    only once it lands, so a refused write loses no text. `reason` says why it was
    stopped, when it was."""

    run_id: str
    step: str
    model: str
    buffer: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None
    taken: int = 0
    reason: str = "it did not finish"


@dataclass(eq=False)
class _Claim:
    """A generation this process is starting or running: the runs it holds (the run,
    and a branch made for it) and one `max_concurrent_pipelines` slot. `handed` once
    a generation task owns it and will release it when the streams end."""

    runs: set[str]
    handed: bool = False


Specs = list[Payload]


class Engine:
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
        self._runs: OrderedDict[str, PipelineRun] = OrderedDict()  # least recent first
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.cache_size = cache_size
        self._streams: dict[str, _Stream] = {}
        self._writing: set[str] = set()  # runs with an append of ours in flight
        self._loop: asyncio.AbstractEventLoop | None = None  # the watchers' loop
        self._generations: dict[str, asyncio.Task[PipelineRun]] = {}
        self._claims: dict[str, _Claim] = {}
        self.session = UserSession(
            user_id="default",
            workspace_path=self.workspace.path,
            preferences=self.preferences,
            front_end=front_end,
        )
        self._subscribers: list[Subscription] = []

    # --- watching --------------------------------------------------------------------

    def subscribe(self, run_id: str | None = None, maxsize: int = 10_000) -> Subscription:
        with contextlib.suppress(RuntimeError):  # updates are offered on the watchers' loop
            self._loop = asyncio.get_running_loop()
        subscription = Subscription(self._subscribers, run_id, maxsize)
        self._subscribers.append(subscription)
        return subscription

    def _publish(self, kind: str, run_id: str, /, **data: Any) -> None:
        if not self._subscribers:  # the headless hot path: a delta per token, nobody watching
            return
        update = Update(kind, run_id, data)
        for subscriber in list(self._subscribers):
            subscriber.offer(update)

    # --- reading ---------------------------------------------------------------------

    def resolve(self, run_id: str) -> str:
        return run_id if run_id in self._runs else self.store.resolve(run_id)

    def load(self, run_id: str) -> PipelineRun:
        """The run as stored now (a fresh fold when another process moved it on), with
        the streams of processes that are gone shown as interrupted.

        Runs handed out never change afterwards: commits apply events to a copy."""
        return self._settled(self._load(run_id))

    def _load(self, run_id: str) -> PipelineRun:
        """The run as its log folds, orphans still streaming."""
        run_id = self.resolve(run_id)
        run = self._cached(run_id)
        if run is not None:
            return run
        cached = self._runs.get(run_id)
        run = self._caught_up(cached) if cached is not None else self.store.load(run_id)
        if cached is not None and (run_id in self._writing or cached.last_seq >= run.last_seq):
            return cached  # a fold begun before our latest write landed: older than the cache
        self._remember(run)
        if cached is not None:
            self._moved_elsewhere(run_id)
        return run

    def _caught_up(self, cached: PipelineRun) -> PipelineRun:
        """The cached run with the events another process appended since (only those are
        read); a tail that does not apply (a damaged log) falls back to a full fold."""
        run = cached.writable()
        try:
            for event in self.store.tail(run.pipeline_run_id, cached.last_seq):
                apply(run, event)
        except WriteItError as error:
            log.warning("refolding run %s: %s", run.pipeline_run_id[:8], error)
            return self.store.load(run.pipeline_run_id)
        return run

    def _remember(self, run: PipelineRun) -> None:
        """Cache a run as the most recent; past `cache_size`, the least recent idle runs
        (no claim, no stream, no write or lock held) are dropped with their locks, so a
        long-lived server's memory stays flat as runs accumulate."""
        run_id = run.pipeline_run_id
        self._runs[run_id] = run
        with contextlib.suppress(KeyError):
            self._runs.move_to_end(run_id)
        if len(self._runs) <= self.cache_size:
            return
        for old in list(self._runs):
            if len(self._runs) <= self.cache_size:
                break
            if self._pinned(old):
                continue
            self._runs.pop(old, None)
            self._locks.pop(old, None)

    def _pinned(self, run_id: str) -> bool:
        lock = self._locks.get(run_id)
        return (
            run_id in self._claims
            or run_id in self._writing
            or bool(self.streaming(run_id))
            or (lock is not None and lock.locked())
        )

    def _moved_elsewhere(self, run_id: str) -> None:
        """Tell watchers (each WebSocket client, the TUI) that another process moved the
        run on, whichever reader noticed first; from the loop, as updates always are."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # folded in a worker thread
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._publish, "external", run_id)
            return
        self._publish("external", run_id)

    def _cached(self, run_id: str) -> PipelineRun | None:
        """The cached run, unless the store holds newer events. While our own write is in
        flight the store may be a step ahead of it: the cache (plus the stream buffers,
        which keep their text until the write lands) is still the whole truth."""
        cached = self._runs.get(run_id)
        if cached is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                self._runs.move_to_end(run_id)
        if cached is None or run_id in self._writing:
            return cached
        return cached if cached.last_seq >= self.store.summary(run_id).last_seq else None

    def changed_elsewhere(self, run_id: str) -> bool:
        """Whether another process appended to the run since this engine last read it:
        LMDB tells no one, so watchers of a shared store ask."""
        return run_id in self._runs and self._cached(run_id) is None

    async def fetch(self, run_id: str) -> PipelineRun:
        """`load` for the event loop: the engine's copy when it is current (one small read),
        else the store is folded in a thread (a run not read yet, or an id prefix, or a run
        another process moved on)."""
        return self._settled(await self._fetch(run_id))

    async def _fetch(self, run_id: str) -> PipelineRun:
        return self._cached(run_id) or await asyncio.to_thread(self._load, run_id)

    def _orphans(self, run: PipelineRun) -> list[AIResponse]:
        """Responses recorded as streaming whose process is gone (killed, crashed): no
        one will finish them. Ours are orphans only once their generation has ended."""
        responses = [run.find_response(rid)[1] for rid in run.streaming_ids]
        return [
            response
            for response in responses
            if response.response_id not in self._streams
            and not self._owned(run.pipeline_run_id, response)
        ]

    def _owned(self, run_id: str, response: AIResponse) -> bool:
        """Whether a live process will still finish this streaming response."""
        if processes.alive(response.pid, response.pid_started) and response.pid == os.getpid():
            return _claimed_here[run_id] > 0  # started here, and its generation is on
        return processes.alive(response.pid, response.pid_started)

    def _settled(self, run: PipelineRun) -> PipelineRun:
        """The run as a reader should see it: orphans interrupted. The log says so on the
        run's next write (`_commit_now`), so a read never writes."""
        orphans = {r.response_id for r in self._orphans(run)}
        if not orphans:
            return run
        view = run.writable()
        for response_id in orphans:
            _, response = view.changing(response_id)
            response.status = ResponseStatus.INTERRUPTED
            response.error = _orphan_reason(response)
            view.ended(response)
        return view

    def snapshot(self, run_id: str) -> PipelineRun:
        """A copy of the run with the text streamed so far, checkpointed or not yet."""
        run = self.load(run_id).model_copy(deep=True)
        for response_id, stream in list(self._streams.items()):
            if stream.run_id == run.pipeline_run_id and stream.buffer:
                _, response = run.find_response(response_id)
                response.raw_output += "".join(stream.buffer)
        return run

    async def save_draft(self, run_id: str, name: str, text: str) -> None:
        """Keep text the writer is typing (say `feedback:outline`) until it is given;
        empty text drops it. Drafts live beside the run, never in its history."""
        await asyncio.to_thread(self.store.save_draft, self.resolve(run_id), name, text)

    def drafts(self, run_id: str) -> dict[str, str]:
        """The run's unsent drafts by name."""
        return self.store.drafts(self.resolve(run_id))

    async def live(self, run_id: str) -> PipelineRun:
        """`snapshot` for the event loop: any fold happens in a thread first."""
        await self.fetch(run_id)
        return self.snapshot(run_id)

    def streaming(self, run_id: str | None = None) -> list[str]:
        """Ids of the responses streaming now: of one run, or of every run."""
        return [rid for rid, s in self._streams.items() if run_id in (None, s.run_id)]

    def pipeline_dirs(self) -> list:
        return self.workspace.config_dirs("pipelines")

    def style_dirs(self) -> list:
        return self.workspace.config_dirs("styles")

    # --- committing ------------------------------------------------------------------

    async def _commit(
        self,
        run_id: str,
        build: Callable[[PipelineRun], Specs],
        *,
        index: bool = True,
        retry: bool = False,
        slots: int | None = None,
    ) -> PipelineRun:
        """Commit atomically even when the caller is cancelled (say, a stream stopped by a
        pause while it records its completion): the write lands, then the cancel goes on."""
        task = asyncio.ensure_future(
            self._commit_now(run_id, build, index=index, retry=retry, slots=slots)
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    async def _commit_now(
        self,
        run_id: str,
        build: Callable[[PipelineRun], Specs],
        *,
        index: bool = True,
        retry: bool = False,
        slots: int | None = None,
    ) -> PipelineRun:
        """Build events from the current state, apply them, append, publish.

        `build` sees the run as readers do (orphans interrupted) and runs under the run's
        lock, so events built from in-process buffers stay in order; the orphans'
        interruption is recorded first. Events apply to a copy that replaces the cached
        run once the append lands, so a refused event or a failed append changes nothing
        in memory either. With `retry`, `build` runs again on the fresh log when another
        process appended first: for facts (what a stream produced) and for claims, whose
        build checks again that the step is free. `slots`: see `Store.append`.
        """
        attempts = CONFLICT_RETRIES if retry else 1
        async with self._locks[run_id]:
            for attempt in range(1, attempts + 1):
                run = await self._fetch(run_id)
                try:
                    view = self._settled(run)
                    specs = build(view)
                    if not specs:
                        return view
                    specs = _orphan_specs(self._orphans(run)) + specs
                    work = run.writable()
                    events = []
                    for payload in specs:
                        event = Event.of(payload, seq=work.last_seq + 1, run_id=run_id)
                        apply(work, event)
                        events.append(event)
                except BaseException:
                    self._settle_buffers(run_id, landed=False)
                    raise
                self._writing.add(run_id)
                append = asyncio.ensure_future(
                    asyncio.to_thread(
                        self.store.append, work, events, run.last_seq, index=index, slots=slots
                    )
                )
                # Settled when the write ends, even if this coroutine is cancelled meanwhile:
                # the callback runs before anyone awaiting the append resumes.
                append.add_done_callback(functools.partial(self._settle, run_id, work))
                try:
                    await asyncio.shield(append)
                except Conflict:
                    if attempt == attempts:
                        raise
                    continue
                target = work
                break
        for event in events:
            self._announce(target, event)
        if index:
            await self._note_session(target)
        return target

    async def _note_session(self, run: PipelineRun) -> None:
        """Remember where the writer is (the seed's UserSession) when the run or its step
        changes, so the next start of any front end can reopen it."""
        session, run_id = self.session, run.pipeline_run_id
        if (session.active_pipeline_run_id, session.current_step) == (run_id, run.current_step):
            return
        active = [run_id, *(r for r in session.active_runs if r != run_id)][:10]
        self.session = session.model_copy(
            update={
                "active_pipeline_run_id": run_id,
                "current_step": run.current_step,
                "active_runs": active,
                "last_activity": utcnow(),
            }
        )
        try:
            await asyncio.to_thread(self.store.save_session, self.session)
        except WriteItError as error:  # where the writer was is a convenience, not history
            log.warning("session not saved: %s", error)

    def last_session(self) -> UserSession | None:
        """The session a front end last saved on this workspace (any front end)."""
        return self.store.active_session(self.session.user_id)

    def _settle(self, run_id: str, work: PipelineRun, append: asyncio.Future) -> None:
        """After an append: the cache and the stream buffers follow what the store holds."""
        self._writing.discard(run_id)
        landed = not append.cancelled() and append.exception() is None
        self._settle_buffers(run_id, landed=landed)
        if landed:
            self._remember(work)
        elif not append.cancelled() and isinstance(append.exception(), Conflict):
            self._runs.pop(run_id, None)  # refold what the other writer added

    def _settle_buffers(self, run_id: str, *, landed: bool) -> None:
        for stream in self._streams.values():
            if stream.run_id == run_id and stream.taken:
                if landed:
                    del stream.buffer[: stream.taken]
                stream.taken = 0

    def _publish_status(self, run: PipelineRun, cause: EventType) -> None:
        """Where a run is now (status, step) and the event that moved it there."""
        self._publish(
            "run_status",
            run.pipeline_run_id,
            status=run.status.value,
            current_step=run.current_step,
            event=cause.value,
        )

    def _announce(self, run: PipelineRun, event: Event) -> None:
        run_id, data = run.pipeline_run_id, event.data
        if event.type.value.startswith("run_") or event.type in MOVES:
            self._publish_status(run, event.type)
        elif event.type in DECISIONS or event.type == EventType.STEP_STARTED:
            self._publish(event.type.value, run_id, step=data.get("step"), seq=event.seq)
        elif event.type == EventType.RESPONSE_STARTED:
            self._publish("response_started", run_id, **data)
        elif event.type in (EventType.RESPONSE_COMPLETED, EventType.RESPONSE_FAILED):
            step, response = run.find_response(data["response_id"])
            kind = (
                "response_done" if event.type == EventType.RESPONSE_COMPLETED else "response_failed"
            )
            self._publish(
                kind,
                run_id,
                step=step.step_name,
                response_id=response.response_id,
                model=response.model_name,
                error=response.error,
                code=data.get("code"),
                tokens=response.tokens,
                cost=response.cost,
                seconds=response.processing_time,
                quality=response.quality,
            )

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
    ) -> PipelineRun:
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
        )
        event = Event.of(created, seq=1, run_id=run_id)
        run = ev.new_run(event)
        extra = {f"primer:{primer.primer_id}": primer.model_dump(mode="json")} if primer else None
        await asyncio.to_thread(self.store.append, run, [event], 0, extra=extra)
        self._remember(run)
        await self._note_session(run)
        self._publish_status(run, EventType.RUN_CREATED)
        return run

    # --- executing a step --------------------------------------------------------------

    # --- claiming a step -----------------------------------------------------------------

    def _claim(self, run: PipelineRun) -> _Claim:
        """Check that the run is idle and a generation slot is free, and take both.

        Nothing awaits between the checks and the claim, so of two requests arriving
        together only one passes in this process. Across processes the claim is the
        store's: the responses' start is appended on the log the build checked, with the
        live runs counted in the same write transaction (`_launch`)."""
        self._check_idle(run)
        self._check_capacity(run.pipeline_run_id)
        claim = _Claim(set())
        return self._hold(claim, run) and claim

    @contextlib.contextmanager
    def _claimed(self, run: PipelineRun) -> Iterator[_Claim]:
        """A claim released when the block ends, unless a generation took it over."""
        claim = self._claim(run)
        try:
            yield claim
        finally:
            if not claim.handed:
                self._release(claim)

    def _hold(self, claim: _Claim, run: PipelineRun) -> PipelineRun:
        """Extend a claim to the branch a change made (the generation runs there)."""
        if run.pipeline_run_id not in claim.runs:
            claim.runs.add(run.pipeline_run_id)
            self._claims[run.pipeline_run_id] = claim
            _claimed_here[run.pipeline_run_id] += 1
        return run

    def _release(self, claim: _Claim) -> None:
        for run_id in claim.runs:
            if self._claims.get(run_id) is claim:
                del self._claims[run_id]
                _claimed_here[run_id] -= 1
                if _claimed_here[run_id] <= 0:
                    del _claimed_here[run_id]

    def _check_capacity(self, run_id: str) -> None:
        """Generations of this process plus live streams of the others' runs."""
        limit = self.preferences.max_concurrent_pipelines
        mine = {id(claim) for claim in self._claims.values()}
        others = [
            other
            for other, (pid, since) in self.store.live_runs().items()
            if other != run_id
            and other not in self._claims
            and processes.alive(pid, since)
            and (pid != os.getpid() or _claimed_here[other] > 0)
        ]
        if len(mine) + len(others) >= limit:
            raise TooManyRuns(len(mine) + len(others), limit)

    def _check_idle(self, run: PipelineRun) -> None:
        if run.pipeline_run_id in self._claims or self.streaming(run.pipeline_run_id):
            raise StepRunning(
                f"{_where(run, run.current_step)} is still generating",
                hint="wait for its responses to finish (or pause the run)",
            )
        _check_free(run, run.current_step)

    def generating_elsewhere(self, run: PipelineRun) -> int | None:
        """The pid of another live WriteIt process streaming the run's current step."""
        if run.pipeline_run_id in self._claims:
            return None
        return _streamer(self._settled(run), run.current_step)

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

        def build(current: PipelineRun) -> Specs:
            step = current.steps[step_name]
            if not again and step.ai_responses:
                raise AlreadyRun(
                    f"step {step_name!r} of run {run_id[:8]} has already run",
                    hint="regenerate for new candidates; resume finishes interrupted ones",
                )
            specs = self._reopen_specs(current, completed_ok=False)
            if step.status == StepStatus.RUNNING:
                specs.append(ev.StepReset(step=step_name))
            attempt = step.attempt + 1 if step.ai_responses else 1
            started = ev.StepStarted(
                step=step_name,
                models=chosen,
                prompt=prompt,
                attempt=attempt,
                guidance=guidance or None,
            )
            return [*specs, started]

        run, _ = await self._launch(
            run_id, step_name, chosen, prompt, claim=claim, lead=build, instruction=guidance
        )
        return run

    async def _generate(
        self,
        run_id: str,
        step_name: str,
        models: list[str],
        prompt: str,
        *,
        claim: _Claim,
        kind: str = "candidate",
        instruction: str | None = None,
        replaces: list[str] | None = None,
    ) -> PipelineRun:
        """Generate and wait; the caller keeps its claim until its own decision is made."""
        _, task = await self._launch(
            run_id,
            step_name,
            models,
            prompt,
            claim=claim,
            kind=kind,
            instruction=instruction,
            replaces=replaces,
            hand=False,
        )
        return await task

    async def _launch(
        self,
        run_id: str,
        step_name: str,
        models: list[str],
        prompt: str,
        *,
        claim: _Claim,
        kind: str = "candidate",
        instruction: str | None = None,
        lead: Callable[[PipelineRun], Specs] | None = None,
        replaces: list[str] | None = None,
        hand: bool = True,
    ) -> tuple[PipelineRun, asyncio.Task[PipelineRun]]:
        """Ask every model at once; each streams into its own response in the background,
        its text checkpointed as it arrives. Returns once all responses have started.
        `lead` builds events committed with the responses' start (a step's start): one
        durable write instead of two; without it, a paused or failed run is reopened.
        `replaces` names, model by model, the candidate each new one takes the place of.
        With `hand`, the generation releases the claim when its streams end.

        The start is the claim another process sees: it is built on a log where the step
        streams nowhere else (checked again if another process appended first) and
        written only if fewer than `max_concurrent_pipelines` other runs stream."""
        run = await self.fetch(run_id)
        spec = run.pipeline.step(step_name)
        options = run.pipeline.options_for(spec)
        started = [(new_id(), model) for model in models]
        replaced = dict(zip([rid for rid, _ in started], replaces or [], strict=False))
        provider = await asyncio.to_thread(_providers, models)
        pid, since = processes.me()

        def build(current: PipelineRun) -> Specs:
            _check_free(current, step_name)
            starts: Specs = [
                ev.ResponseStarted(
                    step=step_name,
                    response_id=response_id,
                    model=model,
                    provider=provider.get(model, ""),
                    pid=pid,
                    pid_started=since,
                    kind=kind,
                    instruction=instruction or None,
                    replaces=replaced.get(response_id),
                )
                for response_id, model in started
            ]
            return [*(lead(current) if lead else self._reopen_specs(current)), *starts]

        limit = self.preferences.max_concurrent_pipelines
        run = await self._commit(run_id, build, retry=True, slots=limit)
        for response_id, model in started:
            self._streams[response_id] = _Stream(run_id, step_name, model)
        for response_id, model in started:
            self._streams[response_id].task = asyncio.create_task(
                self._stream_response(run, response_id, model, prompt, options)
            )
        ids = [response_id for response_id, _ in started]

        async def finish() -> PipelineRun:
            try:
                outcomes = await self._streamed(run_id, ids)
            finally:
                if hand:
                    self._release(claim)
            for (response_id, model), outcome in zip(started, outcomes, strict=True):
                if isinstance(outcome, Exception):  # its end could not be stored: say so
                    log.error("response %s of %s was not recorded: %s", response_id, model, outcome)
            if kind == "candidate":
                return await self._after_generation(run_id, step_name)
            return self.load(run_id)

        task = asyncio.create_task(finish())
        claim.handed = hand
        self._generations[run_id] = task
        return run, task

    async def _streamed(self, run_id: str, ids: list[str]) -> list[Any]:
        """Wait for the streams, checkpointing them; a stream stopped before its end (a
        pause here or in another process) is recorded interrupted, its text kept."""
        flusher = asyncio.create_task(self._checkpoint_loop(run_id))
        try:
            return await asyncio.gather(
                *(self._streams[rid].task for rid in ids), return_exceptions=True
            )
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            try:
                await self._record_stopped(run_id, ids)
            except WriteItError as error:
                log.error("stopped responses of run %s were not recorded: %s", run_id[:8], error)
            finally:
                for response_id in ids:
                    self._streams.pop(response_id, None)

    async def _record_stopped(self, run_id: str, ids: list[str]) -> None:
        streams = {rid: self._streams[rid] for rid in ids if rid in self._streams}

        def build(current: PipelineRun) -> Specs:
            specs: Specs = []
            for response_id, stream in streams.items():
                _, response = current.find_response(response_id)
                if response.status != ResponseStatus.STREAMING:
                    continue
                if stream.buffer:
                    specs.append(ev.ResponseProgress(response_id=response_id, delta=_drain(stream)))
                specs.append(ev.ResponseInterrupted(response_id=response_id, reason=stream.reason))
            return specs

        await self._commit(run_id, build, retry=True)

    async def _after_generation(self, run_id: str, step_name: str) -> PipelineRun:
        run = await self.fetch(run_id)
        step = run.steps[step_name]
        candidates = step.candidates
        interrupted = any(r.status == ResponseStatus.INTERRUPTED for r in candidates)
        if (
            candidates
            and not interrupted
            and all(r.status == ResponseStatus.FAILED for r in candidates)
        ):
            reasons = "; ".join(f"{r.model_name}: {r.error}" for r in candidates)

            def build(current: PipelineRun) -> Specs:
                if current.status != PipelineStatus.RUNNING:
                    return []
                return [ev.RunErrored(error=f"every model failed: {reasons}")]

            run = await self._commit(run_id, build)
        self._publish("step_done", run_id, step=step_name, status=run.status.value)
        return run

    async def _checkpoint_loop(self, run_id: str) -> None:
        """Checkpoint the run's streams; stop them when the run was paused elsewhere (the
        checkpoint reads the store: another process's pause shows up here)."""
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                run = await self._checkpoint(run_id)
            except WriteItError as error:  # the text stays buffered for the next write
                log.warning("checkpoint of run %s failed: %s", run_id[:8], error)
                continue
            if run.status == PipelineStatus.PAUSED:
                self._stop_streams(run_id, "the run was paused in another process")
                return

    def _stop_streams(self, run_id: str, reason: str) -> list[asyncio.Task]:
        """Cancel this process's streams of the run; their generation records them."""
        tasks = []
        for stream in self._streams.values():
            if stream.run_id == run_id and stream.task and not stream.task.done():
                stream.reason = reason
                stream.task.cancel()
                tasks.append(stream.task)
        return tasks

    async def _checkpoint(self, run_id: str) -> PipelineRun:
        def build(current: PipelineRun) -> Specs:
            specs: Specs = []
            for response_id, stream in self._streams.items():
                if stream.run_id == run_id and stream.buffer:
                    specs.append(ev.ResponseProgress(response_id=response_id, delta=_drain(stream)))
            return specs

        return await self._commit(run_id, build, index=False, retry=True)

    async def _stream_response(
        self,
        run: PipelineRun,
        response_id: str,
        model: str,
        prompt: str,
        options: dict[str, Any],
    ) -> None:
        run_id = run.pipeline_run_id
        stream = self._streams[response_id]
        step_name = stream.step

        def on_delta(chunk: str) -> None:
            stream.buffer.append(chunk)
            if self._subscribers:
                self._publish("delta", run_id, response_id=response_id, step=step_name, text=chunk)

        started = time.monotonic()
        try:
            result = await providers.stream(
                model,
                prompt,
                system=run.style_prompt or None,
                options=options,
                on_delta=on_delta,
                timeout=self.preferences.request_timeout,
                retries=self.preferences.max_retries,
                backoff=self.retry_backoff,
            )
        except asyncio.CancelledError:
            raise
        except providers.ProviderError as error:
            elapsed = time.monotonic() - started
            message, code = str(error.args[0]), error.code

            def failed(current: PipelineRun) -> Specs:
                return [
                    ev.ResponseFailed(
                        response_id=response_id,
                        delta=_drain(stream),
                        error=message,
                        code=code,
                        processing_time=round(elapsed, 3),
                    )
                ]

            await self._commit(run_id, failed, retry=True)
            return
        measure = functools.partial(
            quality.measure, result.text, run.primer, int(options.get("max_tokens", 0) * 0.6)
        )
        # About 0.2 ms per thousand words: a thread hop costs more than that for most
        # answers, but pyphen over a very long one would stall the loop.
        long = len(result.text) > 20_000
        metrics = await asyncio.to_thread(measure) if long else measure()
        usage = TokenUsage(
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            total_tokens=result.input_tokens + result.output_tokens,
        )
        table = providers.pricing(self.preferences.pricing)
        priced_as = model if model in table else providers.resolve(model).model_id
        cost = AIResponse(model_name=priced_as, usage_stats=usage).calculate_cost(table)
        usage.cost_usd = round(cost, 8)
        usage_data = usage.model_dump()

        def completed(current: PipelineRun) -> Specs:
            return [
                ev.ResponseCompleted(
                    response_id=response_id,
                    delta=_drain(stream),
                    usage=usage_data,
                    processing_time=round(result.duration, 3),
                    provider=result.provider,
                    estimated_usage=result.estimated_usage,
                    quality=metrics,
                    quality_score=metrics["score"],
                )
            ]

        await self._commit(run_id, completed, retry=True)

    # --- choosing ----------------------------------------------------------------------

    async def select(
        self, run_id: str, response: str | int, feedback: str | None = None
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
                hint="pick a completed response, or retry this one",
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

        def build(current: PipelineRun) -> Specs:
            chosen = ev.ResponseSelected(step=step_name, response_id=response_id, feedback=feedback)
            return [*self._reopen_specs(current), chosen]

        return await self._commit(run.pipeline_run_id, build)

    def _reopen_specs(self, run: PipelineRun, *, completed_ok: bool = True) -> Specs:
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

        def build(current: PipelineRun) -> Specs:
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
                run.pipeline_run_id, step.step_name, ids, text, instruction, edited=edited_from
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
            return await self._merged(run_id, step_name, ids, text, instruction, merged.response_id)

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
    ) -> PipelineRun:
        final_text = text

        def build(current: PipelineRun) -> Specs:
            merged = ev.ResponsesMerged(
                step=step_name,
                text=final_text,
                response_ids=ids,
                merge_response_id=merge_id,
                edited_from=edited,
                instruction=instruction or None,
            )
            return [*self._reopen_specs(current), merged]

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

        def build(current: PipelineRun) -> Specs:
            following = current.pipeline.next_step(current.current_step)
            if following is None:
                if current.status == PipelineStatus.COMPLETED:
                    return []
                return [*self._reopen_specs(current), ev.RunCompleted()]
            return [ev.StepAdvanced(from_step=current.current_step, to=following)]

        return await self._commit(run.pipeline_run_id, build)

    async def skip(self, run_id: str) -> PipelineRun:
        run = await self.fetch(run_id)
        self._check_idle(run)
        spec = run.pipeline.step(run.current_step)
        if not spec.skippable:
            raise InvalidAction(
                f"step {spec.name!r} cannot be skipped",
                hint="the pipeline marks skippable steps with `skippable: true`",
            )
        run = await self._branch_if_behind(run, spec.name)

        def build(current: PipelineRun) -> Specs:
            specs = self._reopen_specs(current)
            if current.current.status == StepStatus.RUNNING:
                specs.append(ev.StepReset(step=spec.name))
            return [*specs, ev.StepSkipped(step=spec.name)]

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
        self, run: PipelineRun, step: str, branch_seq: int, current_step: str
    ) -> PipelineRun:
        parent_id = run.pipeline_run_id
        child = await asyncio.to_thread(self.store.state_at, parent_id, branch_seq)
        child_id = new_id()
        forked = ev.RunForked(
            parent=parent_id, branch_point=step, branch_seq=branch_seq, current_step=current_step
        )
        # A response still streaming at the branch point streams on in the parent only.
        reason = "still streaming when this branch was made; see the parent run"
        specs: Specs = [
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
        await asyncio.to_thread(self.store.append, child, events, 0)
        self._remember(child)
        await self._note_session(child)
        self._publish("forked", parent_id, child=child_id, step=step, branch_seq=branch_seq)
        self._publish_status(child, EventType.RUN_FORKED)
        return child

    # --- pausing, resuming, completing --------------------------------------------------

    async def pause(self, run_id: str) -> PipelineRun:
        """Stop any streaming (text so far is kept) and mark the run paused. A run
        streaming in another process is paused in the log; that process stops its
        streams at its next checkpoint."""
        run_id = self.resolve(run_id)
        if self._stop_streams(run_id, "paused by the writer"):
            await self.wait(run_id)  # the generation records them interrupted
        return await self._commit(
            run_id,
            lambda current: [ev.RunPaused()] if current.status == PipelineStatus.RUNNING else [],
            retry=True,
        )

    async def resume(self, run_id: str, model: str | None = None) -> PipelineRun:
        """Continue a paused, failed or interrupted (crashed) run where it stopped: the
        current step's interrupted candidates are asked again, in their place. With
        `model`, that model is asked instead, for the failed candidates too."""
        run = await self.fetch(run_id)
        if model:
            check_model(model)
        with self._claimed(run) as claim:
            return await self._resume(run, claim, model)

    async def _resume(self, run: PipelineRun, claim: _Claim, model: str | None) -> PipelineRun:
        run_id = run.pipeline_run_id
        if run.status == PipelineStatus.COMPLETED:
            return run
        run = await self._commit(run_id, self._reopen_specs)
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


# --- helpers -------------------------------------------------------------------------------


def _providers(models: list[str]) -> dict[str, str]:
    """Each model's provider, as recorded with its responses ("" when unknown: the
    stream then fails with the reason)."""
    found = {}
    for model in models:
        with contextlib.suppress(WriteItError):
            found[model] = providers.resolve(model).provider
    return found


def _where(run: PipelineRun, step: str) -> str:
    return f"step {step!r} of run {run.pipeline_run_id[:8]}"


def _streamer(run: PipelineRun, step: str) -> int | None:
    """The pid of the process streaming a response of the step (of a settled run, where
    every stream left is live), else None."""
    for response in run.steps[step].ai_responses:
        if response.status == ResponseStatus.STREAMING:
            return response.pid or 0
    return None


def _check_free(run: PipelineRun, step: str) -> None:
    """Refuse when another live WriteIt process streams the step (a settled run)."""
    pid = _streamer(run, step)
    if pid is not None:
        raise StepRunning(
            f"{_where(run, step)} is generating in another WriteIt process (pid {pid})",
            hint=f"wait for it to finish there, or pause it there (or POST /api/runs/{run.pipeline_run_id[:8]}/pause)",
        )


def _orphan_reason(response: AIResponse) -> str:
    who = f"pid {response.pid}" if response.pid else "an older WriteIt"
    return f"the WriteIt process streaming it ({who}) stopped; resume the run to ask again"


def _orphan_specs(orphans: list[AIResponse]) -> Specs:
    return [
        ev.ResponseInterrupted(response_id=r.response_id, reason=_orphan_reason(r)) for r in orphans
    ]


def _drain(stream: _Stream) -> str:
    """The stream's text not yet stored; it leaves the buffer when the write lands."""
    stream.taken = len(stream.buffer)
    return "".join(stream.buffer)


def _response_id(step: Any, response: str | int) -> str:
    if isinstance(response, int) or (isinstance(response, str) and response.isdigit()):
        index = int(response)
        candidates = step.candidates
        if not 0 <= index < len(candidates):
            raise InvalidInput(
                f"there is no candidate {index + 1} at step {step.step_name!r}",
                hint=f"choose 1..{len(candidates)}" if candidates else "run the step first",
            )
        return candidates[index].response_id
    matches = [r.response_id for r in step.ai_responses if r.response_id.startswith(response)]
    if len(matches) != 1:
        raise InvalidInput(f"no single response of step {step.step_name!r} matches {response!r}")
    return matches[0]
