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


# --- issue 14: budgets that hold without wasting paid text ----------------------------------


async def outline_refused(engine, openai_server):
    """The trial: two priced loopback models, angles chosen, the outline refused by a
    budget just above what the angles cost. Returns the paused run."""
    from writeit import pricing

    openai_server.add_llm_model("oai-ok-b", "ok-b")
    engine.preferences.pricing = LOOPBACK_PRICES
    run = await engine.start_run(
        "tech-article", TRIAL_INPUTS, models=["oai-ok-b", "oai-ok"], budget_usd=1.0
    )
    run_id = run.pipeline_run_id
    await engine.execute_step(run_id)
    await engine.select(run_id, 0)
    run = await engine.accept(run_id)
    spent = pricing.spent(run, engine.preferences.pricing)
    await engine.set_budget(run_id, round(spent + 0.001, 6))
    with pytest.raises(BudgetReached, match="step outline is forecast"):
        await engine.execute_step(run_id)
    return engine.load(run_id)


TRIAL_INPUTS = {"source_material": "We moved 140 cron jobs to Temporal in six weeks. " * 40}


async def test_the_suggested_budget_lets_the_step_finish_and_every_spend_figure_agrees(
    engine, openai_server
):
    from writeit import forecast, pricing

    paused = await outline_refused(engine, openai_server)
    run_id = paused.pipeline_run_id
    spent = pricing.spent(paused, engine.preferences.pricing)
    ahead = engine.resume_forecast(run_id)
    assert ahead.steps == ["outline"] and len(ahead.items) == 2
    suggested = forecast.suggested_budget(spent, ahead)
    assert spent + ahead.high <= suggested < (spent + ahead.high) * 1.1

    run = await engine.resume(run_id, budget_usd=suggested)
    outline = run.steps["outline"].candidates
    assert [c.status for c in outline] == [ResponseStatus.COMPLETED] * 2  # nothing cut
    assert run.status == PipelineStatus.RUNNING and run.paused_because is None
    spend = pricing.spend(run, engine.preferences.pricing)
    measured = sum(r.usage_stats.cost_usd for s in run.steps.values() for r in s.ai_responses)
    assert spend.total == pytest.approx(measured) == pytest.approx(run.known_cost)
    assert spend.estimated == 0.0 and spend.inherited == 0.0  # the provider said it all


async def test_the_guard_counts_output_as_the_forecast_does_so_a_step_that_fits_is_not_cut(
    engine, openai_server
):
    """chars/4 over-counts the loopback's words (about six characters a token): a budget
    that holds the step's real cost, and little more, must let it finish."""
    from writeit import pricing

    openai_server.add_llm_model("oai-ok-b", "ok-b")
    engine.preferences.pricing = {"oai-ok": {"input": 0.0, "output": 5000.0}}
    twin = await engine.start_run("tech-article", TRIAL_INPUTS, models=["oai-ok"])
    twin = await engine.execute_step(twin.pipeline_run_id)  # what angles really costs
    (reference,) = twin.current.candidates
    real = reference.usage_stats.cost_usd
    written = reference.raw_output
    assert len(written) / 4 > reference.usage_stats.output_tokens  # chars/4 would trip
    run = await engine.start_run(
        "tech-article", TRIAL_INPUTS, models=["oai-ok"], budget_usd=real * 1.02
    )
    run = await engine.execute_step(run.pipeline_run_id)
    (candidate,) = run.current.candidates
    assert candidate.status == ResponseStatus.COMPLETED and candidate.raw_output == written
    assert run.paused_because is None
    assert pricing.spent(run, engine.preferences.pricing) == pytest.approx(real)


def test_the_guard_counts_chunks_by_the_providers_characters_per_token():
    from writeit import forecast, pricing

    history = forecast.History()
    history.sent["m"] = [600, 100]  # the provider reported 6 characters a token
    guard = forecast.Guard(
        budget=0.000011,
        spent=0.0,
        prices={"r": pricing.Price(0.0, 1.0, "config")},  # $1 per million out
        inputs={"r": 0},
        models={"r": "m"},
        history=history,
    )
    assert not guard.add("r", "x" * 60)  # 10 tokens, not 15
    assert guard.usage("r") == (0, 10)
    assert guard.add("r", "x" * 12)  # 12 tokens: past $0.000011
    assert (
        guard.stop() == "budget: the run's budget of $0.0000 was reached ($0.0000 spent, estimated)"
    )


async def test_a_candidate_stopped_by_the_budget_keeps_its_usage_and_can_be_chosen(
    engine, scripted
):
    from writeit import pricing

    engine.preferences.pricing = {"scripted-a": {"input": 0.0, "output": 1000.0}}
    long_answer = "word " * 2000
    scripted.script("scripted-a", replies=[long_answer], chunk_size=40)
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=0.9)
    run = await engine.execute_step(run.pipeline_run_id)
    (stopped,) = run.current.candidates
    assert stopped.stopped_by_budget and stopped.selectable
    usage = stopped.usage_stats
    assert usage is not None and usage.estimated
    assert usage.output_tokens > 0 and stopped.tokens == usage.total_tokens
    assert usage.cost_usd == pytest.approx(usage.output_tokens * 0.001)
    assert stopped.processing_time > 0
    # one figure: the guard's reason, the budget's spend and the run's cost agree
    spent = pricing.spent(run, engine.preferences.pricing)
    assert spent == pytest.approx(usage.cost_usd) == pytest.approx(run.known_cost)
    assert f"(${spent:.4f} spent, estimated)" in stopped.error
    # a fresh fold reads the same usage from the log
    assert engine.store.load(run.pipeline_run_id).current.candidates[0].usage_stats == usage

    chosen = await engine.select(run.pipeline_run_id, 0)  # paid for: the writer may take it
    step = chosen.steps["angles"]
    assert step.status == StepStatus.COMPLETED and step.output == stopped.raw_output.strip()
    assert chosen.status == PipelineStatus.RUNNING
    later = await engine.accept(run.pipeline_run_id)
    assert later.current_step == "outline"


async def test_a_candidate_stopped_by_a_pause_cannot_be_chosen(engine, scripted):
    from writeit.errors import InvalidInput

    gate = scripted.Gate(after_chunks=2)
    scripted.script("scripted-a", replies=["word " * 50], chunk_size=10, gate=gate)
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"])
    await engine.start_step(run.pipeline_run_id)
    await gate.wait_reached()
    paused = await engine.pause(run.pipeline_run_id)
    gate.release()
    (stopped,) = paused.current.candidates
    assert stopped.status == ResponseStatus.INTERRUPTED and not stopped.selectable
    assert stopped.usage_stats.estimated and stopped.usage_stats.output_tokens > 0
    with pytest.raises(InvalidInput, match="interrupted"):
        await engine.select(run.pipeline_run_id, 0)


async def test_an_unpriced_model_under_a_budget_says_to_set_its_price(engine, openai_server):
    run = await engine.start_run("tech-article", INPUTS, models=["oai-ok"], budget_usd=1.0)
    with pytest.raises(BudgetReached) as info:
        await engine.execute_step(run.pipeline_run_id)
    hint = info.value.hint
    assert "writeit config set pricing.oai-ok.input USD" in hint
    assert "writeit config set pricing.oai-ok.output USD" in hint
    assert "--budget USD" not in hint  # a higher budget cannot help


def test_headless_unpriced_model_under_a_budget_hints_the_price_not_the_budget(
    isolated_env, openai_server
):
    stopped = writeit(
        "run", "tech-article", "-m", "oai-slow", "--headless", "--budget", "1",
        "-i", "source_material=notes", check=False,
    )  # fmt: skip
    assert stopped.returncode == 3, stopped.stderr
    assert "writeit config set pricing.oai-slow.input USD" in stopped.stderr
    assert "resume" not in stopped.stderr.split("hint:", 1)[1]
    assert openai_server.count("slow") == 0


async def test_a_replay_says_what_its_branch_spent_apart_from_what_it_inherited(engine, scripted):
    from writeit import autopilot, pricing

    writeit("config", "set", "pricing.scripted-a.output", "1000")
    writeit("config", "set", "pricing.scripted-c.output", "1000")
    engine.preferences.pricing = {
        "scripted-a": {"output": 1000.0},
        "scripted-c": {"output": 1000.0},
    }
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"])
    parent = await autopilot.drive(engine, run.pipeline_run_id, "first")
    parent_cost = pricing.spent(parent, engine.preferences.pricing)
    assert parent_cost > 0
    done = writeit(
        "replay", parent.pipeline_run_id[:8], "--from", "draft", "--model", "scripted-c",
        "--headless", "--pick", "1",
    )  # fmt: skip
    child_id = json.loads(writeit("runs", "--json").stdout)[0]["run_id"]
    child = engine.load(child_id)
    assert child.parent_pipeline_run_id == parent.pipeline_run_id
    spend = pricing.spend(child, engine.preferences.pricing)
    theirs = {r.response_id for s in parent.steps.values() for r in s.ai_responses}
    mine = [r for s in child.steps.values() for r in s.ai_responses]
    asked = [r for r in mine if r.response_id not in theirs]
    assert {r.model_name for r in asked} == {"scripted-c"}  # draft and polish, asked again
    assert len(asked) == 2 and len(mine) > len(asked)
    assert spend.own == pytest.approx(sum(r.cost for r in asked)) and spend.own > 0
    inherited = sum(r.cost for r in mine if r.response_id in theirs)
    assert spend.inherited == pytest.approx(inherited) and 0 < inherited <= parent_cost
    own_tokens = sum(r.tokens for r in asked)
    line = done.stdout.strip().splitlines()[-1]
    assert f"({own_tokens} tokens, ${spend.own:.4f} on this branch; " in line
    assert f"inherited from {parent.pipeline_run_id[:8]}: " in line
    assert f"${spend.inherited:.4f})" in line
    shown = writeit("show", child_id[:8]).stdout
    assert f"cost ${spend.own:.4f} on this branch; inherited from" in shown
    again = json.loads(
        writeit(
            "replay",
            parent.pipeline_run_id[:8],
            "--from",
            "draft",
            "--model",
            "scripted-c",
            "--headless",
            "--pick",
            "1",
            "--json",
        ).stdout  # fmt: skip
    )
    assert again["branch_cost_usd"] == pytest.approx(spend.own, abs=1e-6)
    assert again["inherited_cost_usd"] == pytest.approx(spend.inherited, abs=1e-6)
    assert again["cost_usd"] == pytest.approx(spend.total, abs=1e-6)  # the whole, as before
    assert again["branch_tokens"] + again["inherited_tokens"] == again["tokens"]


async def refused_again(pilot, engine, run_id: str, before: int) -> None:
    """Until the TUI's resume on opening a paused run (as `writeit resume` opens it) was
    refused by the same budget: the run paused again, in the log."""
    from pilot import until

    await until(
        pilot,
        lambda: engine.load(run_id).last_seq > before and not engine._claims,
        "the resume on opening refused",
    )


async def test_the_raise_budget_dialog_says_each_figure_once_and_its_default_finishes_the_step(
    engine, openai_server
):
    from pilot import until

    from writeit import forecast, pricing
    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.dialogs import AskDialog
    from writeit.tui.screens.step_view import StepScreen

    paused = await outline_refused(engine, openai_server)
    run_id = paused.pipeline_run_id
    spent = pricing.spent(paused, engine.preferences.pricing)
    ahead = engine.resume_forecast(run_id)
    suggested = forecast.suggested_budget(spent, ahead)
    before = engine.load(run_id).last_seq
    app = WriteItApp(engine=engine, run_id=run_id)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        await refused_again(pilot, engine, run_id, before)
        notice = app.screen.query_one("#notice")
        await until(pilot, lambda: "Paused: budget reached" in str(notice.render()), "the pause")
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, AskDialog), "the budget dialog")
        dialog = app.screen
        said = dialog.detail
        assert said.startswith(f"Spent ${spent:.4f} of ${paused.budget_usd:.4f}. ")
        assert f"Step outline is forecast at ≈ ${ahead.cost:.4f}" in said
        assert f"${suggested:.4f} covers it at its high end." in said
        for figure in (f"${spent:.4f}", f"${ahead.cost:.4f}", f"${ahead.high:.4f}"):
            assert said.count(figure) == 1, (figure, said)
        assert "it has spent" not in said  # the pause's reason is not repeated
        assert dialog.query_one("#answer").value == f"{suggested:g}"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                len((run := engine.load(run_id)).steps["outline"].candidates) == 2
                and not engine.streaming(run_id)
                and all(c.status != ResponseStatus.STREAMING for c in run.current.candidates)
            ),
            "the outline written",
        )
    run = engine.load(run_id)
    assert [c.status for c in run.current.candidates] == [ResponseStatus.COMPLETED] * 2
    assert run.budget_usd == suggested and run.paused_because is None


async def test_in_the_tui_a_number_takes_a_candidate_the_budget_stopped(engine, scripted):
    from pilot import until

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.step_view import StepScreen

    engine.preferences.pricing = {"scripted-a": {"input": 0.0, "output": 1000.0}}
    scripted.script("scripted-a", replies=["word " * 2000], chunk_size=40)
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=0.9)
    run = await engine.execute_step(run.pipeline_run_id)
    run_id = run.pipeline_run_id
    (stopped,) = run.current.candidates
    before = engine.load(run_id).last_seq
    app = WriteItApp(engine=engine, run_id=run_id)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the step view")
        screen = app.screen

        def notice() -> str:
            return str(screen.query_one("#notice").render())

        await refused_again(pilot, engine, run_id, before)
        await until(pilot, lambda: "Paused: budget reached" in notice(), "the budget's pause")
        assert "1 takes a stopped candidate as it is" in notice()
        await pilot.press("1")
        await until(
            pilot, lambda: engine.load(run_id).steps["angles"].decision, "the choice recorded"
        )
    chosen = engine.load(run_id)
    assert chosen.steps["angles"].output == stopped.raw_output.strip()
    assert chosen.status == PipelineStatus.RUNNING


async def test_show_gives_one_spend_figure_and_a_stopped_candidates_tokens(engine, scripted):
    from writeit import pricing

    engine.preferences.pricing = {"scripted-a": {"input": 0.0, "output": 1000.0}}
    scripted.script("scripted-a", replies=["word " * 2000], chunk_size=40)
    run = await engine.start_run("tech-article", INPUTS, models=["scripted-a"], budget_usd=0.9)
    run = await engine.execute_step(run.pipeline_run_id)
    (stopped,) = run.current.candidates
    spent = pricing.spent(run, engine.preferences.pricing)
    shown = writeit("show", run.pipeline_run_id[:8]).stdout
    lines = shown.splitlines()
    [cost] = [line for line in lines if line.startswith("cost ")]
    assert cost == (
        f"cost ${spent:.4f} (≈${spent:.4f} of it estimated: calls stopped before their end), "
        f"budget $0.9000 ($0.0000 left)"
    )
    [candidate] = [line for line in lines if "[interrupted]" in line]
    assert f"≈{stopped.tokens} tok, {stopped.processing_time:.1f}s, ${spent:.4f}" in candidate
    assert stopped.tokens > 0
    assert f"(${spent:.4f} spent, estimated)" in shown  # the guard's reason: the same figure
