"""export.save: where an export may land, and what happens to a file already there."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import yaml

from writeit import export
from writeit.export import ExportError, ExportExists


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every exports folder that no export may touch."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    return victim


def test_refuse_keeps_the_existing_file_and_overwrite_replaces_it(tmp_path):
    target = tmp_path / "exports" / "note.md"
    assert export.save("first", target) == export.Saved(target, 5)
    target.write_text("the writer's edits")
    with pytest.raises(ExportExists) as refused:
        export.save("second", target)
    assert str(target) in str(refused.value)
    assert target.read_text() == "the writer's edits"
    assert export.save("second", target, if_exists="overwrite").path == target
    assert target.read_text() == "second"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["note.md"]  # no temporary left


def test_rename_claims_a_new_name_and_never_replaces(tmp_path):
    target = tmp_path / "a.md"
    target.write_text("mine")  # the writer's earlier export, maybe edited since
    assert export.next_free(target).name == "a-2.md"
    assert export.save("one", target, if_exists="rename").path == tmp_path / "a-2.md"
    assert export.save("two", target, if_exists="rename").path == tmp_path / "a-3.md"
    assert [(tmp_path / n).read_text() for n in ("a.md", "a-2.md", "a-3.md")] == [
        "mine",
        "one",
        "two",
    ]


def test_concurrent_renames_never_pick_the_same_name(tmp_path):
    target = tmp_path / "exports" / "same.md"
    count = 8
    start = threading.Barrier(count)
    saved: list[Path] = []

    def one(n: int) -> None:
        start.wait()
        saved.append(export.save(f"export {n}", target, if_exists="rename").path)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(saved)) == count
    assert sorted(p.read_text() for p in saved) == sorted(f"export {n}" for n in range(count))
    assert len(list(target.parent.iterdir())) == count


def test_a_symlink_at_the_target_is_refused_in_every_mode(tmp_path, outside):
    target = tmp_path / "note.md"
    target.symlink_to(outside)
    for mode in ("refuse", "overwrite", "rename"):
        with pytest.raises(ExportError, match="is a symbolic link"):
            export.save("evil", target, if_exists=mode)
    assert outside.read_text() == "precious" and target.is_symlink()


def test_a_symlink_at_the_old_temporary_name_is_never_followed(tmp_path, outside):
    target = tmp_path / "note.md"
    (tmp_path / "note.md.tmp").symlink_to(outside)
    export.save("the export", target)
    assert outside.read_text() == "precious"
    assert not target.is_symlink() and target.read_text() == "the export"


def test_within_refuses_folders_that_are_symlinks(tmp_path, outside):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "sub").symlink_to(outside.parent)
    with pytest.raises(ExportError, match="sub is a symbolic link"):
        export.save("evil", exports / "sub" / "victim.txt", if_exists="overwrite", within=exports)
    assert outside.read_text() == "precious"
    assert sorted(os.listdir(outside.parent)) == ["victim.txt"]


@pytest.mark.parametrize("within", [False, True])
def test_os_refusals_name_the_path_and_the_problem(tmp_path, within):
    base = tmp_path / "exports"
    base.mkdir()
    (base / "ok.md").write_text("a file")
    cases = {
        base / ("x" * 256 + ".md"): "ENAMETOOLONG",
        base / ("é" * 128): "ENAMETOOLONG",
        base / "ok.md" / "child.md": "ENOTDIR",
    }
    for path, code in cases.items():
        with pytest.raises(ExportError) as refused:
            export.save("text", path, within=base if within else None)
        message = str(refused.value)
        assert f"cannot write {path}" in message and code in message, message
        assert refused.value.hint
    assert sorted(os.listdir(base)) == ["ok.md"]  # no temporary file left behind


# --- provenance: what an export says about how the article was made -----------------------


async def decided_every_way(engine, source) -> str:
    """A blind run: angles selected (blind, with feedback), the outline merged by a model
    then edited by hand, the draft picked by the autopilot's policy, the polish skipped."""
    run = await engine.start_run(
        "tech-article", {"source_material": source}, models=["scripted-a", "scripted-b"], blind=True
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 1, feedback="Take the second angle")
    await engine.accept(run_id)
    await engine.execute_step(run_id, guidance="Short sections")
    merged = await engine.merge(run_id, [0, 1], model="scripted-c", instruction="Keep it short")
    ai = merged.current.decision.merge_response_id
    await engine.merge(run_id, [0, 1], text="The outline, tightened by hand.", edited_from=ai)
    await engine.accept(run_id)
    await engine.execute_step(run_id)
    await engine.select(run_id, 0, by="autopilot:first")
    await engine.accept(run_id)
    await engine.skip(run_id)
    return run_id


async def test_an_export_tells_how_every_step_was_decided_and_validates(engine, source, scripted):
    import jsonschema_rs

    scripted.UNPRICED.add("scripted-b")  # the scripted models are free, this one unknown
    run_id = await decided_every_way(engine, source)
    run = engine.load(run_id)
    doc = json.loads(export.export_run(engine, run, "json"))
    jsonschema_rs.validator_for(export.schema()).validate(doc)
    assert doc["writeit_export"] == export.SCHEMA_VERSION
    steps = {s["step"]: s for s in doc["history"]}
    for name, step in steps.items():
        stored = run.steps[name]
        if name == "polish":
            assert step["prompt"] is None and step["responses"] == []
            continue
        assert step["prompt"] == {"system": run.style_prompt, "user": stored.prompt}
        # the candidates in the order the writer numbered them, then the other responses
        numbered = [r.response_id for r in stored.candidates]
        others = [r.response_id for r in stored.ai_responses if r.response_id not in numbered]
        assert [r["response_id"] for r in step["responses"]] == numbered + others
        assert [r["number"] for r in step["responses"]][: len(numbered)] == list(
            range(1, len(numbered) + 1)
        )
        assert [(m["model"], m["provider"]) for m in step["asked"]] == list(
            {r.model_name: (r.model_name, r.provider) for r in stored.ai_responses}.values()
        )
        assert all(m["provider"] for m in step["asked"])
    assert doc["style"] == {"id": "tech-journalist", "system_prompt": run.style_prompt}
    assert doc["inputs"] == {"source_material": source, "target_audience": ANY_AUDIENCE(run)}

    angles, outline, draft, polish = (steps[n]["decision"] for n in export_steps())
    assert (angles["how"], angles["blind"], angles["by"], angles["edited"]) == (
        "selected",
        True,
        "writer",
        False,
    )
    chosen = run.steps["angles"].decision.response_ids[0]  # numbered as shown, shuffled
    assert angles["sources"] == [
        {
            "response_id": chosen,
            "model": run.steps["angles"].response(chosen).model_name,
            "number": 2,  # the number the writer chose it by, on the shuffled step
        }
    ]
    assert steps["angles"]["feedback"] == "Take the second angle"
    assert (outline["how"], outline["edited"], outline["merged_by"]) == (
        "merged",
        True,
        "scripted-c",
    )
    assert [s["number"] for s in outline["sources"]] == [1, 2]
    assert steps["outline"]["guidance"] == "Short sections"
    assert steps["outline"]["output"] == "The outline, tightened by hand."
    assert [r["kind"] for r in steps["outline"]["responses"]] == ["candidate", "candidate", "merge"]
    assert (draft["how"], draft["by"]) == ("selected", "autopilot:first")
    assert (polish["how"], polish["by"]) == ("skipped", "writer")
    for name in export_steps():  # who and when, as stored
        stored = run.steps[name].decision
        decision = steps[name]["decision"]
        assert (decision["blind"], decision["by"]) == (stored.blind, stored.by)
        assert decision["at"] == stored.at.isoformat().replace("+00:00", "Z")

    markdown = export.export_run(engine, run, "md")
    assert (
        "- outline: merged by scripted-c from candidates 1 and 2, then edited by hand; "
        "decided by the writer" in markdown
    )
    picked = run.steps["draft"].candidates[0]  # candidate 1 as shown, shuffled
    assert (
        f"- draft: candidate 1 ({picked.model_name}); decided by autopilot:first, blind" in markdown
    )
    assert "- polish: skipped; decided by the writer" in markdown
    assert "; decided by the writer, blind, " in markdown  # the angles
    assert "scripted-a (scripted-model, $0/$0 per M tokens)" in markdown
    assert "scripted-b (scripted-model, price unknown)" in markdown

    data = yaml.safe_load(export.export_run(engine, run, "yaml"))
    assert data["history"][1]["decision"]["how"] == "merged"
    assert [s["decision"]["how"] for s in data["history"]] == [
        "selected",
        "merged",
        "selected",
        "skipped",
    ]


def export_steps() -> list[str]:
    return ["angles", "outline", "draft", "polish"]


def ANY_AUDIENCE(run):  # noqa: N802 - the pipeline's default, whatever it says
    return run.user_inputs["target_audience"]


async def test_no_candidates_and_all_branches_from_the_cli(engine, source, scripted, tmp_path):
    from writeit_cli import run as writeit

    from writeit import autopilot

    run = await engine.start_run("tech-article", {"source_material": source}, models=["scripted-a"])
    run_id = (await autopilot.drive(engine, run.pipeline_run_id, "first")).pipeline_run_id
    replay = await engine.replay(run_id, "draft", models=["scripted-b"], style="executive-brief")
    replay_id = (await autopilot.drive(engine, replay.pipeline_run_id, "best")).pipeline_run_id
    fork = await engine.fork(replay_id, "draft")  # a fork of the fork, not driven on

    lean = tmp_path / "lean.json"
    writeit("export", run_id[:8], "-f", "json", "--out", str(lean), "--no-candidates")
    doc = json.loads(lean.read_text())
    assert all("responses" not in step for step in doc["history"])
    assert doc["history"][2]["decision"]["sources"][0]["model"] == "scripted-a"
    assert "branches" not in doc and doc["stats"]["branches_created"] == 1
    candidate = engine.store.load(run_id).steps["outline"].ai_responses[0].processed_content
    assert candidate not in lean.read_text().replace(doc["history"][1]["output"], "")

    full = tmp_path / "all.yaml"
    writeit("export", run_id[:8], "-f", "yaml", "--out", str(full), "--all-branches")
    doc = yaml.safe_load(full.read_text())
    import jsonschema_rs

    jsonschema_rs.validator_for(export.schema()).validate(json.loads(json.dumps(doc, default=str)))
    branches = {b["run_id"]: b for b in doc["branches"]}
    assert list(branches) == [replay_id, fork.pipeline_run_id]
    replayed = branches[replay_id]
    assert (replayed["parent_run_id"], replayed["branch_point"], replayed["replay"]) == (
        run_id,
        "draft",
        True,
    )
    assert replayed["style"]["id"] == "executive-brief" and replayed["models"] == ["scripted-b"]
    assert [s["step"] for s in replayed["history"]] == ["draft", "polish"]
    assert replayed["history"][0]["decision"]["by"] == "autopilot:best"
    assert replayed["history"][0]["prompt"]["system"].startswith("WRITING STYLE GUIDE: Executive")
    assert replayed["article"] == engine.store.load(replay_id).final_text
    forked = branches[fork.pipeline_run_id]
    assert (forked["parent_run_id"], forked["replay"]) == (replay_id, False)

    md = tmp_path / "all.md"
    writeit("export", run_id[:8], "--out", str(md), "--all-branches")
    text = md.read_text()
    assert f"## Replay {replay_id[:8]} of {run_id[:8]} from draft (completed)" in text
    assert "Style: executive-brief. Models: scripted-b." in text


def test_the_schema_in_the_docs_is_the_one_exports_follow():
    doc = (Path(__file__).parent.parent / "docs" / "export-schema.md").read_text()
    block = doc.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == export.schema()


async def test_an_export_names_no_model_of_a_blind_step_before_its_choice(engine, source):
    run = await engine.start_run(
        "tech-article", {"source_material": source}, models=["scripted-a", "scripted-b"], blind=True
    )
    run = await engine.execute_step(run.pipeline_run_id)
    text = export.export_run(engine, run, "json")
    angles = json.loads(text)["history"][0]
    assert (angles["models"], angles["asked"]) == ([], [])
    assert [r["model"] for r in angles["responses"]] == ["hidden", "hidden"]
    assert all(r["tokens"] is None for r in angles["responses"])
