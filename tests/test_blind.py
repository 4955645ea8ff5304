"""Blind review: candidates shuffled and their models hidden until the writer decides,
recorded in the log (the shuffle, whether each decision was blind), in every front end."""

from __future__ import annotations

import json

from pilot import until
from test_server import read_until, receive, start_run, step_done, watch  # noqa: F401
from writeit_cli import run as writeit

from writeit.tui.app import WriteItApp
from writeit.tui.screens.step_view import StepScreen

THREE = ["scripted-a", "scripted-b", "scripted-c"]
REPLIES = {
    "scripted-a": "Six weeks from cron to Temporal.",
    "scripted-b": "What 140 jobs taught us about retries.",
    "scripted-c": "Failures fell from 12 a month to 2.",
}


def script_replies(scripted) -> None:
    """Texts that do not name their model (the default replies do)."""
    for model, reply in REPLIES.items():
        scripted.script(model, replies=[reply] * 8)


async def blind_run(engine, scripted, blind: bool | None = True):
    script_replies(scripted)
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=THREE, blind=blind
    )
    return await engine.execute_step(run.pipeline_run_id)


# --- the engine and the log --------------------------------------------------------------


async def test_the_shuffle_is_in_the_log_and_orders_the_candidates(engine, scripted):
    run = await blind_run(engine, scripted)
    step = run.current
    started = [e for e in engine.store.events(run.pipeline_run_id) if e.type == "step_started"]
    order = started[-1].data["order"]
    assert sorted(order) == [0, 1, 2] and step.order == order
    in_models_order = sorted(step.candidates, key=lambda r: THREE.index(r.model_name))
    assert step.candidates == [in_models_order[i] for i in order]
    assert run.blind and step.hidden


async def test_a_decision_records_that_it_was_blind_and_reveals(engine, scripted):
    run = await blind_run(engine, scripted)
    run = await engine.select(run.pipeline_run_id, 1)
    step = run.steps["angles"]
    assert not step.hidden
    assert step.decision.blind and step.decision.by == "writer"
    assert step.decision.at is not None
    chosen = [e for e in engine.store.events(run.pipeline_run_id) if e.type == "response_selected"]
    assert chosen[-1].data["blind"] is True
    # the next step is shuffled again, and a merge there is blind too
    await engine.accept(run.pipeline_run_id)
    run = await engine.execute_step(run.pipeline_run_id)
    assert run.current.hidden and sorted(run.current.order) == [0, 1, 2]
    run = await engine.merge(run.pipeline_run_id, [0, 2], text="both, by hand")
    assert run.steps["outline"].decision.how == "written" and run.steps["outline"].decision.blind


async def test_a_run_that_is_not_blind_keeps_the_models_order_and_says_so(engine, scripted):
    run = await blind_run(engine, scripted, blind=False)
    step = run.current
    assert step.order is None and not step.hidden
    assert [r.model_name for r in step.candidates] == THREE
    run = await engine.select(run.pipeline_run_id, 0)
    assert run.steps["angles"].decision.blind is False


async def test_the_preference_makes_new_runs_blind(engine, scripted):
    engine.preferences.blind_review = True
    run = await blind_run(engine, scripted, blind=None)
    assert run.blind and run.current.hidden
    assert (
        await engine.start_run("tech-article", {"source_material": "n"}, blind=False)
    ).blind is False


async def test_a_fork_of_a_blind_run_is_blind(engine, scripted):
    run = await blind_run(engine, scripted)
    await engine.select(run.pipeline_run_id, 0)
    child = await engine.fork(run.pipeline_run_id, "angles")
    assert child.blind


# --- the API -----------------------------------------------------------------------------


def models_in(data: dict) -> set[str]:
    text = json.dumps(data)
    return {model for model in THREE if model in text}


def test_the_api_leaves_models_out_until_the_choice_unless_revealed(server, client, scripted):
    script_replies(scripted)
    run_id = start_run(client, "notes", models=THREE, blind=True)
    with watch(server, run_id) as ws:
        assert receive(ws)["run"]["blind"] is True
        started = client.post(f"/api/runs/{run_id}/steps/angles/execute")
        assert started.status_code == 202, started.text
        messages = read_until(ws, step_done("angles"))
    streamed = [m for m in messages if m["type"] in ("response_started", "response_done")]
    assert len(streamed) == 6 and not models_in({"stream": streamed})
    hidden = client.get(f"/api/runs/{run_id}").json()
    assert hidden["blind"] is True and hidden["hidden"] is True
    assert [c["index"] for c in hidden["candidates"]] == [0, 1, 2]
    assert all("model" not in c for c in hidden["candidates"])
    responses = hidden["steps"]["angles"]["ai_responses"]
    assert len(responses) == 3 and not models_in(responses)
    # listed as numbered, not in the models' order, and without the shuffle itself
    assert [r["response_id"] for r in responses] == [c["response_id"] for c in hidden["candidates"]]
    assert hidden["steps"]["angles"]["order"] is None
    assert all("usage_stats" not in r for r in responses)
    assert hidden["models"] == THREE  # the run's pool is its own setting; who wrote what is not
    revealed = client.get(f"/api/runs/{run_id}", params={"reveal": "true"}).json()
    shuffled = server.engine.store.load(run_id).current.candidates
    assert revealed["hidden"] is False
    assert [c["model"] for c in revealed["candidates"]] == [r.model_name for r in shuffled]
    chosen = client.post(f"/api/runs/{run_id}/select", json={"index": 0})
    assert chosen.status_code == 200, chosen.text
    after = chosen.json()
    assert after["hidden"] is False and after["candidates"][0]["model"] == shuffled[0].model_name
    assert after["steps"]["angles"]["decision"]["blind"] is True


# --- the CLI -------------------------------------------------------------------------------


async def test_show_hides_the_models_of_an_undecided_blind_step(engine, scripted, isolated_env):
    run = await blind_run(engine, scripted)
    short = run.pipeline_run_id[:8]
    shown = writeit("show", short)
    assert shown.returncode == 0, shown.stderr
    assert "models hidden" in shown.stdout
    assert "candidate 3" in shown.stdout and not models_in({"out": shown.stdout})
    as_json = json.loads(writeit("show", short, "--json").stdout)
    assert not models_in(as_json["steps"]["angles"]) and as_json["hidden"] is True
    listed = [r["response_id"] for r in as_json["steps"]["angles"]["ai_responses"]]
    assert listed == [c.response_id for c in run.current.candidates]
    assert as_json["steps"]["angles"]["order"] is None
    revealed = writeit("show", short, "--reveal")
    assert models_in({"out": revealed.stdout}) == set(THREE)


def test_a_headless_blind_run_records_blind_decisions(isolated_env):
    done = writeit(
        "run",
        "tech-article",
        "--input",
        "source_material=Notes about Temporal.",
        "--model",
        "scripted-a",
        "--model",
        "scripted-b",
        "--headless",
        "--pick",
        "first",
        "--blind",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(writeit("show", json.loads(done.stdout)["run_id"], "--json").stdout)
    assert run["blind"] is True
    decisions = [step["decision"] for step in run["steps"].values()]
    assert len(decisions) == 4 and all(d["blind"] for d in decisions)


# --- the TUI -------------------------------------------------------------------------------


async def test_the_tui_shows_numbered_candidates_without_models_until_the_choice(engine, scripted):
    script_replies(scripted)
    run = await engine.start_run(
        "tech-article", {"source_material": "notes"}, models=THREE, blind=True
    )
    run_id = run.pipeline_run_id
    app = WriteItApp(engine=engine)
    async with app.run_test(size=(150, 40)) as pilot:
        app.open_run(run_id, start=True)
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")

        def finished() -> bool:
            screen = app.screen
            current = engine.load(run_id).current
            return (
                len(current.candidates) == 3
                and not engine.streaming(run_id)
                and all(p.shown for p in screen.panes.values())
                and len(screen.panes) == 3
            )

        await until(pilot, finished, "three candidates")
        screen = app.screen
        titles = [pane.border_title.split(" · ")[0] for pane in screen.board.query("CandidatePane")]
        assert titles == ["Candidate 1", "Candidate 2", "Candidate 3"]
        header = str(screen.query_one("#step-header").render())
        assert "tokens and cost shown after your choice" in header and "$" not in header
        before = app.export_screenshot()
        assert not models_in({"screen": before}), "a model name is on screen before the choice"
        shuffled = engine.load(run_id).current.candidates
        shown_texts = [pane.shown.strip() for pane in screen.board.query("CandidatePane")]
        assert shown_texts == [REPLIES[r.model_name] for r in shuffled]
        await pilot.press("2")
        await until(
            pilot,
            lambda: engine.load(run_id).steps["angles"].decision is not None,
            "the choice",
        )
        decision = engine.load(run_id).steps["angles"].decision
        assert decision.blind and decision.response_ids == [shuffled[1].response_id]
        await until(
            pilot,
            lambda: (
                shuffled[0].model_name
                in str(app.screen.board.query("CandidatePane").first().border_title)
            ),
            "the models revealed",
        )
        assert models_in({"screen": app.export_screenshot()}) == set(THREE)


async def test_the_merge_view_names_the_models_once_the_merge_decides(engine, scripted):
    from test_tui import candidates_shown, open_merge

    scripted.script("scripted-a", replies=["angle A", "merged AB"])
    scripted.script("scripted-b", replies=["angle B"])
    run = await engine.start_run(
        "tech-article", {"source_material": "n"}, models=["scripted-a", "scripted-b"], blind=True
    )
    app = WriteItApp(engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run.pipeline_run_id, start=True)
        await until(pilot, lambda: candidates_shown(app), "candidates")
        merge = await open_merge(pilot)
        sources = merge.query_one("#sources")

        def labels() -> list[str]:
            return [str(sources.get_option_at_index(i).prompt) for i in range(2)]

        assert all("model hidden" in label for label in labels())
        await pilot.press("ctrl+s")
        await until(pilot, lambda: merge.phase == "edit", "the AI merge")
        shuffled = engine.load(run.pipeline_run_id).steps["angles"].candidates
        assert labels() == [
            f"{n} · {r.model_name}: {r.processed_content}" for n, r in enumerate(shuffled, 1)
        ]
