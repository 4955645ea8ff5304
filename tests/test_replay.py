"""Replay: a branch that keeps the choices before a step without asking any model, and
asks that step and the later ones again, of other models and in another style."""

from __future__ import annotations

import json

import pytest
from writeit_cli import run as writeit

from writeit import autopilot
from writeit.errors import InvalidAction
from writeit.events import EventType, RunForked
from writeit.models import StepStatus

STEPS = ["angles", "outline", "draft", "polish"]


async def finished_run(engine, source, models):
    run = await engine.start_run("tech-article", {"source_material": source}, models=models)
    return (await autopilot.drive(engine, run.pipeline_run_id, "first")).pipeline_run_id


def outputs(run) -> dict[str, str | None]:
    return {name: run.steps[name].output for name in STEPS}


async def test_a_replay_asks_no_model_for_the_kept_steps_and_the_new_model_from_its_step(
    engine, source, scripted, openai_server
):
    parent_id = await finished_run(engine, source, ["oai-ok"])
    parent = engine.store.load(parent_id)
    asked_before = openai_server.count("ok")
    assert asked_before == 4

    child = await engine.replay(parent_id, "draft", models=["scripted-b"])
    assert (child.current_step, child.current.status) == ("draft", StepStatus.PENDING)
    done = await autopilot.drive(engine, child.pipeline_run_id, "first")

    assert openai_server.count("ok") == asked_before  # nothing asked for angles and outline
    assert [c["model_id"] for c in scripted.calls] == ["scripted-b", "scripted-b"]
    assert parent.steps["outline"].output in scripted.calls[0]["prompt"]  # built on the kept
    for name in ("angles", "outline"):  # kept: the parent's very responses, shared
        assert done.steps[name].output == parent.steps[name].output
        assert [r.response_id for r in done.steps[name].ai_responses] == [
            r.response_id for r in parent.steps[name].ai_responses
        ]
    for name in ("draft", "polish"):
        assert [r.model_name for r in done.steps[name].ai_responses] == ["scripted-b"]
        assert done.steps[name].decision.by == "autopilot:first"
    assert done.parent_pipeline_run_id == parent_id and done.branch_point == "draft"
    assert engine.store.load(parent_id) == parent  # the parent stays as it was
    assert engine.store.children(parent_id) == [done.pipeline_run_id]

    forked = next(e for e in engine.store.events(done.pipeline_run_id) if e.type == "run_forked")
    payload = forked.payload
    assert isinstance(payload, RunForked) and payload.replay
    assert payload.step_models == {
        "angles": ["oai-ok"],
        "outline": ["oai-ok"],
        "draft": ["scripted-b"],
        "polish": ["scripted-b"],
    }
    assert engine.store.load(done.pipeline_run_id).models_for("angles") == ["oai-ok"]


async def test_a_replay_in_another_style_sends_it_from_its_step_on(engine, source, scripted):
    parent_id = await finished_run(engine, source, ["scripted-a"])
    parent = engine.store.load(parent_id)
    assert parent.style_primer == "tech-journalist"
    scripted.reset()
    child = await engine.replay(parent_id, "polish", style="executive-brief")
    done = await autopilot.drive(engine, child.pipeline_run_id, "first")
    assert done.style_primer == "executive-brief" and done.style_prompt != parent.style_prompt
    assert [call["system"] for call in scripted.calls] == [done.style_prompt.strip()]
    assert [c["model_id"] for c in scripted.calls] == ["scripted-a"]  # the parent's model
    draft = done.steps["draft"].ai_responses[0]
    assert draft.system_prompt == parent.style_prompt  # kept steps keep the style they had
    assert engine.store.summary(done.pipeline_run_id).style == "executive-brief"
    assert engine.store.load(parent_id).style_primer == "tech-journalist"


async def test_a_replay_from_the_first_step_keeps_only_the_inputs(engine, source, scripted):
    parent_id = await finished_run(engine, source, ["scripted-a"])
    child = await engine.replay(parent_id, "angles", models=["scripted-c"], start=True)
    assert [r.model_name for r in child.current.ai_responses] == ["scripted-c"]
    done = await engine.wait(child.pipeline_run_id)
    assert done.steps["angles"].candidates[0].status == "completed"
    assert all(done.steps[name].status == StepStatus.PENDING for name in STEPS[1:])
    assert done.user_inputs == engine.store.load(parent_id).user_inputs


async def test_a_replay_needs_every_earlier_step_decided(engine, source, scripted):
    run = await engine.start_run("tech-article", {"source_material": source}, models=["scripted"])
    await engine.execute_step(run.pipeline_run_id)
    with pytest.raises(InvalidAction, match="'angles' .* has no choice yet"):
        await engine.replay(run.pipeline_run_id, "outline")
    assert engine.store.children(run.pipeline_run_id) == []
    assert [e.type for e in engine.store.events(run.pipeline_run_id)][-1] != EventType.RUN_FORKED


async def test_writeit_replay_headless_and_tree_shows_the_branch(engine, source, scripted):
    parent_id = await finished_run(engine, source, ["scripted-a"])
    done = writeit(
        "replay", parent_id[:8], "--from", "draft", "--model", "scripted-c", "--headless",
        "--pick", "1", "--json",
    )
    result = json.loads(done.stdout)
    child_id = result["run_id"]
    assert result["status"] == "completed" and result["parent"] == parent_id
    assert result["from_step"] == "draft" and result["models"] == ["scripted-c"]
    tree = writeit("tree", parent_id[:8]).stdout
    assert f"{child_id[:8]} completed at polish from draft" in tree
    child = engine.store.load(child_id)
    assert [r.model_name for r in child.steps["polish"].ai_responses] == ["scripted-c"]
    assert child.steps["polish"].decision.by == "autopilot:1"
