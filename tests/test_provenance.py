"""What the writer did is recorded: instructions, providers, how each step was decided,
drafts; and candidates keep their place when asked again."""

from __future__ import annotations

import json

from writeit_cli import run as writeit

from writeit import export
from writeit.models import ResponseStatus, StepStatus

TWO = ["scripted-a", "scripted-b"]


async def start(engine, source, models=TWO):
    run = await engine.start_run("tech-article", {"source_material": source}, models=models)
    return run.pipeline_run_id


async def test_a_guide_instruction_is_recorded_on_the_step_and_its_candidates(
    engine, source, scripted
):
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    run = await engine.regenerate(run_id, guidance="Lead with the outage")
    angles = engine.store.load(run_id).steps["angles"]
    assert angles.guidance == "Lead with the outage"
    assert [c.instruction for c in angles.candidates] == ["Lead with the outage"] * 2
    assert all("Lead with the outage" in call["prompt"] for call in scripted.calls[2:])
    assert run.steps["angles"].candidates[0].provider  # recorded at start, not ''


async def test_how_each_step_was_decided_is_recorded_and_exported(engine, source, scripted):
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    picked = (await engine.select(run_id, 1)).steps["angles"]
    assert picked.decision.how == "selected"
    assert picked.decision.response_ids == [picked.candidates[1].response_id]

    written = (await engine.merge(run_id, [0, 1], text="Both, by hand.")).steps["angles"]
    ids = [c.response_id for c in written.candidates]
    assert written.decision.how == "written" and written.decision.response_ids == ids

    merged = await engine.merge(run_id, [0, 1], model="scripted-c", instruction="Keep it short")
    decision = merged.steps["angles"].decision
    assert decision.how == "merged" and not decision.edited
    assert decision.instruction == "Keep it short" and decision.response_ids == ids
    ai = decision.merge_response_id
    edited = await engine.merge(
        run_id, [0, 1], text="The model's merge, tightened.", edited_from=ai
    )
    decision = edited.steps["angles"].decision
    assert (decision.how, decision.merge_response_id, decision.edited) == ("merged", ai, True)
    assert engine.store.load(run_id).steps["angles"].decision == decision  # folds the same

    doc = json.loads(export.render(engine.load(run_id), "json"))
    angles = doc["history"][0]
    assert angles["decision"]["how"] == "merged" and angles["decision"]["edited"] is True
    assert angles["prompt"] and angles["output"] == "The model's merge, tightened."
    markdown = export.render(engine.load(run_id), "md")
    assert (
        "- angles: merged by scripted-c from candidates 1 and 2, then edited by hand; "
        "decided by the writer, " in markdown
    )


async def test_a_retried_candidate_takes_the_failed_ones_place(engine, source, scripted):
    scripted.script("scripted-b", fail="quota exceeded")
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    failed = engine.load(run_id).steps["angles"].candidates[1]
    scripted.reset()
    run = await engine.retry_response(run_id, 1)
    angles = run.steps["angles"]
    assert [(c.model_name, c.status) for c in angles.candidates] == [
        ("scripted-a", ResponseStatus.COMPLETED),
        ("scripted-b", ResponseStatus.COMPLETED),
    ]
    assert angles.candidates[1].replaces == failed.response_id
    assert failed.response_id in [r.response_id for r in angles.ai_responses]  # kept


async def test_resume_with_another_model_asks_it_for_the_failed_candidates(
    engine, source, scripted
):
    scripted.script("scripted-b", fail="quota exceeded")
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    run = await engine.resume(run_id, model="scripted-c")
    assert [c.model_name for c in run.steps["angles"].candidates] == ["scripted-a", "scripted-c"]
    assert [c["model_id"] for c in scripted.calls] == [*TWO, "scripted-c"]


async def test_accept_with_exactly_one_finished_candidate_goes_on_with_it(engine, source, scripted):
    scripted.script("scripted-b", fail="quota exceeded")
    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    run = await engine.accept(run_id)
    angles = run.steps["angles"]
    assert run.current_step == "outline" and angles.status == StepStatus.COMPLETED
    assert angles.decision.response_ids == [angles.candidates[0].response_id]


async def test_drafts_are_kept_beside_the_run_until_dropped(engine, source):
    run_id = await start(engine, source)
    await engine.save_draft(run_id[:8], "feedback:angles", "Lead with the")
    await engine.save_draft(run_id, "guide:angles", "Shorter")
    assert engine.drafts(run_id) == {"feedback:angles": "Lead with the", "guide:angles": "Shorter"}
    assert [e.type.value for e in engine.store.events(run_id)] == ["run_created"]  # not history
    await engine.save_draft(run_id, "guide:angles", "")
    assert engine.drafts(run_id) == {"feedback:angles": "Lead with the"}


async def test_show_tells_how_each_step_was_decided(engine, source, scripted):
    run_id = await start(engine, source)
    await engine.regenerate(run_id, guidance="Lead with the outage")
    await engine.merge(run_id, [0, 1], text="Both, by hand.")
    shown = writeit("show", run_id[:8])
    assert "Written by hand from candidates 1 and 2; decided by the writer" in shown.stdout
    assert "instruction: Lead with the outage" in shown.stdout
    assert "scripted-a via " in shown.stdout


async def test_every_write_remembers_where_the_writer_is(engine, source, scripted):
    from writeit.engine import Engine

    run_id = await start(engine, source)
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    await engine.accept(run_id)
    later = Engine(engine.workspace)  # the next start of any front end
    session = later.last_session()
    assert session.active_pipeline_run_id == run_id and session.current_step == "outline"
    assert session.active_runs == [run_id]
    assert session.session_id == engine.session.session_id
