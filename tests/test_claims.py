"""One generation per step and a concurrency limit that holds, whatever arrives at once.

Engines here share a real store; a second Engine on it stands for another WriteIt
process (the TUI beside a server). Every test counts what was asked of the models and
what the log holds, not only what was answered.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from writeit.engine import Engine, StepRunning, TooManyRuns
from writeit.errors import AlreadyRun
from writeit.events import EventType
from writeit.models import PipelineStatus, ResponseStatus, UserPreferences
from writeit.workspaces import get_workspace

TWO = ["scripted-a", "scripted-b"]


async def start(engine, source, models=TWO):
    run = await engine.start_run("tech-article", {"source_material": source}, models=models)
    return run.pipeline_run_id


def starts(engine, run_id: str) -> int:
    return [e.type for e in engine.store.events(run_id)].count(EventType.STEP_STARTED)


def limited(limit: int) -> Engine:
    return Engine(
        get_workspace(),
        preferences=UserPreferences(max_concurrent_pipelines=limit, request_timeout=5),
        retry_backoff=0.01,
    )


async def outcomes(*work) -> list:
    return await asyncio.gather(*work, return_exceptions=True)


# --- one generation per step ---------------------------------------------------------------


async def test_two_executes_at_once_start_one_generation(engine, source, scripted):
    run_id = await start(engine, source)
    results = await outcomes(engine.start_step(run_id), engine.start_step(run_id))
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], StepRunning)
    assert "angles" in str(refused[0]) and run_id[:8] in str(refused[0])
    await engine.wait(run_id)
    assert starts(engine, run_id) == 1
    assert sorted(c["model_id"] for c in scripted.calls) == TWO  # each model asked once
    assert len(engine.load(run_id).steps["angles"].candidates) == 2


@pytest.mark.parametrize("second", ["resume", "retry", "merge", "regenerate", "judge"])
async def test_execute_racing_another_generation_starts_one(engine, source, scripted, second):
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    if second == "retry":  # something to retry: b failed
        scripted.script("scripted-b", fail="quota exceeded")
        await engine.execute_step(run_id)
    if second == "resume":  # something to resume: b was stopped mid-stream
        gate = scripted.Gate(after_chunks=1)
        scripted.script("scripted-b", gate=gate)
        await engine.start_step(run_id)
        await gate.wait_reached()
        await engine.pause(run_id)
        scripted.reset()
    before = len(scripted.calls)
    rival = {
        "resume": lambda: engine.resume(run_id),
        "retry": lambda: engine.retry_response(run_id, 1, model="scripted-a"),
        "merge": lambda: engine.merge(run_id, [0, 1], model="scripted-c"),
        "regenerate": lambda: engine.regenerate(run_id, guidance="shorter"),
        "judge": lambda: engine.judge(run_id, "scripted-c"),
    }[second]
    results = await outcomes(engine.start_step(run_id), rival())
    refused = [r for r in results if isinstance(r, Exception)]
    await engine.wait(run_id)
    assert len(refused) == 1 and isinstance(refused[0], StepRunning), results
    asked = len(scripted.calls) - before
    assert asked in (1, 2)  # one generation: the step's two models, or the rival's one
    assert not engine._claims


async def test_a_second_engine_cannot_start_a_step_the_first_is_starting(engine, source, scripted):
    """The store decides across processes: the start is appended on the log the build
    checked, so the loser's build runs again on the fresh log and refuses."""
    gate = scripted.Gate(after_chunks=1)
    scripted.script("*", gate=gate)
    run_id = await start(engine, source)
    other = Engine(engine.workspace, preferences=engine.preferences)
    results = await outcomes(engine.start_step(run_id), other.start_step(run_id))
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], StepRunning), results
    gate.release()
    await engine.wait(run_id), await other.wait(run_id)
    assert starts(engine, run_id) == 1
    assert len(scripted.calls) == 2


async def test_execute_without_regenerate_refuses_a_step_that_ran(engine, source, scripted):
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    with pytest.raises(AlreadyRun, match="already run"):
        await engine.start_step(run_id, again=False)
    assert starts(engine, run_id) == 1 and len(scripted.calls) == 2


# --- max_concurrent_pipelines ------------------------------------------------------------


async def test_a_burst_of_executes_is_held_to_the_limit(source, scripted):
    engine = limited(3)
    gate = scripted.Gate(after_chunks=1)
    scripted.script("*", gate=gate)
    runs = [await start(engine, source, models=["scripted-a"]) for _ in range(20)]
    results = await outcomes(*(engine.start_step(r) for r in runs))
    accepted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 3
    assert all(isinstance(r, TooManyRuns) for r in refused)
    assert "3 runs are already generating (max_concurrent_pipelines = 3)" in str(refused[0])
    assert sum(starts(engine, r) for r in runs) == 3
    assert len(engine.store.live_runs()) == 3
    gate.release()
    for run in accepted:
        await engine.wait(run.pipeline_run_id)
    assert engine.store.live_runs() == {} and not engine._claims
    # Slots are free again.
    assert (await engine.execute_step(runs[-1])).steps["angles"].candidates


async def test_the_limit_counts_other_engines_streams(source, scripted):
    first, second = limited(2), limited(2)
    gate = scripted.Gate(after_chunks=1)
    scripted.script("*", gate=gate)
    runs = [await start(first, source, models=["scripted-a"]) for _ in range(3)]
    for run_id in runs[:2]:
        await first.start_step(run_id)
    with pytest.raises(TooManyRuns, match="2 runs are already generating"):
        await second.start_step(runs[2])
    assert starts(second, runs[2]) == 0
    gate.release()
    for run_id in runs[:2]:
        await first.wait(run_id)
    await second.execute_step(runs[2])
    assert starts(second, runs[2]) == 1


@pytest.mark.parametrize("ending", ["done", "failed", "paused", "refused"])
async def test_a_slot_is_released_on_every_exit(source, scripted, ending):
    engine = limited(1)
    run_id = await start(engine, source, models=["scripted-a"])
    if ending == "failed":
        scripted.script("scripted-a", fail="quota exceeded")
    if ending == "paused":
        gate = scripted.Gate(after_chunks=1)
        scripted.script("scripted-a", gate=gate)
        await engine.start_step(run_id)
        await gate.wait_reached()
        await engine.pause(run_id)
    elif ending == "refused":
        await engine.start_step(run_id, models=["no-such-model"])
    else:
        await engine.execute_step(run_id)
    await engine.wait(run_id)
    assert not engine._claims and engine.store.live_runs() == {}
    other = await start(engine, source, models=["scripted-b"])
    scripted.reset()
    assert (await engine.execute_step(other)).steps["angles"].candidates[0].status == (
        ResponseStatus.COMPLETED
    )


async def test_a_dead_process_holds_no_slot(source, scripted, isolated_env):
    """A live record left by a process that died (SIGKILL) counts for nothing."""
    engine = limited(1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = await start(engine, source, models=["scripted-a"])
    engine.store._write(lambda txn: txn.put(f"live:{'0' * 36}".encode(), b'j{"pid":%d}' % dead.pid))
    assert len(engine.store.live_runs()) == 1
    run = await engine.execute_step(run_id)
    assert run.steps["angles"].candidates[0].status == ResponseStatus.COMPLETED


# --- control from another process, orphans -------------------------------------------------


async def test_a_pause_recorded_elsewhere_stops_the_owner_within_a_checkpoint(
    engine, source, scripted
):
    gate = scripted.Gate(after_chunks=2)
    scripted.script("*", gate=gate)
    run_id = await start(engine, source)
    await engine.start_step(run_id)
    await gate.wait_reached()
    other = Engine(engine.workspace, preferences=engine.preferences)
    paused = await other.pause(run_id)
    assert paused.status == PipelineStatus.PAUSED
    run = await asyncio.wait_for(engine.wait(run_id), timeout=5)  # no gate release
    candidates = run.steps["angles"].candidates
    assert [c.status for c in candidates] == [ResponseStatus.INTERRUPTED] * 2
    assert all(c.raw_output for c in candidates)  # the text streamed so far is kept
    assert "paused in another process" in candidates[0].error
    assert run.status == PipelineStatus.PAUSED
    assert engine.store.live_runs() == {}
    gate.release()


ORPHAN_CHILD = """
import asyncio, sys
sys.path.insert(0, {tests!r})
import scripted_model
scripted_model.install()
from writeit.engine import Engine

async def main():
    engine = Engine()
    run = await engine.start_run("tech-article", {{"source_material": "Cron to Temporal."}},
                                 models=["scripted-a"])
    gate = scripted_model.Gate(after_chunks=2, timeout=600)
    scripted_model.script("scripted-a", gate=gate)
    await engine.start_step(run.pipeline_run_id)
    await gate.wait_reached(timeout=60)
    await asyncio.sleep(1.2)  # past a checkpoint, so the text so far is stored
    print(run.pipeline_run_id, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_killed_processes_streams_read_as_interrupted(source, isolated_env):
    tests = os.path.dirname(__file__)
    child = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_CHILD.format(tests=tests)], stdout=subprocess.PIPE, text=True
    )
    run_id = (await asyncio.to_thread(child.stdout.readline)).strip()
    assert run_id, "the child did not reach its stream"
    reader = Engine(get_workspace())
    assert reader.load(run_id).steps["angles"].candidates[0].status == ResponseStatus.STREAMING
    child.kill()
    child.wait()
    run = reader.load(run_id)
    orphan = run.steps["angles"].candidates[0]
    assert orphan.status == ResponseStatus.INTERRUPTED and orphan.raw_output
    assert f"pid {child.pid}" in orphan.error
    raw = reader.store.load(run_id).steps["angles"].candidates[0]
    assert raw.status == ResponseStatus.STREAMING  # a read never writes
    # The next write records it, and resume asks again.
    resumed = await reader.resume(run_id)
    log = [e.type for e in reader.store.events(run_id)]
    assert EventType.RESPONSE_INTERRUPTED in log
    responses = resumed.steps["angles"].ai_responses
    assert [r.status for r in responses] == [ResponseStatus.INTERRUPTED, ResponseStatus.COMPLETED]
    assert reader.store.live_runs() == {}


async def test_one_engine_method_says_what_a_run_is_doing(engine, source, scripted):
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    run_id = await start(engine, source)
    assert engine.activity(engine.load(run_id)).state == "pending"
    await engine.start_step(run_id)
    await gate.wait_reached()
    here = engine.activity(engine.load(run_id))
    assert here.state == "generating" and here.pid == os.getpid()
    other = Engine(engine.workspace, preferences=engine.preferences)
    there = other.activity(other.load(run_id))
    assert there.state == "elsewhere" and there.pid == os.getpid()  # same pid: one process
    await other.pause(run_id)
    await engine.wait(run_id)
    assert engine.activity(engine.load(run_id)).state == "paused"
    gate.release()
    await engine.resume(run_id)
    assert engine.activity(engine.load(run_id)).state == "choosing"
    await engine.select(run_id, 0)
    assert engine.activity(engine.load(run_id)).state == "decided"
