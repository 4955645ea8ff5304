"""Forecasts: input tokens of the prompt as sent, output tokens from the workspace's past
outputs (else a per-step default), a range, and the dry run that calls no model."""

from __future__ import annotations

import json

import pytest
from writeit_cli import run as writeit

from writeit import autopilot, forecast

NOTES = "We moved 140 cron jobs to Temporal in six weeks; failures fell from 12 to 2 a month. "
PRICES = {"oai-ok": {"input": 0.5, "output": 2.0}}


def within(forecast_value: int, actual: int, share: float = 0.2) -> bool:
    return abs(forecast_value - actual) <= share * actual


async def test_a_first_forecast_is_marked_an_estimate_from_characters_and_defaults(
    engine, openai_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "no-vocabulary-here"))
    engine.preferences.pricing = PRICES
    ahead = engine.forecast(
        pipeline="tech-article", inputs={"source_material": NOTES}, models=["oai-ok", "gpt-4o"]
    )
    assert ahead.steps == ["angles", "outline", "draft", "polish"]
    first = ahead.step("angles").items
    assert [i.model for i in first] == ["oai-ok", "gpt-4o"]
    for item in first:
        assert item.counted_by == "chars/4" and item.estimated  # no tiktoken download, ever
        assert item.output_from == "default"
        assert item.output_tokens == 500  # half of the step's max_tokens (1000)
        assert item.output_low < item.output_tokens < item.output_high == 1000
        assert item.low < item.cost < item.high
    assert first[1].price.source == "genai-prices" and first[1].price.input == 2.5
    # later steps' prompts carry the earlier steps' expected outputs
    assert ahead.step("outline").items[0].input_tokens > first[0].input_tokens + 400
    assert ahead.cost == pytest.approx(sum(i.cost for i in ahead.items))


async def test_a_forecast_is_within_20_percent_of_the_loopback_providers_token_counts(
    engine, openai_server
):
    engine.preferences.pricing = PRICES
    models = ["oai-ok"]
    earlier = await engine.start_run("tech-article", {"source_material": NOTES}, models=models)
    await autopilot.drive(engine, earlier.pipeline_run_id, "first")

    inputs = {"source_material": NOTES * 4, "target_audience": "platform teams"}
    ahead = engine.forecast(pipeline="tech-article", inputs=inputs, models=models)
    run = await engine.start_run("tech-article", inputs, models=models)
    run = await autopilot.drive(engine, run.pipeline_run_id, "first")
    for name in run.pipeline.step_names:
        (item,) = ahead.step(name).items
        (done,) = run.steps[name].candidates
        usage = done.usage_stats
        assert item.counted_by == "provider history" and item.output_from.startswith("history")
        assert within(item.input_tokens, usage.input_tokens), (name, item, usage)
        assert within(item.output_tokens, usage.output_tokens), (name, item, usage)
        assert item.low <= done.usage_stats.cost_usd <= item.high
    assert within(ahead.cost * 1e6, run.total_cost * 1e6)
    assert openai_server.count("ok") == 8  # two runs of four steps: the forecast asked nothing


async def test_the_forecast_of_a_run_is_its_current_step_then_the_next(engine, scripted):
    scripted.script("scripted-a", replies=["one two three four five six"] * 4)
    engine.preferences.pricing = {"scripted-a": {"input": 1.0, "output": 1.0}}
    run = await engine.start_run("tech-article", {"source_material": NOTES}, models=["scripted-a"])
    pending = engine.forecast(run.pipeline_run_id)
    assert pending.steps == ["angles", "outline", "draft", "polish"]
    run = await engine.execute_step(run.pipeline_run_id)
    (sent,) = run.current.candidates
    counted = pending.step("angles").items[0].input_tokens
    assert counted == -(-(len(sent.prompt_used) + 1 + len(sent.system_prompt)) // 4)
    assert engine.forecast(run.pipeline_run_id).steps == ["outline", "draft", "polish"]
    # the step's own output teaches the next forecast of this step
    again = engine.forecast(
        pipeline="tech-article", inputs={"source_material": NOTES}, models=["scripted-a"]
    )
    assert again.step("angles").items[0].output_tokens == sent.usage_stats.output_tokens == 6


def test_an_unknown_price_makes_the_forecast_unknown_not_zero(openai_server):
    items = forecast.Forecast(
        [
            forecast.ModelForecast("a", "x", 10, 10, 5, 20, None, "chars/4", "default"),
            forecast.ModelForecast("a", "y", 10, 10, 5, 20, None, "chars/4", "default"),
        ]
    )
    assert items.cost is None and items.unpriced == ["x", "y"]
    assert items.to_json()["cost_usd"] is None and items.to_json()["priced"] is False


def test_dry_run_prints_the_forecast_per_step_and_model_and_calls_no_model(isolated_env):
    notes = isolated_env.writeit_home / "notes.md"
    notes.write_text(NOTES * 10)
    shown = writeit(
        "run", "tech-article", "--dry-run", "--json", "-m", "gpt-4o-mini", "-m", "gpt-4o",
        "-i", f"source_material=@{notes}", "--budget", "0.001",
    )  # fmt: skip
    ahead = json.loads(shown.stdout)
    assert [s["step"] for s in ahead["steps"]] == ["angles", "outline", "draft", "polish"]
    for step in ahead["steps"]:
        assert [m["model"] for m in step["models"]] == ["gpt-4o-mini", "gpt-4o"]
        assert step["cost_usd"] == pytest.approx(
            sum(m["cost_usd"] for m in step["models"]), abs=1e-5
        )
        assert step["cost_usd_low"] < step["cost_usd"] < step["cost_usd_high"]
    assert ahead["steps"][0]["models"][1]["input_price"] == 2.5
    assert ahead["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in ahead["steps"]), abs=1e-5)
    assert ahead["priced"] is True and ahead["estimated"] is True
    assert ahead["budget_usd"] == 0.001
    assert json.loads(writeit("runs", "--json").stdout) == []  # nothing ran

    table = writeit(
        "run", "tech-article", "--dry-run", "-m", "gpt-4o-mini", "-i", "source_material=x"
    )
    assert "angles" in table.stdout and "gpt-4o-mini" in table.stdout
    assert "0.15 · 0.6" in table.stdout and "Total: $" in table.stdout


def test_a_damaged_tiktoken_vocabulary_is_not_used_or_fetched(tmp_path, monkeypatch):
    import hashlib

    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not a vocabulary")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    forecast._tiktoken_for.cache_clear()
    assert forecast.count_tokens("gpt-4o-mini", "x" * 400) == (100, "chars/4")
    assert (tmp_path / hashlib.sha1(url.encode()).hexdigest()).read_bytes() == b"not a vocabulary"


def test_the_api_forecasts_a_new_run_as_the_dry_run_does_and_asks_no_model(client, scripted):
    body = {
        "pipeline": "tech-article",
        "inputs": {"source_material": NOTES * 10},
        "models": ["gpt-4o-mini", "gpt-4o"],
        "budget_usd": 0.001,
    }
    answer = client.post("/api/forecast", json=body)
    assert answer.status_code == 200, answer.text
    dry = writeit(
        "run", "tech-article", "--dry-run", "--json", "-m", "gpt-4o-mini", "-m", "gpt-4o",
        "-i", f"source_material={NOTES * 10}", "--budget", "0.001",
    )  # fmt: skip
    assert answer.json() == json.loads(dry.stdout)
    assert answer.json()["steps"][0]["models"][1]["input_price"] == 2.5

    per_step = {"draft": ["scripted-a"]}
    styled = client.post("/api/forecast", json=body | {"models": None, "step_models": per_step})
    plain = client.post(
        "/api/forecast", json=body | {"models": None, "step_models": per_step, "style": ""}
    )
    draft, plain_draft = (
        next(s for s in reply.json()["steps"] if s["step"] == "draft") for reply in (styled, plain)
    )
    assert [m["model"] for m in draft["models"]] == ["scripted-a"]
    assert styled.json()["budget_usd"] == 0.001
    assert plain_draft["models"][0]["input_tokens"] < draft["models"][0]["input_tokens"]

    unknown = client.post("/api/forecast", json={"pipeline": "nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_pipeline"
    bad_style = client.post("/api/forecast", json=body | {"style": "nope"})
    assert bad_style.status_code == 422 and bad_style.json()["error"]["code"] == "unknown_style"
    assert scripted.calls == []
    assert json.loads(writeit("runs", "--json").stdout) == []  # nothing started
