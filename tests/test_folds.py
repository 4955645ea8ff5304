"""Folds that do not grow with history: snapshots, incremental catch-up, bounded caches.

Histories here come from real use: seeded random sequences of the engine's public
actions (run, regenerate, feedback, select, merge, rewind, branch, accept).
"""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from writeit import autopilot, export, records
from writeit import store as store_module
from writeit.engine import Engine
from writeit.events import apply, fold
from writeit.models import (
    LazyResponses,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepState,
    StepStatus,
    WriteItError,
)

TWO = ["scripted-a", "scripted-b"]
# Long enough to be stored once and referenced from every prompt (store._SHARE_OVER).
LONG_SOURCE = "\n\n".join(f"Fact {i}: the nightly batch moved {i * 13} jobs." for i in range(12))


async def random_history(engine, source: str, seed: int, actions: int = 40) -> str:
    """A run (and the branches its changes made) after `actions` random writer actions;
    returns the id of the run the writer ends on."""
    rng = random.Random(seed)
    run = await engine.start_run("tech-article", {"source_material": source}, models=TWO)
    run_id = run.pipeline_run_id
    for _ in range(actions):
        run = engine.load(run_id)
        step = run.current
        done = [i for i, c in enumerate(step.candidates) if c.status == ResponseStatus.COMPLETED]
        choice = rng.choice(["execute", "feedback", "select", "merge", "rewind", "accept"])
        try:
            if run.status == PipelineStatus.COMPLETED:
                choice = "rewind"
            if step.status == StepStatus.PENDING or choice == "execute":
                run = await engine.execute_step(run_id, guidance=rng.choice([None, "Shorter"]))
            elif choice == "feedback":
                run = await engine.give_feedback(run_id, f"note {rng.random():.3f}")
            elif choice == "select" and done:
                run = await engine.select(run_id, rng.choice(done))
            elif choice == "merge" and done:
                run = await engine.merge(run_id, done, text=f"merged {rng.random():.3f}")
            elif choice == "rewind":
                run = await engine.rewind(run_id)
            elif step.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                run = await engine.accept(run_id)
        except WriteItError:
            continue  # a refusal (nothing to rewind to, ...) is part of real use
        run_id = run.pipeline_run_id
    return run_id


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_snapshot_and_tail_equal_a_full_fold_for_every_prefix(engine, source, seed):
    run_id = await random_history(engine, LONG_SOURCE if seed > 1 else source, seed, actions=90)
    events = engine.store.events(run_id)
    assert len(events) > 40
    full = fold(events)
    prefix = fold(events[:1])
    for cut in range(1, len(events)):
        packed = records.pack(prefix)
        restored = records.unpack(packed)
        for event in events[cut:]:  # earlier attempts still unparsed unless the tail reads them
            apply(restored, event)
        assert restored == full, cut
        assert records.unpack(packed) == prefix, cut
        apply(prefix, events[cut])


async def test_opening_a_run_reads_its_snapshot_and_only_the_events_after_it(engine, source):
    run_id = await random_history(engine, LONG_SOURCE, seed=4, actions=150)
    summary = engine.store.summary(run_id)
    assert summary.snap_seq > 0  # written as the history grew
    assert summary.last_seq - summary.snap_seq < store_module.SNAPSHOT_EVERY
    assert engine.store.load(run_id) == fold(engine.store.events(run_id))
    # An early event damaged on disk: a full fold fails, the snapshot path never reads it.
    _damage(engine.store, run_id, seq=summary.own_from + 1)
    with pytest.raises(Exception):  # noqa: B017 - any failure to fold is the point
        fold(engine.store.events(run_id))
    assert engine.store.load(run_id).last_seq == summary.last_seq


async def test_another_process_appends_are_applied_incrementally(engine, source, scripted):
    run = await engine.start_run("tech-article", {"source_material": source}, models=TWO)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    engine.load(run_id)  # cached here
    other = Engine(engine.workspace, preferences=engine.preferences)
    other.load(run_id)  # cached there too
    _damage(engine.store, run_id, seq=2)  # only a full fold would read event 2 again
    await other.select(run_id, 1, feedback="Lead with the outage")
    caught_up = engine.load(run_id)  # the cached run plus the one new event
    assert caught_up.steps["angles"].user_selection == 1
    assert caught_up.steps["angles"].user_feedback == "Lead with the outage"
    assert caught_up.last_seq == engine.store.summary(run_id).last_seq


def _damage(store, run_id: str, seq: int) -> None:
    """Break the stored record holding event `seq` (a record is keyed by its last seq)."""
    keys = store.keys(f"event:{run_id}:")
    key = next(k for k in keys if int(k.rsplit(":", 1)[1]) >= seq).encode()
    store._write(lambda txn: txn.put(key, b"j{not json"))


async def test_filters_and_counts_follow_every_write(engine, source, scripted):
    async def new(models, pipeline="tech-article"):
        run = await engine.start_run(pipeline, {"source_material": source}, models=models)
        return run.pipeline_run_id

    a, b, c = await new(["scripted-a"]), await new(["scripted-b"]), await new(["scripted-a"])
    await autopilot.drive(engine, a, "first")
    await engine.execute_step(b)
    await engine.pause(b)
    await engine.execute_step(c)
    await engine.retry_response(c, 0, model="scripted-c")  # asks a model beyond --model
    store = engine.store

    def ids(**filters) -> list[str]:
        return [s.run_id for s in store.recent(limit=None, **filters)]

    assert ids(status="completed") == [a]
    assert ids(status="paused") == [b]
    assert ids(model="scripted-a") == [c, a]  # newest-updated first
    assert ids(model="scripted-c") == [c]
    assert ids(status="running", model="scripted-a") == [c]
    assert set(ids(pipeline="tech-article")) == {a, b, c}
    assert ids(style="tech-journalist") == ids()
    assert store.counts() == {"completed": 1, "paused": 1, "running": 1}
    await engine.delete(b)
    assert ids(status="paused") == [] and store.counts() == {"completed": 1, "running": 1}
    keys = store.keys("list:")
    assert not [k for k in keys if b in k]  # a deleted run leaves every listing
    assert len([k for k in keys if a in k]) == 4  # status, pipeline, style, one model


async def test_the_run_cache_is_bounded_and_never_evicts_a_generating_run(
    isolated_env, preferences, source, scripted
):
    from writeit.workspaces import get_workspace

    engine = Engine(get_workspace(), preferences=preferences, cache_size=3)
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    busy = await engine.start_run("tech-article", {"source_material": source}, models=TWO)
    await engine.start_step(busy.pipeline_run_id)
    await gate.wait_reached()
    others = [
        (await engine.start_run("tech-article", {"source_material": source}, models=TWO))
        for _ in range(10)
    ]
    for run in others:
        engine.load(run.pipeline_run_id)
    assert busy.pipeline_run_id in engine._runs  # pinned while it generates
    assert len(engine._runs) <= 4 and len(engine._locks) <= 4
    assert list(engine._runs)[-1] == others[-1].pipeline_run_id  # most recent kept
    gate.release()
    run = await engine.wait(busy.pipeline_run_id)
    assert [c.status for c in run.steps["angles"].candidates] == [ResponseStatus.COMPLETED] * 2
    assert engine.load(others[0].pipeline_run_id) == engine.store.load(others[0].pipeline_run_id)


def fork_chain(store, depth: int) -> list[str]:
    """A root run and `depth` forks, each of the one before (as a writer branching again
    and again would leave), written straight through the store."""
    from writeit import events as ev
    from writeit.config import get_pipeline
    from writeit.events import Event, new_run

    pipeline = get_pipeline("tech-article", [])
    created = Event.of(
        ev.RunCreated(pipeline=pipeline.model_dump(mode="json"), inputs={"source_material": "x"}),
        seq=1,
        run_id="root-0000",
    )
    run = new_run(created)
    store.append(run, [created], 0)
    ids = [run.pipeline_run_id]
    for level in range(1, depth + 1):
        forked = ev.RunForked(parent=ids[-1], branch_point="angles", branch_seq=run.last_seq)
        event = Event.of(forked, seq=run.last_seq + 1, run_id=f"fork-{level:05d}")
        run = apply(run.writable(), event)
        store.append(run, [event], 0)
        ids.append(run.pipeline_run_id)
    return ids


def test_tree_works_at_any_depth(isolated_env):
    from writeit_cli import run as writeit

    from writeit.workspaces import get_workspace

    ids = fork_chain(get_workspace().open_store(), 1200)
    shown = writeit("tree", ids[-1])
    lines = shown.stdout.splitlines()
    assert len(lines) == 1201 and "Traceback" not in shown.stderr
    assert lines[0].startswith("root-000") and "← this run" in lines[-1]
    assert lines[-1].startswith("└ fork-012")  # a straight chain does not indent


async def test_a_cached_run_catches_up_on_prompts_that_reference_its_texts(engine, scripted):
    """Another process's step prompt refers to the source and to a response this reader
    already holds (not in the tail it reads): resolved from the cached run."""
    run = await engine.start_run("tech-article", {"source_material": LONG_SOURCE}, models=TWO)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    cached = engine.load(run_id)
    other = Engine(engine.workspace, preferences=engine.preferences)
    await other.accept(run_id)
    await other.execute_step(run_id)
    events = engine.store.events(run_id)
    tail = engine.store.tail(run_id, cached.last_seq, cached)
    assert [e.model_dump() for e in tail] == [e.model_dump() for e in events[cached.last_seq :]]
    unaided = engine.store.tail(run_id, cached.last_seq)  # the history folded to resolve
    assert [e.model_dump() for e in unaided] == [e.model_dump() for e in tail]
    outline = next(e for e in tail if e.type.value == "step_started").data["prompt"]
    assert LONG_SOURCE in outline and cached.steps["angles"].output in outline
    assert engine.load(run_id) == fold(events)


async def test_a_snapshot_keeps_each_response_s_style_after_a_replay_changed_it(engine):
    run = await engine.start_run("tech-article", {"source_material": LONG_SOURCE}, models=TWO)
    run = await autopilot.drive(engine, run.pipeline_run_id, "first")
    branch = await engine.replay(run.pipeline_run_id, "draft", style="")
    branch = await autopilot.drive(engine, branch.pipeline_run_id, "first")
    prompts = {r.system_prompt for s in branch.steps.values() for r in s.ai_responses}
    assert len(prompts) == 2  # the parent's style before the branch point, none after
    assert records.unpack(records.pack(branch)) == branch


# --- a snapshot's earlier attempts, parsed when read -----------------------------------


async def regenerated(engine, source: str, cycles: int = 4) -> PipelineRun:
    """A run whose first step was asked again `cycles` times after feedback."""
    run = await engine.start_run("tech-article", {"source_material": source}, models=TWO)
    run = await engine.execute_step(run.pipeline_run_id)
    for i in range(cycles):
        run = await engine.give_feedback(run.pipeline_run_id, f"note {i}")
        run = await engine.regenerate(run.pipeline_run_id)
    return run


def _ids(responses) -> list[str]:
    return [r.response_id for r in responses]


# Every way a reader takes a run's responses, as data to compare: each is asked of a
# freshly unpacked snapshot, whose earlier attempts are still unparsed when it starts.
READERS = {
    "model_dump": lambda run: run.model_dump(),
    "model_dump_json": lambda run: run.model_dump_json(),
    "equal": lambda run: run,
    "equal, plain list on the left": lambda run: run.steps["angles"].ai_responses,
    "iterate": lambda run: _ids(run.steps["angles"].ai_responses),
    "reversed": lambda run: _ids(reversed(run.steps["angles"].ai_responses)),
    "first": lambda run: run.steps["angles"].ai_responses[0].model_dump(),
    "negative index": lambda run: run.steps["angles"].ai_responses[-len(TWO) - 1].raw_output,
    "slice": lambda run: _ids(run.steps["angles"].ai_responses[1:5]),
    "latest slice": lambda run: _ids(run.steps["angles"].ai_responses[-len(TWO) :]),
    "step slice": lambda run: _ids(run.steps["angles"].ai_responses[::-3]),
    "len": lambda run: len(run.steps["angles"].ai_responses),
    "copy": lambda run: _ids(run.steps["angles"].ai_responses.copy()),
    "sorted": lambda run: _ids(sorted(run.steps["angles"].ai_responses, key=lambda r: r.attempt)),
    "by id": lambda run: (
        run.steps["angles"].response(run.steps["angles"].ai_responses[0].response_id).raw_output
    ),
    "find_response": lambda run: run.find_response(_first_id(run))[1].processed_content,
    "candidates": lambda run: [c.model_dump() for c in run.steps["angles"].candidates],
    "earlier_candidate": lambda run: (
        run.steps["angles"].earlier_candidate(run.steps["angles"].candidates[0]).model_dump()
    ),
    "totals": lambda run: (run.total_tokens, run.total_cost, run.known_cost),
    "deep model_copy": lambda run: run.model_copy(deep=True).model_dump(),
    "writable": lambda run: run.writable().model_dump(),
    "deepcopy": lambda run: copy.deepcopy(run).model_dump(),
    "pickle": lambda run: pickle.loads(pickle.dumps(run)).model_dump(),
    "validate again": lambda run: StepState.model_validate(run.steps["angles"]).model_dump(),
    "export": lambda run: export.document(run),
    "pack again": lambda run: records.unpack(records.pack(run)).model_dump(),
    "contains": lambda run: run.steps["angles"].ai_responses[0] in run.steps["angles"].ai_responses,
    "list +": lambda run: _ids(run.steps["angles"].ai_responses + []),
    "streaming_ids": lambda run: run.streaming_ids,
}


def _first_id(run: PipelineRun) -> str:
    return next(iter(run._indexes()[0]))


@pytest.mark.parametrize("reader", list(READERS))
async def test_earlier_attempts_read_the_same_through_every_reader(engine, source, reader):
    run = await regenerated(engine, source)
    packed = records.pack(run)
    restored = records.unpack(packed)
    responses = restored.steps["angles"].ai_responses
    assert isinstance(responses, LazyResponses)
    assert responses.pending == len(run.steps["angles"].ai_responses) - len(TWO)
    read = READERS[reader]
    assert read(restored) == read(run)
    assert read(run) == read(records.unpack(packed))  # the other way round


async def test_opening_a_long_run_parses_only_its_latest_attempt(engine, source, monkeypatch):
    """What opening and showing a run reads (its index, the step's candidates, the next
    writes) leaves a snapshot's earlier attempts unparsed; reading one parses them, from
    bytes copied out of the store (valid after its transaction)."""
    monkeypatch.setattr(store_module, "SNAPSHOT_EVERY", 8)
    run = await regenerated(engine, source, cycles=6)
    assert engine.store.summary(run.pipeline_run_id).snap_seq > 0
    loaded = engine.store.load(run.pipeline_run_id)
    responses = loaded.steps["angles"].ai_responses
    assert isinstance(responses, LazyResponses) and responses.pending > 0
    pending = responses.pending
    assert [c.model_dump() for c in loaded.current.candidates] == [
        c.model_dump() for c in run.current.candidates
    ]
    assert loaded.streaming_ids == []
    latest = run.current.candidates[0].response_id
    assert loaded.find_response(latest)[1].raw_output == run.find_response(latest)[1].raw_output
    copied = loaded.writable()
    assert copied.steps["angles"].ai_responses.pending == pending
    assert responses.pending == pending  # nothing above parsed them
    assert responses[0].raw_output == run.steps["angles"].ai_responses[0].raw_output
    assert responses.pending == 0
    assert copied == run and loaded == run


async def test_a_lazily_opened_run_takes_more_writes_and_snapshots(engine, source, monkeypatch):
    """Writes on a run opened from a snapshot (selecting a latest candidate, feedback,
    regenerating, a new snapshot packed from it) fold to what its whole history does."""
    monkeypatch.setattr(store_module, "SNAPSHOT_EVERY", 8)
    run = await regenerated(engine, source, cycles=5)
    run_id = run.pipeline_run_id
    fresh = Engine(engine.workspace, preferences=engine.preferences)
    await fresh.select(run_id, 1)
    run = await fresh.give_feedback(run_id, "again")
    run = await fresh.regenerate(run_id)
    await fresh.select(run_id, 0)
    snap_seq = engine.store.summary(run_id).snap_seq
    for i in range(3):
        await fresh.give_feedback(run_id, f"more {i}")
        await fresh.regenerate(run_id)
    assert engine.store.summary(run_id).snap_seq > snap_seq
    history = fold(engine.store.events(run_id))
    assert fresh.load(run_id) == history
    assert Engine(engine.workspace, preferences=engine.preferences).load(run_id) == history
    assert engine.store.load(run_id).model_dump_json() == history.model_dump_json()


def test_the_api_schema_still_documents_a_step_s_responses():
    """Parsing a lazy list before pydantic writes it must not hide the field's type from
    the server's OpenAPI document (a serializer's return annotation would)."""
    schema = StepState.model_json_schema(mode="serialization")
    assert schema["properties"]["ai_responses"]["items"] == {"$ref": "#/$defs/AIResponse"}
