"""Headless runs: drive a run to the end without a writer, with a pick policy.

A client of the engine's public API, as the TUI and the server are: it decides nothing
the engine would not let a writer decide (execute, judge, select, accept, resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from writeit.errors import BudgetReached, InvalidAction, InvalidInput
from writeit.models import AIResponse, PipelineRun, PipelineStatus, ResponseStatus, StepStatus

if TYPE_CHECKING:
    from writeit.engine import Engine

PICKS = ("first", "best")


async def drive(
    engine: Engine, run_id: str, pick: str = "first", judge: str | None = None
) -> PipelineRun:
    """Execute, pick, accept, until the run completes (a stopped run is resumed first).

    Every choice it makes is recorded as made by `autopilot:<pick>`, so an export says
    which steps a writer decided and which a policy did."""
    run = await engine.fetch(run_id)
    interrupted = run.current.status == StepStatus.RUNNING
    # A new run starts with its first step's write; anything else not running resumes.
    if interrupted or run.status not in (PipelineStatus.RUNNING, PipelineStatus.INITIALIZING):
        run = await engine.resume(run.pipeline_run_id)
    while run.status != PipelineStatus.COMPLETED:
        step = run.current
        if step.status == StepStatus.PENDING:
            run = await engine.execute_step(run.pipeline_run_id)
            step = run.current
        if run.status == PipelineStatus.PAUSED and run.paused_because:  # a stream hit the budget
            raise BudgetReached(run.paused_because, run_id=run.pipeline_run_id)
        if run.status == PipelineStatus.ERROR:
            raise InvalidAction(
                f"step {step.step_name!r} failed: {run.error}",
                hint=f"retry with `writeit resume {run.pipeline_run_id[:8]}` or choose other models",
            )
        if step.status == StepStatus.RUNNING:
            if judge and len(step.candidates) > 1:
                run = await engine.judge(run.pipeline_run_id, judge)
                step = run.current
            chosen = choose(step.candidates, pick)
            run = await engine.select(run.pipeline_run_id, chosen, by=f"autopilot:{pick}")
        run = await engine.accept(run.pipeline_run_id)
    return run


def choose(candidates: list[AIResponse], pick: str) -> str:
    """The pick policy: `first` completed, `best` quality score, or a number N."""
    completed = [r for r in candidates if r.status == ResponseStatus.COMPLETED]
    if not completed:
        raise InvalidInput("no candidate completed", hint="see the failures with `writeit show`")
    if pick == "first":
        return completed[0].response_id
    if pick == "best":
        return max(completed, key=lambda r: r.quality_score or 0.0).response_id
    if pick.isdigit() and 1 <= int(pick) <= len(candidates):
        chosen = candidates[int(pick) - 1]
        if chosen.status == ResponseStatus.COMPLETED:
            return chosen.response_id
        return completed[0].response_id
    raise InvalidInput(f"unknown pick policy {pick!r}", hint="use first, best or a number N")
