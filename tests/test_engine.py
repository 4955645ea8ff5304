"""The engine drives whole runs through the real llm library and a real store."""

import asyncio

import pytest
import yaml

from writeit import autopilot, export
from writeit.autopilot import choose
from writeit.engine import Busy
from writeit.events import EventType
from writeit.models import PipelineStatus, ResponseStatus, StepStatus, WriteItError

TWO = ["scripted-a", "scripted-b"]


async def start(engine, source, models=TWO, **kwargs):
    return await engine.start_run(
        "tech-article", {"source_material": source}, models=models, **kwargs
    )


async def test_a_headless_run_with_two_models_completes_all_four_steps(engine, source, scripted):
    run = await start(engine, source)
    run = await autopilot.drive(engine, run.pipeline_run_id, "first")
    assert run.status == PipelineStatus.COMPLETED
    for name in ("angles", "outline", "draft", "polish"):
        step = run.steps[name]
        assert step.status == StepStatus.COMPLETED
        assert [r.model_name for r in step.candidates] == TWO
        assert all(r.status == ResponseStatus.COMPLETED for r in step.candidates)
        assert step.output.startswith("[scripted] scripted-a answered:")
    assert run.final_text == run.steps["polish"].output
    assert run.total_tokens > 0
    stored = engine.store.load(run.pipeline_run_id)
    assert stored == run
    assert len(scripted.calls) == 8


async def test_each_step_receives_the_previous_output_and_feedback(engine, source, scripted):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    run = await engine.select(run_id, 1)
    await engine.give_feedback(run_id, "Go with angle 2, the numbers-led one")
    await engine.accept(run_id)
    run = await engine.execute_step(run_id)
    prompt = run.steps["outline"].prompt
    assert run.steps["angles"].output in prompt
    assert run.steps["angles"].output.startswith("[scripted] scripted-b")
    assert "Go with angle 2, the numbers-led one" in prompt
    assert scripted.calls[-1]["prompt"] == prompt


async def test_user_text_with_template_syntax_reaches_the_model_verbatim(engine, source, scripted):
    run = await start(engine, source)
    await engine.execute_step(run.pipeline_run_id)
    sent = scripted.calls[0]["prompt"]
    assert "{{ 7*7 }}" in sent
    assert "{% for x in y %}loops{% endfor %}" in sent
    assert "49" not in sent


async def test_the_style_primer_is_the_system_prompt(engine, source, scripted):
    run = await start(engine, source, style="executive-brief")
    await engine.execute_step(run.pipeline_run_id)
    assert scripted.calls[0]["system"].startswith("WRITING STYLE GUIDE: Executive Brief")
    assert run.style_primer == "executive-brief"


async def test_tokens_stream_to_subscribers_in_order(engine, source, scripted):
    run = await start(engine, source, models=["scripted-a"])
    watcher = engine.subscribe(run.pipeline_run_id)
    run = await engine.execute_step(run.pipeline_run_id)
    updates = []
    while not watcher.queue.empty():
        updates.append(watcher.queue.get_nowait())
    text = "".join(u.data["text"] for u in updates if u.kind == "delta")
    assert text == run.steps["angles"].candidates[0].raw_output
    kinds = [u.kind for u in updates]
    assert kinds.index("response_started") < kinds.index("delta") < kinds.index("response_done")
    assert kinds[-1] == "step_done"


async def test_regenerate_with_guidance_keeps_the_earlier_candidates(engine, source, scripted):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    first = await engine.execute_step(run_id)
    again = await engine.regenerate(run_id, guidance="Make every title a question")
    step = again.steps["angles"]
    assert step.attempt == 2
    assert len(step.ai_responses) == 4
    assert [r.attempt for r in step.candidates] == [2, 2]
    assert "Make every title a question" in step.prompt
    assert first.steps["angles"].candidates[0].response_id in {
        r.response_id for r in step.ai_responses
    }


async def test_merge_by_hand_and_with_a_model(engine, source, scripted):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    run = await engine.merge(run_id, [0, 1], text="My own merged angles")
    assert run.steps["angles"].output == "My own merged angles"
    assert run.steps["angles"].status == StepStatus.COMPLETED
    scripted.script("scripted-a", replies=["The merged version"])
    run = await engine.merge(run_id, [0, 1], instruction="Keep angle 1 of A, angle 3 of B")
    merged = [r for r in run.steps["angles"].ai_responses if r.kind == "merge"]
    assert run.steps["angles"].output == "The merged version"
    assert merged[0].instruction == "Keep angle 1 of A, angle 3 of B"
    assert "Keep angle 1 of A, angle 3 of B" in scripted.calls[-1]["prompt"]
    assert "--- Draft 2 ---" in scripted.calls[-1]["prompt"]


async def test_a_failed_merge_behind_the_frontier_names_the_branch_that_holds_it(
    engine, source, scripted, built_on_angles
):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await built_on_angles(run_id)
    scripted.script("scripted-a", fail="merge model down")
    with pytest.raises(WriteItError, match="merge model down") as info:
        await engine.merge(run_id, [0, 1])
    branch = engine.load(info.value.run_id)
    assert branch.parent_pipeline_run_id == run_id and branch.branch_point == "angles"
    failed = branch.steps["angles"].ai_responses[-1]
    assert failed.kind == "merge" and failed.status == ResponseStatus.FAILED
    original = engine.store.load(run_id)
    assert [r.kind for r in original.steps["angles"].ai_responses] == ["candidate"] * 2


async def test_one_failing_model_leaves_the_step_to_the_healthy_one(engine, source, scripted):
    scripted.script("scripted-b", fail="model exploded")
    run = await start(engine, source)
    run = await engine.execute_step(run.pipeline_run_id)
    a, b = run.steps["angles"].candidates
    assert a.status == ResponseStatus.COMPLETED
    assert b.status == ResponseStatus.FAILED and "model exploded" in b.error
    assert run.status == PipelineStatus.RUNNING
    run = await engine.select(run.pipeline_run_id, 0)
    assert run.steps["angles"].status == StepStatus.COMPLETED
    with pytest.raises(WriteItError, match="failed"):
        await engine.select(run.pipeline_run_id, 1)


async def test_a_failed_response_can_be_retried_or_replaced(engine, source, scripted):
    scripted.script("scripted-b", replies=[__import__("llm").ModelError("busy"), "second try"])
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    run = await engine.execute_step(run_id)
    failed = run.steps["angles"].candidates[1]
    run = await engine.retry_response(run_id, failed.response_id)
    assert run.steps["angles"].candidates[-1].processed_content == "second try"
    run = await engine.retry_response(run_id, failed.response_id, model="scripted-c")
    assert run.steps["angles"].candidates[-1].model_name == "scripted-c"


async def test_when_every_model_fails_the_run_errors_and_recovers(engine, source, scripted):
    scripted.script("*", fail="provider down")
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    run = await engine.execute_step(run_id)
    assert run.status == PipelineStatus.ERROR
    assert "every model failed" in run.error
    scripted.reset()
    run = await engine.execute_step(run_id)
    assert run.status == PipelineStatus.RUNNING
    assert all(r.status == ResponseStatus.COMPLETED for r in run.steps["angles"].candidates)
    types = [e.type for e in engine.store.events(run_id)]
    assert EventType.RUN_ERRORED in types and EventType.STEP_RESET in types


async def test_rewind_then_a_different_choice_creates_a_branch(engine, source, scripted):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    for _ in range(2):
        await engine.execute_step(run_id)
        await engine.select(run_id, 0)
        run = await engine.accept(run_id)
    assert run.current_step == "draft"
    await engine.execute_step(run_id)  # the draft builds on outline's choice
    run = await engine.rewind(run_id)
    assert run.current_step == "outline"
    assert run.steps["outline"].status == StepStatus.COMPLETED  # nothing dropped
    same = await engine.select(run_id, 0)
    assert same.pipeline_run_id == run_id  # the same choice changes nothing
    child = await engine.select(run_id, 1)
    assert child.pipeline_run_id != run_id
    assert child.parent_pipeline_run_id == run_id and child.branch_point == "outline"
    assert (
        child.steps["outline"].candidates[1].response_id
        == child.steps["outline"].ai_responses[child.steps["outline"].user_selection].response_id
    )
    parent = engine.store.load(run_id)
    assert parent.steps["outline"].user_selection == 0
    assert engine.store.children(run_id) == [child.pipeline_run_id]
    run = await engine.accept(child.pipeline_run_id)
    assert run.current_step == "draft" and run.steps["draft"].status == StepStatus.PENDING
    assert engine.store.load(run_id).steps["draft"].status == StepStatus.RUNNING


async def test_a_new_choice_nothing_built_on_yet_changes_the_run_in_place(engine, source):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    await engine.accept(run_id)
    await engine.rewind(run_id)
    run = await engine.select(run_id, 1)
    assert run.pipeline_run_id == run_id
    assert run.steps["angles"].user_selection == 1
    assert engine.store.children(run_id) == []


async def test_fork_from_a_completed_step_shares_history(engine, source, scripted):
    run = await autopilot.drive(engine, (await start(engine, source)).pipeline_run_id, "first")
    child = await engine.fork(run.pipeline_run_id, "outline")
    assert child.current_step == "outline"
    assert child.steps["outline"].output == run.steps["outline"].output
    assert child.steps["draft"].status == StepStatus.PENDING
    own = engine.store.keys(f"event:{child.pipeline_run_id}:")
    assert len(own) == 1  # only the fork event; the rest is shared
    child = await engine.accept(child.pipeline_run_id)
    child = await engine.execute_step(child.pipeline_run_id)
    assert child.steps["draft"].status == StepStatus.RUNNING
    assert engine.store.load(run.pipeline_run_id).status == PipelineStatus.COMPLETED


async def test_skip_a_skippable_step(engine, source, scripted):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    for _ in range(3):
        await engine.execute_step(run_id)
        await engine.select(run_id, 0)
        run = await engine.accept(run_id)
    run = await engine.skip(run_id)
    assert run.steps["polish"].status == StepStatus.SKIPPED
    assert run.status == PipelineStatus.COMPLETED
    assert run.final_text == run.steps["draft"].output
    other = await start(engine, source)
    with pytest.raises(WriteItError, match="cannot be skipped"):
        await engine.skip(other.pipeline_run_id)


async def test_choosing_a_finished_candidate_stops_the_others(engine, source, scripted):
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    watcher = engine.subscribe(run_id)
    task = asyncio.create_task(engine.execute_step(run_id))
    await gate.wait_reached()
    with pytest.raises(WriteItError, match="scripted-a response is streaming"):
        await engine.select(run_id, 0)
    async for update in watcher:  # b finishes while a is held at the gate
        if update.kind == "response_done" and update.data["model"] == "scripted-b":
            break
    run = await engine.select(run_id, 1)
    await task
    angles = run.steps["angles"]
    assert angles.status == StepStatus.COMPLETED and angles.user_selection == 1
    stopped = angles.candidates[0]
    assert stopped.status == ResponseStatus.INTERRUPTED and stopped.raw_output
    assert "chose another candidate" in stopped.error
    assert not engine.streaming(run_id) and engine.store.live_runs() == {}
    gate.release()


async def test_pause_mid_stream_keeps_the_text_and_resume_finishes(engine, source, scripted):
    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-a", gate=gate)
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    watcher = engine.subscribe(run_id)
    task = asyncio.create_task(engine.execute_step(run_id))
    await gate.wait_reached()
    async for update in watcher:  # b finishes while a is held at the gate
        if update.kind == "response_done" and update.data["model"] == "scripted-b":
            break
    run = await engine.pause(run_id)
    await task
    assert run.status == PipelineStatus.PAUSED
    a, b = run.steps["angles"].candidates
    assert a.status == ResponseStatus.INTERRUPTED and len(a.raw_output) == 2 * 24
    assert b.status == ResponseStatus.COMPLETED
    scripted.reset()
    run = await engine.resume(run_id)
    assert run.status == PipelineStatus.RUNNING
    final = run.steps["angles"].candidates  # the new a takes the stopped one's place
    assert [(r.model_name, r.status) for r in final] == [
        ("scripted-a", ResponseStatus.COMPLETED),
        ("scripted-b", ResponseStatus.COMPLETED),
    ]
    assert final[0].replaces == a.response_id
    history = run.steps["angles"].ai_responses  # the stopped one stays in the run
    assert [r.response_id for r in history] == [a.response_id, b.response_id, final[0].response_id]
    assert [c["model_id"] for c in scripted.calls] == ["scripted-a"]  # b was not asked again


async def test_max_concurrent_pipelines_is_enforced(engine, source, scripted):
    engine.preferences.max_concurrent_pipelines = 1
    gate = scripted.Gate(after_chunks=1)
    scripted.script("scripted-a", gate=gate)
    first = await start(engine, source)
    second = await start(engine, source)
    task = asyncio.create_task(engine.execute_step(first.pipeline_run_id))
    await gate.wait_reached()
    with pytest.raises(Busy, match="max_concurrent_pipelines = 1"):
        await engine.execute_step(second.pipeline_run_id)
    gate.release()
    await task
    run = await engine.execute_step(second.pipeline_run_id)
    assert run.steps["angles"].status == StepStatus.RUNNING


async def test_inputs_are_validated_against_the_pipeline(engine):
    with pytest.raises(WriteItError, match="source_material is required"):
        await engine.start_run("tech-article", {}, models=["scripted-a"])
    with pytest.raises(WriteItError, match="no input 'topic'"):
        await engine.start_run("tech-article", {"topic": "x"}, models=["scripted-a"])
    with pytest.raises(WriteItError, match="unknown model 'no-such-model'"):
        await engine.start_run("tech-article", {"source_material": "x"}, models=["no-such-model"])
    run = await engine.start_run("tech-article", {"source_material": "x"}, models=["scripted-a"])
    assert run.user_inputs["target_audience"] == "technical professionals"


async def test_a_model_without_its_key_is_refused_before_the_run(engine):
    with pytest.raises(WriteItError, match="needs an API key") as info:
        await engine.start_run("tech-article", {"source_material": "x"}, models=["gpt-4o-mini"])
    assert "llm keys set openai" in str(info.value)


async def test_yaml_export_holds_models_selection_feedback_tokens_and_cost(engine, source):
    engine.preferences.pricing = {
        "scripted-a": {"input": 0.001, "output": 0.002},
        "scripted-b": {"input": 0.001, "output": 0.002},
    }
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 1, feedback="angle two")
    run = await autopilot.drive(engine, (await engine.accept(run_id)).pipeline_run_id, "first")
    doc = yaml.safe_load(export.render(run, "yaml"))
    assert doc["metadata"]["run_id"] == run_id
    assert doc["metadata"]["models"] == TWO
    assert doc["metadata"]["total_tokens"] == run.total_tokens > 0
    assert doc["metadata"]["total_cost_usd"] > 0
    assert doc["article"] == run.final_text
    angles = doc["history"][0]
    assert angles["models"] == TWO
    assert angles["selection"]["model"] == "scripted-b"
    assert angles["feedback"] == "angle two"
    assert doc["stats"]["steps_completed"] == 4
    md = export.render(run, "md")
    assert md.startswith("---\nrun_id: " + run_id)
    assert run.final_text.strip() in md


async def test_a_model_with_no_known_price_makes_the_cost_unknown_not_zero(
    engine, source, openai_server
):
    engine.preferences.pricing = {"scripted-a": {"input": 0.001, "output": 0.002}}
    inputs = {"source_material": source}
    run = await engine.start_run("tech-article", inputs, models=["scripted-a", "oai-ok"])
    run = await engine.execute_step(run.pipeline_run_id)
    priced, unpriced = run.steps["angles"].candidates
    assert priced.usage_stats.cost_usd > 0 and unpriced.usage_stats.cost_usd is None
    assert run.known_cost is None
    assert yaml.safe_load(export.render(run, "yaml"))["metadata"]["total_cost_usd"] is None


async def test_a_judge_model_scores_the_candidates_and_best_follows_it(engine, source, scripted):
    scripted.script(
        "scripted-c", replies=["Candidate 1: 4\nCandidate 2: 9\nThe second is sharper."]
    )
    run = await start(engine, source)
    run = await engine.execute_step(run.pipeline_run_id)
    run = await engine.judge(run.pipeline_run_id, "scripted-c")
    a, b = run.steps["angles"].candidates
    assert (a.quality_score, b.quality_score) == (0.4, 0.9)
    assert a.quality["judge"] == 0.4 and "readability" in a.quality
    judged = [r for r in run.steps["angles"].ai_responses if r.kind == "judge"]
    assert judged[0].model_name == "scripted-c"
    assert "Candidate 2" in scripted.calls[-1]["prompt"]
    run = await engine.select(run.pipeline_run_id, choose(run.steps["angles"].candidates, "best"))
    assert run.steps["angles"].output == b.processed_content


async def test_local_quality_signals_fill_the_quality_score(engine, source, scripted):
    scripted.script("scripted-a", replies=["We delve into a game-changer. " * 20])
    run = await start(engine, source, style="tech-journalist")
    run = await engine.execute_step(run.pipeline_run_id)
    a, b = run.steps["angles"].candidates
    assert a.quality["avoid_hits"] >= 20  # "delve" and "game-changer" are on the avoid list
    assert a.quality["words"] == 100
    assert 0 <= a.quality_score < b.quality_score <= 1


async def test_new_feedback_behind_the_frontier_branches_and_keeps_the_choice(engine, source):
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 1)
    await engine.accept(run_id)
    await engine.execute_step(run_id)  # outline built on angles' choice and feedback
    await engine.rewind(run_id)
    child = await engine.give_feedback(run_id, "Lead with the cost numbers")
    assert child.pipeline_run_id != run_id
    assert child.steps["angles"].user_selection == 1
    assert child.steps["angles"].user_feedback == "Lead with the cost numbers"
    assert child.steps["outline"].status == StepStatus.PENDING
    assert engine.store.load(run_id).steps["angles"].user_feedback is None


async def test_a_snapshot_includes_text_not_yet_checkpointed(engine, source, scripted):
    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-a", gate=gate)
    run = await start(engine, source, models=["scripted-a"])
    task = asyncio.create_task(engine.execute_step(run.pipeline_run_id))
    await gate.wait_reached()
    live = engine.snapshot(run.pipeline_run_id).steps["angles"].candidates[0]
    stored = engine.store.load(run.pipeline_run_id).steps["angles"].candidates[0]
    assert len(live.raw_output) == 48 and stored.raw_output == ""
    gate.release()
    await task


class RacedStore:
    """The store, where another process appends feedback to the run just before the
    engine's next matching write lands: the window between the engine's read and its
    append, hit every time instead of once in a thousand runs."""

    @staticmethod
    def make(path, when):
        import threading

        from writeit.events import Event, apply
        from writeit.store import Store

        class Raced(Store):
            raced = threading.Event()

            def append(self, run, events, expected_seq, **options):
                if not self.raced.is_set() and when(events, options):
                    self.raced.set()
                    other = Store(self.path).load(run.pipeline_run_id)  # a fresh reader
                    feedback = Event(
                        seq=other.last_seq + 1,
                        type=EventType.FEEDBACK_GIVEN,
                        run_id=run.pipeline_run_id,
                        data={"step": other.current_step, "feedback": "from elsewhere"},
                    )
                    seen = other.last_seq
                    apply(other, feedback)
                    Store.append(self, other, [feedback], seen)
                return super().append(run, events, expected_seq, **options)

        return Raced(path)


@pytest.mark.parametrize("write", ["checkpoint", "completion"])
async def test_a_streams_write_refused_for_another_writer_is_made_again_losing_no_text(
    isolated_env, preferences, scripted, source, write
):
    from writeit.engine import Engine
    from writeit.workspaces import get_workspace

    workspace = get_workspace()
    if write == "checkpoint":
        when = lambda events, options: options.get("index") is False  # noqa: E731
    else:
        when = lambda events, options: events[-1].type == EventType.RESPONSE_COMPLETED  # noqa: E731
    store = RacedStore.make(workspace.store_path, when)
    engine = Engine(workspace, preferences=preferences, store=store)
    reply = "".join(f"word{i} " for i in range(300))
    gate = scripted.Gate(after_chunks=5)
    scripted.script("scripted-a", replies=[reply], chunk_size=7, gate=gate)
    run = await start(engine, source, models=["scripted-a"])
    run = await engine.start_step(run.pipeline_run_id)
    await gate.wait_reached()
    if write == "checkpoint":  # the parked stream's text is checkpointed within 0.5 s
        assert await asyncio.to_thread(store.raced.wait, 10)
    gate.release()
    run = await engine.wait(run.pipeline_run_id)

    assert store.raced.is_set() and engine.streaming() == []
    stored = engine.store.load(run.pipeline_run_id)
    response = stored.steps["angles"].candidates[0]
    assert response.status == ResponseStatus.COMPLETED and response.raw_output == reply
    assert stored.steps["angles"].user_feedback == "from elsewhere"
    seqs = [e.seq for e in engine.store.events(run.pipeline_run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert await engine.select(run.pipeline_run_id, 0)  # nothing left "still generating"


async def test_feedback_given_while_streaming_does_not_put_a_later_branch_inside_the_stream(
    engine, source, scripted, built_on_angles
):
    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-b", gate=gate)
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    await engine.start_step(run_id)
    await gate.wait_reached()
    await engine.give_feedback(run_id, "Lead with the outage")  # while b streams
    gate.release()
    await engine.wait(run_id)
    await built_on_angles(run_id)
    child = await engine.select(run_id, 1)
    assert child.pipeline_run_id != run_id
    angles = child.steps["angles"]
    assert [r.status for r in angles.candidates] == [ResponseStatus.COMPLETED] * 2
    assert (
        angles.candidates[1].raw_output
        == engine.store.load(run_id).steps["angles"].candidates[1].raw_output
    )
    assert angles.user_selection == 1 and angles.user_feedback == "Lead with the outage"


async def test_another_engine_cannot_act_on_a_step_still_streaming(engine, source, scripted):
    """A second engine on the store (as the TUI beside a server is) sees the stream as
    live: choosing, merging or asking again there is refused until it ends."""
    from writeit.engine import Engine, StepRunning

    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-b", gate=gate)
    run = await start(engine, source)
    run_id = run.pipeline_run_id
    watching = engine.subscribe(run_id)
    await engine.start_step(run_id)
    await gate.wait_reached()
    async for update in watching:  # a finishes while b is parked
        if update.kind == "response_done":
            break
    other = Engine(engine.workspace)
    for action in (
        other.select(run_id, 0),
        other.start_step(run_id),
        other.retry_response(run_id, 1, model="scripted-a"),
        other.merge(run_id, [0], text="by hand"),
    ):
        with pytest.raises(StepRunning, match="angles"):
            await action
    assert other.load(run_id).steps["angles"].candidates[1].status == ResponseStatus.STREAMING
    gate.release()
    await engine.wait(run_id)
    parent_b = engine.store.load(run_id).steps["angles"].candidates[1]
    assert parent_b.status == ResponseStatus.COMPLETED and parent_b.raw_output.startswith(
        "[scripted] scripted-b"
    )
    assert [e.type for e in engine.store.events(run_id)].count(EventType.STEP_STARTED) == 1


async def test_a_run_handed_out_never_changes_under_its_holder(engine, source):
    run = await start(engine, source)
    shown = await engine.execute_step(run.pipeline_run_id)
    before = shown.model_dump()
    later = await engine.select(run.pipeline_run_id, 1, feedback="Shorter")
    await engine.accept(run.pipeline_run_id)
    assert shown.model_dump() == before  # what a front end is showing stays as it was
    assert shown.steps["angles"].user_selection is None and shown.current_step == "angles"
    assert later.steps["angles"].user_selection == 1 and later.last_seq > shown.last_seq
    assert engine.load(run.pipeline_run_id).current_step == "outline"
