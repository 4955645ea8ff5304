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
        "replay",
        parent_id[:8],
        "--from",
        "draft",
        "--model",
        "scripted-c",
        "--headless",
        "--pick",
        "1",
        "--json",
    )
    result = json.loads(done.stdout)
    child_id = result["run_id"]
    assert result["status"] == "completed" and result["parent"] == parent_id
    assert result["from_step"] == "draft" and result["models"] == ["scripted-c"]
    child = engine.store.load(child_id)
    assert [r.model_name for r in child.steps["polish"].ai_responses] == ["scripted-c"]
    assert child.steps["polish"].decision.by == "autopilot:1"

    styled = await engine.replay(parent_id, "polish", style="executive-brief")
    same = await engine.replay(parent_id, "outline", models=["scripted-a"])  # as the parent
    fork = await engine.fork(parent_id, "angles")
    tree = writeit("tree", parent_id[:8]).stdout

    def line(run_id: str) -> str:
        return next(text for text in tree.splitlines() if run_id[:8] in text)

    assert f"{child_id[:8]} completed at polish · replay from draft with scripted-c (event" in (
        line(child_id)
    )
    assert "at polish · replay from polish with style executive-brief (event" in line(
        styled.pipeline_run_id
    )
    assert "at outline · replay from outline (event" in line(same.pipeline_run_id)  # no change
    assert "at angles from angles (event" in line(fork.pipeline_run_id)
    assert "replay" not in line(fork.pipeline_run_id) + line(parent_id)


async def test_the_history_tree_labels_a_replay_with_what_it_changed(engine, source, scripted):
    from writeit.tui.screens.history import read_family, run_label

    parent_id = await finished_run(engine, source, ["scripted-a"])
    child = await engine.replay(parent_id, "draft", models=["scripted-c"], style="")
    fork = await engine.fork(parent_id, "draft")
    family = read_family(engine.store, parent_id)
    parent = family.summaries[parent_id]

    def label(run_id: str) -> str:
        summary = family.summaries[run_id]
        return run_label(summary, here=False, deleted=False, parent=parent).plain

    assert "replay from draft with scripted-c; style none" in label(child.pipeline_run_id)
    assert label(fork.pipeline_run_id).endswith(f"{fork.pipeline_run_id[:8]} from draft")
    assert "replay" not in label(parent_id)


def test_the_api_replays_a_run_on_a_new_branch_that_streams(server, source, scripted):
    import httpx
    from websockets.sync.client import connect

    def until_done(run_id: str, step: str, act) -> httpx.Response:
        url = f"{server.ws_url}/api/runs/{run_id}/stream"
        with connect(url, additional_headers=server.headers, open_timeout=10) as ws:
            json.loads(ws.recv(timeout=20))  # the state
            answer = act()
            while True:
                message = json.loads(ws.recv(timeout=20))
                if message["type"] == "step_done" and message["step"] == step:
                    return answer

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=15) as client:
        body = {"pipeline": "tech-article", "inputs": {"source_material": source}}
        run_id = client.post("/api/runs", json=body | {"models": ["scripted-a"]}).json()[
            "pipeline_run_id"
        ]
        early = client.post(f"/api/runs/{run_id}/replay", json={"from_step": "outline"})
        assert early.status_code == 409 and "no choice yet" in early.json()["error"]["message"]
        for step in STEPS:
            until_done(
                run_id, step, lambda s=step: client.post(f"/api/runs/{run_id}/steps/{s}/execute")
            )
            assert client.post(f"/api/runs/{run_id}/select", json={"index": 0}).status_code == 200
            assert client.post(f"/api/runs/{run_id}/accept").status_code == 200
        parent = server.engine.store.load(run_id)
        unknown = client.post(
            f"/api/runs/{run_id}/replay", json={"from_step": "draft", "style": "nope"}
        )
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_style"
        asked = len(scripted.calls)

        wanted = {"from_step": "draft", "models": ["scripted-c"], "style": "executive-brief"}
        replayed = client.post(f"/api/runs/{run_id}/replay", json=wanted)
        assert replayed.status_code == 202, replayed.text
        child = replayed.json()
        assert child["parent_pipeline_run_id"] == run_id and child["branched_from"] == run_id
        child_id = child["pipeline_run_id"]
        assert [r["model_name"] for r in child["steps"]["draft"]["ai_responses"]] == ["scripted-c"]
        url = f"{server.ws_url}/api/runs/{child_id}/stream"
        with connect(url, additional_headers=server.headers, open_timeout=10) as ws:
            state = json.loads(ws.recv(timeout=20))["run"]
            message = {"type": "state"}
            if state["steps"]["draft"]["ai_responses"][0]["status"] == "streaming":
                while not (message["type"] == "step_done" and message["step"] == "draft"):
                    message = json.loads(ws.recv(timeout=20))
        done = server.engine.store.load(child_id)
        assert done.steps["draft"].ai_responses[0].status == "completed"

        exported = client.post(
            f"/api/runs/{run_id}/export",
            json={"format": "json", "all_branches": True, "include_candidates": False},
        )
        doc = json.loads(exported.json()["content"])
        assert [(b["run_id"], b["branch_point"], b["replay"]) for b in doc["branches"]] == [
            (child_id, "draft", True)
        ]
        assert all("responses" not in step for step in doc["history"])

    assert [c["model_id"] for c in scripted.calls[asked:]] == ["scripted-c"]
    assert scripted.calls[-1]["system"].startswith("WRITING STYLE GUIDE: Executive Brief")
    assert done.steps["outline"].output == parent.steps["outline"].output
    assert server.engine.store.load(run_id) == parent


async def test_the_history_tree_replays_from_the_highlighted_step(engine, source, scripted):
    from pilot import until
    from textual.widgets import Input

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.history import HistoryScreen
    from writeit.tui.screens.replay import ReplayDialog
    from writeit.tui.screens.step_view import StepScreen

    parent_id = await finished_run(engine, source, ["scripted-a"])
    parent = engine.store.load(parent_id)
    scripted.reset()
    app = WriteItApp(engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(parent_id)
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "history")
        history = app.screen
        await until(pilot, lambda: history.family is not None, "the tree")
        run_node = history._run_nodes[parent_id]
        draft = next(n for n in run_node.children if n.data.step == "draft")
        history.query_one("Tree").move_cursor(draft)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReplayDialog), "the replay dialog")
        dialog = app.screen
        models = dialog.query_one("#replay-models", Input)
        assert models.value == "scripted-a"  # the run's model for the step, to change
        models.value = "scripted-c"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.store.children(parent_id), "the branch")
        child_id = engine.store.children(parent_id)[0]
        await until(
            pilot,
            lambda: isinstance(app.screen, StepScreen) and app.screen.run_id == child_id,
            "the branch open",
        )
        await until(pilot, lambda: not engine.streaming(child_id), "the draft written")
    child = engine.store.load(child_id)
    assert (child.current_step, child.branch_point) == ("draft", "draft")
    assert [r.model_name for r in child.steps["draft"].ai_responses] == ["scripted-c"]
    assert [c["model_id"] for c in scripted.calls] == ["scripted-c"]
    assert child.steps["outline"].output == parent.steps["outline"].output
    assert engine.store.load(parent_id) == parent


async def test_the_export_dialog_leaves_out_candidates_and_takes_every_branch(
    engine, source, scripted
):
    from pilot import until
    from textual.widgets import Checkbox

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.export import ExportDialog
    from writeit.tui.screens.step_view import StepScreen

    parent_id = await finished_run(engine, source, ["scripted-a"])
    child = await engine.replay(parent_id, "draft", models=["scripted-c"])
    await autopilot.drive(engine, child.pipeline_run_id, "first")
    app = WriteItApp(engine=engine)

    async def open_dialog(pilot) -> ExportDialog:
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "the export dialog")
        await until(pilot, lambda: app.screen.run is not None, "the dialog to load")
        return app.screen

    def ticks(dialog: ExportDialog) -> dict[str, bool]:
        return {
            key: dialog.query_one(f"#{key}", Checkbox).value
            for key in ("export-candidates", "export-branches")
        }

    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(parent_id)
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        dialog = await open_dialog(pilot)
        assert ticks(dialog) == {"export-candidates": True, "export-branches": False}
        await pilot.press("j")
        await pilot.click("#export-candidates")
        await pilot.click("#export-branches")
        assert ticks(dialog) == {"export-candidates": False, "export-branches": True}
        await pilot.press("ctrl+s")
        await until(pilot, lambda: dialog.saved is not None, "the export saved")
        saved = dialog.saved
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the dialog closed")
        again = await open_dialog(pilot)
        assert ticks(again) == {"export-candidates": False, "export-branches": True}  # remembered

    doc = json.loads(saved.read_text())
    assert doc["metadata"]["run_id"] == parent_id
    assert [(b["run_id"], b["branch_point"], b["replay"]) for b in doc["branches"]] == [
        (child.pipeline_run_id, "draft", True)
    ]
    assert doc["history"] and all("responses" not in step for step in doc["history"])


def test_the_export_options_are_described_in_help_and_the_api_docs(client):
    shown = writeit("export", "--help").stdout.splitlines()

    def line(option: str) -> str:  # an option's row in the help, its description on it
        return next(text for text in shown if f"│ {option} " in text)

    assert "Leave out every candidate's text and figures." in line("--no-candidates")
    assert "Also every fork of the run, with its branch point." in line("--all-branches")
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    options = schemas["Export"]["properties"]
    assert options["include_candidates"]["description"].startswith("Every candidate's text")
    assert options["all_branches"]["description"].startswith("Also every fork of the run")
    assert "include_candidates" not in schemas["Export"].get("required", [])


async def test_export_preferences_set_the_dialogs_ticks(engine, source, scripted):
    from pilot import until
    from textual.widgets import Checkbox

    from writeit.models import UserPreferences
    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.export import ExportDialog
    from writeit.tui.screens.step_view import StepScreen

    run_id = await finished_run(engine, source, ["scripted-a"])
    engine.preferences = UserPreferences.model_validate(
        engine.preferences.model_dump() | {"export_candidates": False, "export_all_branches": True}
    )
    app = WriteItApp(engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "the export dialog")
        await until(pilot, lambda: app.screen.run is not None, "the dialog to load")
        ticks = {
            key: app.screen.query_one(f"#{key}", Checkbox).value
            for key in ("export-candidates", "export-branches")
        }
        assert ticks == {"export-candidates": False, "export-branches": True}
