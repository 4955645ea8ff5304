"""The LMDB event store: round trips, indexes, forks, time travel, two processes."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import pytest

from writeit.events import Event, EventType, apply, fold, new_run
from writeit.models import PipelineConfiguration, PipelineStatus, StepStatus
from writeit.store import SCHEMA_VERSION, Conflict, Store, StoreError, UnknownRun, _envs

PIPELINE = PipelineConfiguration(
    name="mini",
    inputs=[{"name": "source"}],
    steps=[
        {"name": "first", "template": "{{ source }}"},
        {"name": "second", "template": "{{ first_output }}"},
    ],
)


def create(store: Store, run_id: str = "run-1"):
    event = Event(
        seq=1,
        type=EventType.RUN_CREATED,
        run_id=run_id,
        data={"pipeline": PIPELINE.model_dump(mode="json"), "inputs": {"source": "notes"}},
    )
    run = new_run(event)
    store.append(run, [event], 0)
    return run


def add(store: Store, run, *specs, index=True):
    expected = run.last_seq
    events = []
    for kind, data in specs:
        event = Event(seq=run.last_seq + 1, type=kind, run_id=run.pipeline_run_id, data=data)
        apply(run, event)
        events.append(event)
    store.append(run, events, expected, index=index)
    return run


def complete_first_step(store, run, text="first text"):
    return add(
        store,
        run,
        (EventType.RUN_STARTED, {}),
        (EventType.STEP_STARTED, {"step": "first", "prompt": "notes"}),
        (EventType.RESPONSE_STARTED, {"step": "first", "response_id": "r1", "model": "m"}),
        (EventType.RESPONSE_PROGRESS, {"response_id": "r1", "delta": text[:5]}),
        (EventType.RESPONSE_COMPLETED, {"response_id": "r1", "delta": text[5:]}),
        (EventType.RESPONSE_SELECTED, {"step": "first", "response_id": "r1"}),
        (EventType.STEP_ADVANCED, {"from": "first", "to": "second"}),
    )


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_a_run_round_trips_as_the_fold_of_its_events(store):
    run = complete_first_step(store, create(store))
    loaded = store.load("run-1")
    assert loaded == run
    assert loaded.steps["first"].output == "first text"
    assert loaded.current_step == "second"
    assert [e.seq for e in store.events("run-1")] == list(range(1, 9))


def test_seed_keys_and_indexes_are_written_with_the_events(store):
    complete_first_step(store, create(store))
    keys = store.keys("")
    for prefix in (
        "run:run-1",
        "run_by_config:mini:",
        "run_by_user:default:",
        "recent_runs:default:",
        "step:run-1:first",
        "step_responses:run-1:first",
        "response:r1",
    ):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert store.get("step_responses:run-1:first") == ["r1"]
    assert store.get("step:run-1:first")["status"] == "completed"
    assert store.get("response:r1") == {"run_id": "run-1", "step": "first", "model": "m"}


def test_recent_runs_are_newest_first_and_filterable(store):
    first = create(store, "run-a")
    create(store, "run-b")
    add(store, first, (EventType.RUN_STARTED, {}))  # run-a is now the most recent
    assert [r.run_id for r in store.recent()] == ["run-a", "run-b"]
    assert [r.run_id for r in store.recent(status="running")] == ["run-a"]
    assert store.recent(pipeline="other") == []
    assert len(store.keys("recent_runs:")) == 2  # the old index entry was moved, not copied


def test_time_travel_rebuilds_any_past_state(store):
    complete_first_step(store, create(store))
    assert store.state_at("run-1", 1).status == PipelineStatus.INITIALIZING
    partial = store.state_at("run-1", 5)
    assert partial.steps["first"].ai_responses[0].raw_output == "first"
    assert partial.steps["first"].status == StepStatus.RUNNING
    with pytest.raises(Exception, match="no event 99"):
        store.state_at("run-1", 99)


def test_a_fork_shares_its_parents_history_without_copying(store):
    parent = complete_first_step(store, create(store))
    add(store, parent, (EventType.FEEDBACK_GIVEN, {"step": "second", "feedback": "parent only"}))
    child = store.state_at("run-1", 7)
    fork = Event(
        seq=8,
        type=EventType.RUN_FORKED,
        run_id="child",
        data={"parent": "run-1", "branch_point": "first", "branch_seq": 7, "current_step": "first"},
    )
    apply(child, fork)
    store.append(child, [fork], 0)
    loaded = store.load("child")
    assert loaded.parent_pipeline_run_id == "run-1"
    assert loaded.steps["first"].output == "first text"
    assert loaded.steps["second"].user_feedback is None
    assert [k for k in store.keys("event:child:")] == ["event:child:0000000008"]
    assert store.children("run-1") == ["child"]
    assert store.ancestors("child") == ["run-1", "child"]


def test_appends_with_a_stale_view_conflict_and_write_nothing(store):
    run = create(store)
    stale = run.model_copy(deep=True)
    add(store, run, (EventType.RUN_STARTED, {}))
    with pytest.raises(Conflict, match="changed elsewhere"):
        add(store, stale, (EventType.RUN_STARTED, {}))
    assert [e.type for e in store.events("run-1")] == [EventType.RUN_CREATED, EventType.RUN_STARTED]


def test_run_ids_resolve_from_an_unambiguous_prefix(store):
    create(store, "abc-1")
    create(store, "abd-2")
    assert store.resolve("abc") == "abc-1"
    with pytest.raises(UnknownRun, match="matches several runs"):
        store.resolve("ab")
    with pytest.raises(UnknownRun, match="no run matches"):
        store.resolve("zzz")


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "future"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"meta:schema", b"99")
    env.close()
    with pytest.raises(StoreError, match="newer WriteIt"):
        Store(path)
    with _envs[path.resolve()].begin() as txn:  # the environment this process holds
        assert txn.get(b"meta:schema") == b"99"


def test_a_damaged_store_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"this is not an lmdb file" * 200)
    with pytest.raises(StoreError, match="damaged or not an LMDB store"):
        Store(path)
    assert (path / "data.mdb").read_bytes().startswith(b"this is not an lmdb file")


def test_large_values_are_compressed(store):
    run = create(store)
    text = "word " * 5000
    run = complete_first_step(store, run, text)
    assert store.load("run-1").steps["first"].output == text.strip()
    assert store.env.info()["last_pgno"] * store.env.stat()["psize"] < len(text)


WRITER = textwrap.dedent(
    """
    import sys
    from writeit.events import Event, EventType, apply
    from writeit.store import Conflict, Store
    store = Store(sys.argv[1])
    name = sys.argv[2]
    for i in range(150):
        while True:
            run = store.load("shared")
            event = Event(seq=run.last_seq + 1, type=EventType.FEEDBACK_GIVEN, run_id="shared",
                          data={"step": "first", "feedback": f"{name}-{i}"})
            expected = run.last_seq
            apply(run, event)
            try:
                store.append(run, [event], expected)
                break
            except Conflict:
                continue
    """
)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "store"
    create(Store(path), "shared")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    events = Store(path).events("shared")
    assert [e.seq for e in events] == list(range(1, 302))
    written = [e.data["feedback"] for e in events[1:]]
    for name in ("a", "b"):
        mine = [w for w in written if w.startswith(name)]
        assert mine == [f"{name}-{i}" for i in range(150)]
    assert fold(events).steps["first"].user_feedback in {"a-149", "b-149"}


# --- a store written by an earlier WriteIt ----------------------------------------------

FIXTURE = Path(__file__).parent / "fixtures" / "store-v1"


def _restricted(new: object, old: object) -> object:
    """`new` with only the keys `old` has (fields added since are checked on their own)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {key: _restricted(new.get(key), value) for key, value in old.items()}
    if isinstance(old, list) and isinstance(new, list):
        return [_restricted(n, o) for n, o in zip(new, old, strict=False)] + new[len(old) :]
    return new


def test_a_store_written_by_schema_1_opens_and_folds_to_the_same_states(tmp_path):
    """tests/fixtures/store-v1 was written by WriteIt at 888ac81 (schema 1), with the
    states that version folded (states.json): four runs, a branch, a deletion."""
    import json
    import shutil

    path = tmp_path / "store"
    path.mkdir()
    shutil.copy(FIXTURE / "data.mdb", path / "data.mdb")
    expected = json.loads((FIXTURE / "states.json").read_text())
    store = Store(path)
    with store.env.begin() as txn:
        assert txn.get(b"meta:schema") == str(SCHEMA_VERSION).encode()
    for run_id, old in expected.items():
        new = store.load(run_id).model_dump(mode="json")
        for step in new["steps"].values():
            for response in step["ai_responses"]:
                # schema 1 folded the provider away although its events carried it
                done = response["status"] == "completed"
                assert response["provider"] == ("scripted-model" if done else "")
                response["provider"] = ""
        assert _restricted(new, old) == old, run_id
    listed = {s.run_id for s in store.recent(limit=None)}
    assert listed == set(expected) - {
        run_id for run_id in expected if store.summary(run_id).deleted
    }
    assert sum(store.counts().values()) == len(listed)
    completed = store.recent(status="completed", limit=None)
    assert [s.status for s in completed] == ["completed"]
    assert {s.run_id for s in store.recent(model="scripted-b", limit=None)} <= listed
    merged = [
        run_id
        for run_id in listed
        if store.load(run_id).steps["angles"].decision
        and store.load(run_id).steps["angles"].decision.how == "written"
    ]
    assert len(merged) == 1  # the hand merge on the branch, as the decision folds it now


FIXTURE_V2 = Path(__file__).parent / "fixtures" / "store-v2"


def test_a_store_written_by_schema_2_opens_and_folds_to_the_same_states(tmp_path):
    """tests/fixtures/store-v2 was written by WriteIt at d1366f6 (schema 2) with
    store-v2/write.py: a long random history with snapshots and the branches it made, a
    completed run, a deleted run; states.json.gz is how that version folded each."""
    import gzip
    import json
    import shutil

    path = tmp_path / "store"
    path.mkdir()
    shutil.copy(FIXTURE_V2 / "data.mdb", path / "data.mdb")
    expected = json.loads(gzip.decompress((FIXTURE_V2 / "states.json.gz").read_bytes()))
    store = Store(path)
    snapshots = {key.removeprefix("snap:") for key in store.keys("snap:")}
    assert len(snapshots) >= 3  # opening those reads an old snapshot and its tail
    for run_id, old in expected.items():  # fields added since are checked on their own
        loaded, folded = store.load(run_id), fold(store.events(run_id))
        assert _restricted(loaded.model_dump(mode="json"), old) == old, run_id
        assert loaded == folded, run_id
    live = {s.run_id for s in store.recent(limit=None)}
    assert live == {r for r in expected if not store.summary(r).deleted}
    assert len(live) == len(expected) - 1
    # Runs written before schema 3 go on: new records in the new layout, old ones as read.
    run_id = next(r for r, state in expected.items() if state["status"] == "running")
    run = store.load(run_id)
    before = store.keys(f"event:{run_id}:")
    step = run.current_step
    specs = [
        (EventType.FEEDBACK_GIVEN, {"step": step, "feedback": "go"}),
        (EventType.REWOUND, {"step": step}),
    ]
    run = add(store, run, *specs)
    after = store.keys(f"event:{run_id}:")
    assert after[: len(before) - 1] == before[:-1]  # the last old one may be packed in
    assert after[-1] == f"event:{run_id}:{run.last_seq:010d}"
    assert store.load(run_id) == fold(store.events(run_id)) == run


FIXTURE_V3 = Path(__file__).parent / "fixtures" / "store-v3"


def test_a_store_written_by_schema_3_opens_and_folds_to_the_same_states(tmp_path):
    """tests/fixtures/store-v3 was written by WriteIt at c5818e6 (schema 3) with
    store-v3/write.py: a random history and a run asked again 40 times, with snapshots
    in the layout from before a step's earlier attempts were packed apart."""
    import gzip
    import shutil

    from writeit import records
    from writeit.models import LazyResponses

    path = tmp_path / "store"
    path.mkdir()
    shutil.copy(FIXTURE_V3 / "data.mdb", path / "data.mdb")
    expected = json.loads(gzip.decompress((FIXTURE_V3 / "states.json.gz").read_bytes()))
    store = Store(path)
    with store.env.begin() as txn:
        assert txn.get(b"meta:schema") == str(SCHEMA_VERSION).encode()
        old_snapshots = [bytes(value) for key, value in txn.cursor() if key.startswith(b"snap:")]
    assert len(old_snapshots) >= 3 and all(s[1:2] != b"2" for s in old_snapshots)
    for run_id, old in expected.items():
        loaded, folded = store.load(run_id), fold(store.events(run_id))
        assert _restricted(loaded.model_dump(mode="json"), old) == old, run_id
        assert loaded == folded, run_id
    # Packed again now, the regenerated run's 40 earlier attempts are read when asked.
    run_id = max(expected, key=lambda r: len(expected[r]["steps"]["angles"]["ai_responses"]))
    run = store.load(run_id)
    repacked = records.unpack(records.pack(run))
    responses = repacked.steps["angles"].ai_responses
    assert isinstance(responses, LazyResponses) and responses.pending == 80
    assert repacked.model_dump(mode="json") == run.model_dump(mode="json")
    assert _restricted(repacked.model_dump(mode="json"), expected[run_id]) == expected[run_id]


# --- texts stored once, records packed (schema 3) ---------------------------------------

LONG_SOURCE = "\n\n".join(f"Fact {i}: the nightly batch moved {i * 13} jobs." for i in range(12))


def _stored_json(store: Store) -> str:
    """Every value in the store as the JSON it holds (records and texts decompressed)."""
    from writeit import records

    found = []
    with store.env.begin() as txn:
        for key, value in txn.cursor():
            if key.startswith(b"event:"):
                found.append(json.dumps(records.decode_record(txn, bytes(value))))
            elif key.startswith(b"snap:"):
                found.append(records.unpack(bytes(value)).model_dump_json())
            elif value[:1] in (b"j", b"z"):
                found.append(json.dumps(records.decode(bytes(value))))
    return "\n".join(found)


async def test_prompts_keep_the_source_and_earlier_outputs_stored_once(engine):
    from writeit import autopilot

    run = await engine.start_run(
        "tech-article", {"source_material": LONG_SOURCE}, models=["scripted-a", "scripted-b"]
    )
    run = await autopilot.drive(engine, run.pipeline_run_id, "first")
    prompts = [s.prompt for s in run.steps.values()]
    assert all(LONG_SOURCE in prompt for prompt in prompts)
    outline = run.steps["outline"].output
    assert outline in run.steps["draft"].prompt
    events = engine.store.events(run.pipeline_run_id)
    assert [e.data["prompt"] for e in events if e.type == EventType.STEP_STARTED] == prompts
    stored = _stored_json(engine.store)
    assert stored.count(json.dumps(LONG_SOURCE)[1:-1]) == 1  # in the run's first event
    assert stored.count(json.dumps(outline)[1:-1]) == 1  # its own response's events
    assert engine.store.state_at(run.pipeline_run_id, run.last_seq) == run


async def test_a_step_boundary_packs_the_records_of_the_step_into_one(engine):
    from writeit import autopilot

    run = await engine.start_run(
        "tech-article", {"source_material": LONG_SOURCE}, models=["scripted-a", "scripted-b"]
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    assert len(engine.store.keys(f"event:{run_id}:")) > 3  # a record per commit
    run = await autopilot.drive(engine, run_id, "first")
    # the whole small run: one record, keyed by its last event
    assert engine.store.keys(f"event:{run_id}:") == [f"event:{run_id}:{run.last_seq:010d}"]
    assert [e.seq for e in engine.store.events(run_id)] == list(range(1, run.last_seq + 1))
    assert engine.store.load(run_id) == run
    child = await engine.fork(run_id, "outline")  # reads its parent's record part way
    assert child.steps["outline"].output == run.steps["outline"].output
    assert engine.store.load(child.pipeline_run_id) == fold(
        engine.store.events(child.pipeline_run_id)
    )


async def test_a_damaged_record_is_not_packed_and_the_step_still_ends(engine):
    run = await engine.start_run(
        "tech-article", {"source_material": LONG_SOURCE}, models=["scripted-a"]
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    damaged = engine.store.keys(f"event:{run_id}:")[1]
    engine.store._write(lambda txn: txn.put(damaged.encode(), b"j{not json"))
    run = await engine.accept(run_id)  # a step boundary: its records would be packed
    assert engine.store.summary(run_id).last_seq == run.last_seq
    assert damaged in engine.store.keys(f"event:{run_id}:")  # left as it was
