"""The engine's memory of runs: one folded copy per run, kept current with the store,
and the commit through which every change is written.

Runs handed out never change afterwards: a commit applies its events to a copy that
replaces the cached run once the append lands. The cache is an LRU of idle runs (runs
generating are pinned); another process's appends are applied incrementally, reading
only the events after the cached one. Front ends watch runs through `subscribe()`.

`Runs` is mixed into `Engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from writeit.events import Event, EventType, Payloads, apply
from writeit.models import PipelineRun, UserSession, WriteItError, utcnow
from writeit.store import Conflict
from writeit.updates import Subscription, Update

CACHE_SIZE = 64  # idle runs kept folded in memory; runs generating are never evicted
CONFLICT_RETRIES = 5  # a stream's own writes, refolded when another process got in first
MOVES = {EventType.STEP_ADVANCED, EventType.REWOUND, EventType.STEP_SKIPPED}
DECISIONS = {
    EventType.RESPONSE_SELECTED,
    EventType.RESPONSES_MERGED,
    EventType.STEP_SKIPPED,
    EventType.FEEDBACK_GIVEN,
}
log = logging.getLogger("writeit.engine")


class Runs:
    """Reading, caching, committing and announcing runs; the engine's memory."""

    store: Any
    session: UserSession
    _streams: dict[str, Any]
    _claims: dict[str, Any]
    _settled: Callable[[PipelineRun], PipelineRun]
    _settling: Callable[[PipelineRun], tuple[PipelineRun, Payloads]]
    streaming: Callable[..., list[str]]

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._runs: OrderedDict[str, PipelineRun] = OrderedDict()  # least recent first
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.cache_size = cache_size
        self._writing: set[str] = set()  # runs with an append of ours in flight
        self._loop: asyncio.AbstractEventLoop | None = None  # the watchers' loop
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
            for event in self.store.tail(run.pipeline_run_id, cached.last_seq, cached):
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
        build: Callable[[PipelineRun], Payloads],
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
        build: Callable[[PipelineRun], Payloads],
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
                    view, settle = self._settling(run)
                    specs = build(view)
                    if not specs:
                        return view
                    specs = settle + specs
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
                extra = self._session_keys(work) if index else None
                append = asyncio.ensure_future(
                    asyncio.to_thread(
                        self.store.append,
                        work,
                        events,
                        run.last_seq,
                        index=index,
                        slots=slots,
                        extra=extra,
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
        return target

    def _session_keys(self, run: PipelineRun) -> dict[str, Any] | None:
        """Where the writer is (a UserSession), when the run or its step changed: written
        in the same transaction as the change, so the next start of any front end can
        reopen it at no extra durable write."""
        session, run_id = self.session, run.pipeline_run_id
        if (session.active_pipeline_run_id, session.current_step) == (run_id, run.current_step):
            return None
        active = [run_id, *(r for r in session.active_runs if r != run_id)][:10]
        self.session = session.model_copy(
            update={
                "active_pipeline_run_id": run_id,
                "current_step": run.current_step,
                "active_runs": active,
                "last_activity": utcnow(),
            }
        )
        return {
            f"session:{self.session.session_id}": self.session.model_dump(mode="json"),
            f"active_sessions:{self.session.user_id}": self.session.session_id.encode(),
        }

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
