"""Headless runs: drive a run to the end without a writer, with a pick policy.

A client of the engine's public API, as the TUI and the server are: it decides nothing
the engine would not let a writer decide (execute, judge, select, accept, resume).

A stop (Ctrl+C, SIGTERM, or a pause from another process) is never taken for a choice:
the streams keep their text, the run is left paused, and `drive` raises `Stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from writeit.errors import BudgetReached, InvalidAction, InvalidInput, WriteItError
from writeit.models import AIResponse, PipelineRun, PipelineStatus, ResponseStatus, StepStatus

if TYPE_CHECKING:
    from writeit.engine import Engine

PICKS = ("first", "best")


class Stopped(Exception):
    """The run was stopped before its end and is paused; `run` is its state then.

    Not a WriteItError: nothing went wrong, and the front end says how to go on."""

    def __init__(self, run: PipelineRun) -> None:
        super().__init__(f"run {run.pipeline_run_id[:8]} stopped")
        self.run = run


async def drive(
    engine: Engine,
    run_id: str,
    pick: str = "first",
    judge: str | None = None,
    *,
    stop: asyncio.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> PipelineRun:
    """Execute, pick, accept, until the run completes (a stopped run is resumed first).

    Every choice it makes is recorded as made by `autopilot:<pick>`, so an export says
    which steps a writer decided and which a policy did. When `stop` is set, the run is
    paused (its streams keep their text) and `Stopped` is raised; a run paused by another
    process stops it as well. `say` gets what a writer should know (a pick that fell back)."""
    pilot = _Pilot(engine, stop or asyncio.Event())
    run = await engine.fetch(run_id)
    pilot.run_id = run.pipeline_run_id
    interrupted = run.current.status == StepStatus.RUNNING
    # A new run starts with its first step's write; anything else not running resumes.
    if interrupted or run.status not in (PipelineStatus.RUNNING, PipelineStatus.INITIALIZING):
        run = await pilot.call(engine.resume)
    while run.status != PipelineStatus.COMPLETED:
        step = run.current
        if step.status == StepStatus.PENDING:
            run = await pilot.call(engine.execute_step)
            step = run.current
        if run.status == PipelineStatus.PAUSED and run.paused_because:  # a stream hit the budget
            raise BudgetReached(run.paused_because, run_id=run.pipeline_run_id)
        if run.status == PipelineStatus.PAUSED:  # paused elsewhere: the writer's, not ours
            raise Stopped(run)
        if run.status == PipelineStatus.ERROR:
            raise InvalidAction(
                f"step {step.step_name!r} failed: {run.error}",
                hint=f"retry with `writeit resume {run.pipeline_run_id[:8]}` or choose other models",
            )
        if step.status == StepStatus.RUNNING:
            if judge and len(step.candidates) > 1:
                run = await pilot.call(engine.judge, judge)
                step = run.current
            chosen, note = pick_with_note(step.candidates, pick)
            if note and say is not None:
                say(f"{step.step_name}: {note}")
            run = await pilot.call(engine.select, chosen, by=f"autopilot:{pick}")
        run = await pilot.call(engine.accept)
    return run


class _Pilot:
    """Runs one engine call at a time and, once `stop` is set, pauses the run until the
    call in flight has ended, then raises `Stopped`."""

    def __init__(self, engine: Engine, stop: asyncio.Event) -> None:
        self.engine, self.stop, self.run_id = engine, stop, ""

    async def call(
        self, action: Callable[..., Awaitable[PipelineRun]], *args: Any, **kwargs: Any
    ) -> PipelineRun:
        """`action(run_id, *args, **kwargs)` on the run as it is now (maybe a branch)."""
        if self.stop.is_set():
            raise Stopped(await self._halt(None))
        task = asyncio.ensure_future(action(self.run_id, *args, **kwargs))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if self.stop.is_set():
            raise Stopped(await self._halt(task))
        run = task.result()
        self.run_id = run.pipeline_run_id  # a step started behind the head is a new branch
        return run

    async def _halt(self, task: asyncio.Future[PipelineRun] | None) -> PipelineRun:
        """Pause until `task` has ended. A call that had not started its streams when the
        first pause landed reopens the run as it starts them: pause again then (a pause in
        the log also stops streams that start after it, at their first checkpoint)."""
        updates = self.engine.subscribe(self.run_id)
        try:
            while True:
                with contextlib.suppress(WriteItError):  # not running (yet, or any more)
                    await self.engine.pause(self.run_id)
                if task is None or task.done():
                    break
                started = asyncio.ensure_future(_next_start(updates))
                try:
                    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    started.cancel()
                if task.done():
                    break
        finally:
            updates.close()
        if task is not None:
            with contextlib.suppress(Exception):
                ran = task.result()  # the call's own outcome no longer matters
                self.run_id = ran.pipeline_run_id
        with contextlib.suppress(WriteItError):  # its streams ended: now it can pause
            await self.engine.pause(self.run_id)
        return await self.engine.fetch(self.run_id)


async def _next_start(updates) -> None:
    async for update in updates:
        if update.kind == "response_started":
            return


def choose(candidates: list[AIResponse], pick: str) -> str:
    """The pick policy: `first` completed, `best` quality score, or a number N."""
    return pick_with_note(candidates, pick)[0]


def pick_with_note(candidates: list[AIResponse], pick: str) -> tuple[str, str]:
    """The pick policy's choice and, when it could not pick what was asked, why not:
    `--pick 2` with candidate 2 failed takes the first that completed, and says so."""
    completed = [r for r in candidates if r.status == ResponseStatus.COMPLETED]
    if not completed:
        raise InvalidInput("no candidate completed", hint="see the failures with `writeit show`")
    if pick == "first":
        return completed[0].response_id, ""
    if pick == "best":
        return max(completed, key=lambda r: r.quality_score or 0.0).response_id, ""
    if pick.isdigit() and 1 <= int(pick) <= len(candidates):
        chosen = candidates[int(pick) - 1]
        if chosen.status == ResponseStatus.COMPLETED:
            return chosen.response_id, ""
        fallback = completed[0]
        number = candidates.index(fallback) + 1
        return fallback.response_id, (
            f"candidate {pick} {chosen.status.value}; picked candidate {number}"
        )
    raise InvalidInput(f"unknown pick policy {pick!r}", hint="use first, best or a number N")
