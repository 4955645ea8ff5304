"""Generation: asking models for a step's candidates, one claimed generation at a time.

The engine's half that talks to models. A generation is claimed before anything awaits
(the run idle, a `max_concurrent_pipelines` slot free), and its responses' start is the
claim every other process sees: appended on a log where the step streams nowhere else,
with the live runs of every process counted in the same write. Each response streams
into a buffer checkpointed twice a second, so a crash loses at most that; a stream
stopped (a pause here or in another process, a choice made) is recorded interrupted
with its text; a stream whose process died reads as interrupted (an orphan).

`Generation` is mixed into `Engine`, whose commit, cache and watchers it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from writeit import events as ev
from writeit import forecast, llmlog, pricing, processes, providers, quality
from writeit.errors import BudgetReached, StepRunning, TooManyRuns
from writeit.events import Payloads
from writeit.models import (
    AIResponse,
    Flag,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StylePrimer,
    TokenUsage,
    WriteItError,
    new_id,
)

CHECKPOINT_SECONDS = 0.5  # a crash loses at most this much of a streaming response
log = logging.getLogger("writeit.engine")

# Runs claimed by any engine of this process: a stream recorded with this pid is live
# while its run is claimed here (engines share a process in tests and tools).
_claimed_here: Counter[str] = Counter()


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
    guard: forecast.Guard | None = None  # the run's budget, when it has one


@dataclass(eq=False)
class _Claim:
    """A generation this process is starting or running: the runs it holds (the run,
    and a branch made for it) and one `max_concurrent_pipelines` slot. `handed` once
    a generation task owns it and will release it when the streams end."""

    runs: set[str]
    handed: bool = False


class Generation:
    """Claims, streams, checkpoints and orphans; the engine's generating half."""

    # What it uses of the engine it is mixed into.
    preferences: Any
    store: Any
    _runs: dict[str, PipelineRun]
    _commit: Callable[..., Any]
    _publish: Callable[..., None]
    fetch: Callable[..., Any]
    load: Callable[[str], PipelineRun]
    wait: Callable[[str], Any]
    _fetch: Callable[..., Any]
    _branch_if_behind: Callable[..., Any]
    _reopening: Callable[..., Payloads]

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}  # responses streaming in this process
        self._generations: dict[str, asyncio.Task[PipelineRun]] = {}
        self._claims: dict[str, _Claim] = {}
        self._logging: set[asyncio.Task[None]] = set()  # calls being written to llm's logs

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
        self._hold(claim, run)
        return claim

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
        return self._settling(run)[0]

    def _settling(self, run: PipelineRun) -> tuple[PipelineRun, Payloads]:
        """The settled view and the events that record its orphans as interrupted, from
        one look at the run's streams (a /proc read each)."""
        orphans = self._orphans(run)
        if not orphans:
            return run, []
        view = run.writable()
        for orphan in orphans:
            _, response = view.changing(orphan.response_id)
            response.status = ResponseStatus.INTERRUPTED
            response.error = _orphan_reason(response)
            view.ended(response)
        return view, _orphan_interrupted(orphans)

    # --- generating ----------------------------------------------------------------------

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
        lead: Callable[[PipelineRun], Payloads] | None = None,
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
        ahead = self._ahead(run, step_name, models, prompt) if run.budget_usd is not None else None
        refused: list[str] = []
        guards: list[forecast.Guard] = []

        def build(current: PipelineRun) -> Payloads:
            _check_free(current, step_name)
            refused.clear(), guards.clear()
            # The budget is checked on the state the claim is written on, in this build:
            # two requests cannot both pass it with one step's worth of budget left.
            if ahead is not None and current.budget_usd is not None:
                spent = pricing.spent(current, self.preferences.pricing)
                why = forecast.refusal(current, spent, ahead)
                if why:
                    refused.append(why)
                    return self._budget_pause(current, why)
                guards.append(_guard(current.budget_usd, spent, started, ahead))
            starts: Payloads = [
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
            return [*(lead(current) if lead else self._reopening(current)), *starts]

        limit = self.preferences.max_concurrent_pipelines
        run = await self._commit(run_id, build, retry=True, slots=limit)
        if refused:
            raise BudgetReached(refused[0], run_id=run_id)
        guard = guards[0] if guards else None
        for response_id, model in started:
            self._streams[response_id] = _Stream(run_id, step_name, model, guard=guard)
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
            if guard is not None and guard.tripped:
                await self._commit(run_id, lambda c: self._budget_pause(c, guard.tripped or ""))
            if kind == "candidate":
                return await self._after_generation(run_id, step_name)
            return self.load(run_id)

        task = asyncio.create_task(finish())
        claim.handed = hand
        self._generations[run_id] = task
        task.add_done_callback(functools.partial(self._forget_generation, run_id))
        return run, task

    def _budget_pause(self, run: PipelineRun, why: str) -> Payloads:
        """Pause the run (a new or stopped one is opened first) saying why: the budget."""
        if run.status == PipelineStatus.COMPLETED:
            return []
        return [*self._reopening(run), ev.RunPaused(reason=why)]

    def _ahead(
        self, run: PipelineRun, step: str, models: list[str], prompt: str
    ) -> forecast.Forecast:
        """The forecast of asking `models` with `prompt` at `step` of `run`."""
        spec = run.pipeline.step(step)
        items = forecast.step_forecast(
            step,
            spec,
            run.pipeline.options_for(spec),
            models,
            prompt,
            run.style_prompt,
            self.price_of,
            self.history(run),
        )
        return forecast.Forecast(items)

    def price_of(self, model: str) -> pricing.Price | None:
        """The model's price with the writer's `pricing` overrides (None: unknown)."""
        return pricing.price_of(model, self.preferences.pricing)

    def history(self, *runs: PipelineRun) -> forecast.History:
        """What the workspace's recent runs (and `runs`) teach the forecast."""
        found = list(runs)
        for summary in self.store.recent(limit=forecast.RECENT_RUNS):
            with contextlib.suppress(WriteItError):
                found.append(self.load(summary.run_id))
        return forecast.History.of(found)

    def _forget_generation(self, run_id: str, task: asyncio.Task) -> None:
        """A finished generation is no longer waited for (memory stays flat per run)."""
        if self._generations.get(run_id) is task:
            del self._generations[run_id]

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

        def build(current: PipelineRun) -> Payloads:
            specs: Payloads = []
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

            def build(current: PipelineRun) -> Payloads:
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
        def build(current: PipelineRun) -> Payloads:
            specs: Payloads = []
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
            if stream.guard is not None and stream.guard.add(response_id, chunk):
                self._stop_streams(run_id, stream.guard.stop())  # its text is kept

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

            def failed(current: PipelineRun) -> Payloads:
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
            _assess,
            result.text,
            run.primer,
            int(options.get("max_tokens", 0) * 0.6),
            int(options.get("target_words", 0)),
        )
        # A fraction of a millisecond per thousand words: a thread hop costs more than
        # that for most answers, but a very long one, or textstat loading its dictionary
        # on first use (~0.4 s), would stall the loop.
        inline = len(result.text) <= 20_000 and quality.ready()
        metrics, flags = measure() if inline else await asyncio.to_thread(measure)
        usage = TokenUsage(
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            total_tokens=result.input_tokens + result.output_tokens,
        )
        usage.cost_usd = pricing.cost(  # None: unknown, never $0
            model, result.input_tokens, result.output_tokens, self.preferences.pricing
        )
        usage_data = usage.model_dump()

        def completed(current: PipelineRun) -> Payloads:
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
                    flags=flags,
                )
            ]

        await self._commit(run_id, completed, retry=True)
        self._log_call(result.response, run, step_name)

    def _log_call(self, response: Any, run: PipelineRun, step_name: str) -> None:
        """Record the call in llm's logs in the background: the step is the writer's as
        soon as its candidates are in (a first write to logs.db can take a second)."""
        enabled = self.preferences.log_to_llm
        task = asyncio.create_task(llmlog.record(response, run, step_name, enabled=enabled))
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)

    async def logged(self) -> None:
        """Once every call made so far is in llm's logs (before a process exits)."""
        while self._logging:
            await asyncio.gather(*self._logging)


# --- helpers -------------------------------------------------------------------------------


def _assess(
    text: str, primer: StylePrimer | None, fit_words: int, target_words: int
) -> tuple[dict[str, float], list[Flag]]:
    """The quality metrics and the style flags stored with a completed response. The
    score's length fit uses a share of max_tokens; a length flag needs a target the
    pipeline set (`target_words` in a step's options): max_tokens is a cap, and
    flagging every answer under it "too short" would be noise."""
    metrics = quality.measure(text, primer, fit_words)
    found = quality.flags(text, primer, target_words, reading=metrics["readability"])
    return metrics, found


def _guard(
    budget: float, spent: float, started: list[tuple[str, str]], ahead: forecast.Forecast
) -> forecast.Guard:
    """A budget watch over the responses about to start, matched to their forecasts."""
    return forecast.Guard(
        budget=budget,
        spent=spent,
        prices={rid: item.price for (rid, _), item in zip(started, ahead.items, strict=True)},
        inputs={
            rid: item.input_tokens for (rid, _), item in zip(started, ahead.items, strict=True)
        },
    )


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


def _orphan_interrupted(orphans: list[AIResponse]) -> Payloads:
    return [
        ev.ResponseInterrupted(response_id=r.response_id, reason=_orphan_reason(r)) for r in orphans
    ]


def _drain(stream: _Stream) -> str:
    """The stream's text not yet stored; it leaves the buffer when the write lands."""
    stream.taken = len(stream.buffer)
    return "".join(stream.buffer)
