"""A run's budget: a step forecast past it is not started, a stream crossing it is stopped
(its text kept), the run pauses saying why, and raising the budget goes on."""

from __future__ import annotations

import json

import pytest
from writeit_cli import run as writeit

from writeit.errors import BudgetReached
from writeit.models import PipelineStatus, ResponseStatus, StepStatus

INPUTS = {"source_material": "We moved 140 cron jobs to Temporal in six weeks."}
# $1 per thousand tokens each way: a step of the scripted models costs dollars, not cents
DEAR = {"input": 1000.0, "output": 1000.0}


async def test_a_step_forecast_past_the_budget_is_not_started_and_resume_with_more_goes_on(
    engine, scripted
):
    engine.preferences.pricing = {"scripted-a": DEAR}
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=0.05)
    assert run.budget_usd == 0.05
    with pytest.raises(BudgetReached) as info:
        await engine.execute_step(run.pipeline_run_id)
    message = str(info.value)
    assert "$0.0500" in message and "spent $0.0000" in message
    assert "step angles is forecast at $" in message
    assert "writeit resume" in message
    assert scripted.calls == []  # no model was asked
    paused = engine.load(run.pipeline_run_id)
    assert paused.status == PipelineStatus.PAUSED
    assert paused.paused_because.startswith("budget reached")
    assert paused.current.status == StepStatus.PENDING

    resumed = await engine.resume(run.pipeline_run_id, budget_usd=50.0)
    assert resumed.status == PipelineStatus.RUNNING and resumed.paused_because is None
    assert resumed.budget_usd == 50.0
    (candidate,) = resumed.current.candidates
    assert candidate.status == ResponseStatus.COMPLETED
    assert candidate.usage_stats.cost_usd > 0.05
    # the budget is in the log: a fresh fold reads it
    assert engine.store.load(run.pipeline_run_id).budget_usd == 50.0


async def test_a_stream_that_crosses_the_budget_stops_with_its_text_kept(engine, scripted):
    # The forecast expects half of max_tokens (500 tokens, $0.50); this answer is longer.
    engine.preferences.pricing = {"scripted-a": {"input": 0.0, "output": 1000.0}}
    long_answer = "word " * 2000  # 10,000 characters: about 2,500 tokens, $2.50
    scripted.script("scripted-a", replies=[long_answer, "short"], chunk_size=40)
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=0.9)
    run = await engine.execute_step(run.pipeline_run_id)
    (stopped,) = run.current.candidates
    assert stopped.status == ResponseStatus.INTERRUPTED
    assert stopped.error.startswith("budget: the run's budget of $0.9000 was reached")
    assert 0 < len(stopped.raw_output) < len(long_answer)  # kept, cut where it crossed
    assert len(stopped.raw_output) <= 0.9 * 1000 * 4 + 40  # $0.90 of output at 4 chars a token
    assert run.status == PipelineStatus.PAUSED and run.paused_because == stopped.error
    assert engine.activity(run).state == "paused"

    with pytest.raises(BudgetReached):  # the same budget: the step cannot start again
        await engine.resume(run.pipeline_run_id)
    resumed = await engine.resume(run.pipeline_run_id, budget_usd=10.0)
    candidates = resumed.current.candidates
    assert [c.processed_content for c in candidates] == ["short"]
    assert candidates[0].replaces == stopped.response_id


async def test_without_a_budget_nothing_is_forecast_or_refused(engine, scripted):
    engine.preferences.pricing = {"scripted-a": DEAR}
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"])
    assert run.budget_usd is None
    run = await engine.execute_step(run.pipeline_run_id)
    assert run.current.candidates[0].status == ResponseStatus.COMPLETED


async def test_a_model_with_no_known_price_cannot_start_under_a_budget(engine, openai_server):
    run = await engine.start_run("tech-article", INPUTS, models=["oai-ok"], budget_usd=5.0)
    with pytest.raises(BudgetReached, match="price of oai-ok is unknown"):
        await engine.execute_step(run.pipeline_run_id)
    assert openai_server.count("ok") == 0


async def test_the_default_budget_preference_applies_to_new_runs(engine, scripted):
    engine.preferences.default_budget_usd = 2.5
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"])
    assert run.budget_usd == 2.5
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=1.0)
    assert run.budget_usd == 1.0


def test_headless_run_past_its_budget_exits_3_and_resume_with_more_finishes(isolated_env):
    writeit("config", "set", "pricing.scripted-a.input", "1000")
    writeit("config", "set", "pricing.scripted-a.output", "1000")
    stopped = writeit(
        "run", "tech-article", "--headless", "-m", "scripted-a", "--budget", "0.01",
        "-i", "source_material=notes", "--json", check=False,
    )  # fmt: skip
    assert stopped.returncode == 3, stopped.stderr
    assert "budget reached: the run's budget is $0.0100" in stopped.stderr
    assert "writeit resume" in stopped.stderr
    listed = json.loads(writeit("runs", "--json").stdout)
    assert [r["status"] for r in listed] == ["paused"]
    run_id = listed[0]["run_id"]
    done = writeit("resume", run_id[:8], "--headless", "--budget", "1000", "--json")
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["cost_usd"] > 0.01
    shown = writeit("show", run_id[:8]).stdout
    assert "budget $1000.0000" in shown


# --- as a writer sees it in the TUI ---------------------------------------------------------

LOOPBACK_PRICES = {  # USD per million tokens, as a writer would set them
    "oai-ok": {"input": 100.0, "output": 200.0},
    "oai-ok-b": {"input": 100.0, "output": 200.0},
}


async def test_the_tui_shows_the_forecast_stops_at_the_budget_and_goes_on_when_raised(
    engine, openai_server
):
    from pilot import notified, until

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.dialogs import AskDialog
    from writeit.tui.screens.input_form import InputFormScreen
    from writeit.tui.screens.step_view import StepScreen

    openai_server.add_llm_model("oai-ok-b", "ok-b")
    engine.preferences.pricing = LOOPBACK_PRICES
    app = WriteItApp(
        engine=engine,
        pipeline="tech-article",
        inputs={"source_material": "We moved 140 cron jobs to Temporal in six weeks. " * 20},
        models=["oai-ok", "oai-ok-b"],
        budget=0.1,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.screen
        assert isinstance(form, InputFormScreen)
        assert form.query_one("#budget").value == "0.1"
        forecast = form.query_one("#forecast")
        await until(pilot, lambda: "whole run" in str(forecast.render()), "the run's forecast")
        shown = str(forecast.render())
        assert "Forecast for the whole run: ≈ $" in shown
        assert "angles $" in shown and "polish $" in shown
        assert "Over the budget of $0.1000: the run would pause." in shown

        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        screen = app.screen
        await until(pilot, lambda: notified(app, "budget reached"), "the budget's refusal")
        assert notified(app, "the run's budget is $0.1000, it has spent $0.0000")
        assert openai_server.count("ok") == openai_server.count("ok-b") == 0
        run_id = screen.run_id

        def header() -> str:
            return str(screen.query_one("#step-header").render())

        def notice() -> str:
            return str(screen.query_one("#notice").render())

        await until(pilot, lambda: "Paused: budget reached" in notice(), "the paused notice")
        assert "U raises the budget and goes on" in notice()
        assert "budget $0.1000 of $0.1000 left" in header()
        assert "forecast ≈ $" in header()

        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, AskDialog), "the budget dialog")
        answer = app.screen.query_one("#answer")
        answer.value = "5"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                (run := engine.load(run_id)).current.candidates
                and not engine.streaming(run_id)
                and all(c.status == ResponseStatus.COMPLETED for c in run.current.candidates)
            ),
            "both candidates written",
        )
        run = engine.load(run_id)
        assert run.budget_usd == 5.0 and run.status == PipelineStatus.RUNNING
        assert openai_server.count("ok") == openai_server.count("ok-b") == 1
        spent = sum(c.usage_stats.cost_usd for c in run.current.candidates)
        assert spent > 0
        await until(pilot, lambda: "of $5.0000 left" in header(), "the new budget in the header")
        assert f"budget ${5 - spent:.4f} of $5.0000 left" in header()


# --- over the API -------------------------------------------------------------------------------


def test_the_api_takes_a_budget_refuses_past_it_and_goes_on_when_resumed_with_more(
    engine, server, client, scripted
):
    from test_server import read_until, receive, step_done, watch

    engine.preferences.pricing = {"scripted-a": DEAR}
    body = {"pipeline": "tech-article", "inputs": INPUTS, "models": ["scripted-a"]}
    created = client.post("/api/runs", json=body | {"budget_usd": 0.01})
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["budget_usd"] == 0.01
    assert run["budget"] == {"budget_usd": 0.01, "spent_usd": 0.0, "remaining_usd": 0.01}
    run_id = run["pipeline_run_id"]

    ahead = client.get(f"/api/runs/{run_id}/forecast").json()
    assert [s["step"] for s in ahead["steps"]] == ["angles", "outline", "draft", "polish"]
    assert ahead["steps"][0]["cost_usd"] > 0.01

    refused = client.post(f"/api/runs/{run_id}/steps/angles/execute")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "budget_reached"
    assert "the run's budget is $0.0100" in error["message"] and "--budget" in error["hint"]
    paused = client.get(f"/api/runs/{run_id}").json()
    assert paused["status"] == "paused" and paused["paused_because"].startswith("budget reached")
    assert scripted.calls == []

    assert client.post(f"/api/runs/{run_id}/resume", json={"budget_usd": -1}).status_code == 422
    with watch(server, run_id) as ws:
        receive(ws)
        resumed = client.post(f"/api/runs/{run_id}/resume", json={"budget_usd": 100})
        assert resumed.status_code == 202, resumed.text
        read_until(ws, step_done("angles"))
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "running" and run["budget_usd"] == 100
    assert run["candidates"][0]["status"] == "completed"
    assert 0 < run["budget"]["spent_usd"] == run["cost_usd"]
    assert run["budget"]["remaining_usd"] == pytest.approx(100 - run["cost_usd"])
