"""Prices: genai-prices' maintained data mapped from llm model ids, the writer's overrides
per million tokens, free offline models, and "unknown" (never $0) wherever a cost shows."""

from __future__ import annotations

import json

import pytest
import yaml
from writeit_cli import run as writeit

from writeit import export, pricing, workspaces

INPUTS = {"source_material": "We moved 140 cron jobs to Temporal in six weeks."}


@pytest.mark.parametrize(
    ("model", "provider", "per_million_in", "per_million_out"),
    [
        ("gpt-4o-mini", "openai", 0.15, 0.60),
        ("4o-mini", "openai", 0.15, 0.60),  # llm's alias
        ("gpt-4o", "openai", 2.50, 10.0),
        ("claude-3.5-sonnet", "anthropic", 3.0, 15.0),  # llm-anthropic's dotted id
        ("gemini-2.0-flash", "google", 0.10, 0.40),
    ],
)
def test_well_known_models_are_priced_from_genai_prices(
    model, provider, per_million_in, per_million_out
):
    price = pricing.price_of(model)
    assert price is not None and price.source == "genai-prices"
    assert price.provider == provider
    assert (price.input, price.output) == pytest.approx((per_million_in, per_million_out))
    expected = (2000 * per_million_in + 1000 * per_million_out) / 1_000_000
    assert pricing.cost(model, 2000, 1000) == pytest.approx(expected)


def test_long_prompts_are_charged_at_the_providers_higher_tier():
    # gemini-2.5-pro doubles its input price above 200K prompt tokens
    base = pricing.price_of("gemini-2.5-pro")
    assert pricing.cost("gemini-2.5-pro", 1000, 0) == pytest.approx(base.input / 1000)
    assert pricing.cost("gemini-2.5-pro", 300_000, 0) > 300 * base.input / 1000


def test_offline_models_are_free_and_unknown_ones_have_no_price(openai_server):
    assert pricing.price_of("markov").source == "free"
    assert pricing.cost("markov", 500, 500) == 0.0
    assert pricing.cost("scripted-a", 500, 500) == 0.0
    assert pricing.price_of("oai-ok") is None  # a loopback server is nobody's price list
    assert pricing.cost("oai-ok", 500, 500) is None
    assert pricing.price_of("no-such-model-anywhere") is None


def test_the_writers_pricing_overrides_per_million(openai_server):
    overrides = {"oai-ok": {"input": 1.5, "output": 6.0}, "gpt-4o-mini": {"output": 1.0}}
    assert pricing.cost("oai-ok", 1_000_000, 1_000_000, overrides) == pytest.approx(7.5)
    mixed = pricing.price_of("gpt-4o-mini", overrides)
    assert (mixed.source, mixed.input, mixed.output) == ("config", 0.15, 1.0)


def test_old_per_thousand_pricing_in_config_is_converted_once(isolated_env):
    path = workspaces.config_path()
    path.write_text(yaml.safe_dump({"pricing": {"my-model": {"input": 0.0005, "output": 0.0015}}}))
    first = workspaces.load_preferences()
    assert first.pricing["my-model"] == pytest.approx({"input": 0.5, "output": 1.5})
    saved = yaml.safe_load(path.read_text())
    assert saved["pricing_unit"] == "per_million"
    assert workspaces.load_preferences().pricing == first.pricing  # not converted again
    workspaces.set_preference("pricing.other.input", "0.15")
    again = workspaces.load_preferences()
    assert again.pricing["other"] == {"input": 0.15}
    assert again.pricing["my-model"] == pytest.approx({"input": 0.5, "output": 1.5})


async def test_a_response_of_an_unpriced_model_costs_unknown_everywhere(engine, openai_server):
    run = await engine.start_run("tech-article", INPUTS, models=["oai-ok", "scripted-a"])
    run = await engine.execute_step(run.pipeline_run_id)
    unpriced, free = run.current.candidates
    assert unpriced.usage_stats.cost_usd is None
    assert free.usage_stats.cost_usd == 0.0
    assert run.known_cost is None
    assert engine.store.summary(run.pipeline_run_id).priced is False
    assert yaml.safe_load(export.render(run, "yaml"))["metadata"]["total_cost_usd"] is None

    listed = writeit("runs").stdout
    assert "unknown" in listed and "$0.0000" not in listed
    shown = writeit("show", run.pipeline_run_id[:8]).stdout
    assert "cost price unknown" in shown
    assert "oai-ok via openai-compatible [completed]" in shown
    assert shown.count("price unknown") == 2 and "$0.0000" in shown  # scripted-a is free


async def test_the_api_says_cost_unknown_not_zero(engine, openai_server, server):
    import httpx

    run = await engine.start_run("tech-article", INPUTS, models=["oai-ok"])
    await engine.execute_step(run.pipeline_run_id)
    body = httpx.get(f"{server.url}/api/runs/{run.pipeline_run_id}", headers=server.headers).json()
    assert body["cost_usd"] is None and body["priced"] is False
    assert "budget" not in body


def test_models_json_lists_prices_per_million(openai_server):
    listed = {m["model_id"]: m for m in json.loads(writeit("models", "--json").stdout)}
    assert listed["gpt-4o-mini"]["input_price"] == pytest.approx(0.15)
    assert listed["gpt-4o-mini"]["output_price"] == pytest.approx(0.60)
    assert listed["markov"]["input_price"] == 0.0 and listed["markov"]["price_source"] == "free"
    assert listed["oai-ok"]["input_price"] is None and listed["oai-ok"]["output_price"] is None
    writeit("config", "set", "pricing.oai-ok.input", "0.5")
    writeit("config", "set", "pricing.oai-ok.output", "2")
    listed = {m["model_id"]: m for m in json.loads(writeit("models", "--json").stdout)}
    assert (listed["oai-ok"]["input_price"], listed["oai-ok"]["output_price"]) == (0.5, 2.0)


async def test_the_tui_run_list_and_history_say_unknown_not_zero(engine, openai_server):
    from pilot import until

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.run_list import RunListScreen

    run = await engine.start_run("tech-article", INPUTS, models=["oai-ok"])
    await engine.execute_step(run.pipeline_run_id)
    app = WriteItApp(engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunListScreen), "the run list")
        table = app.screen.query_one("DataTable")
        await until(pilot, lambda: table.row_count == 1, "the run's row")
        assert "unknown" in [str(cell) for cell in table.get_row_at(0)]
