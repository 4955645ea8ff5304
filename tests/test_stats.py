"""Win rates (`writeit stats`, GET /api/stats) over runs with known picks, made through the
real engine: selections, an AI merge, a text written by hand, a skip, blind decisions, a
fork that chooses again, filters, a deleted run, and an older store indexed once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from writeit_cli import run as writeit

from writeit import stats
from writeit.engine import Engine
from writeit.errors import InvalidInput
from writeit.models import UserPreferences
from writeit.workspaces import get_workspace

A, B, C = "scripted-a", "scripted-b", "scripted-c"


@pytest.fixture
def preferences(scripted):
    """scripted-a has a price (so a known mean cost); scripted-b has none (unknown)."""
    scripted.UNPRICED.add(B)
    return UserPreferences(
        request_timeout=2.0,
        max_retries=2,
        style_primer="tech-journalist",
        pricing={A: {"input": 0.5, "output": 1.5}},
    )


def _by_model(step, model: str) -> str:
    return next(c.response_id for c in step.candidates if c.model_name == model)


async def _pick(engine, run_id: str, model: str) -> None:
    """Run the current step and select `model`'s candidate (by id: a blind step's
    order is shuffled), then go on."""
    run = await engine.execute_step(run_id)
    await engine.select(run_id, _by_model(run.current, model))
    await engine.accept(run_id)


async def _known_picks(engine) -> dict[str, str]:
    """Four runs whose every decision is known (see EXPECTED); their ids by name."""
    inputs = {"source_material": "We moved 140 cron jobs to Temporal."}
    # 1. tech-article, sighted: B, A, an AI merge of both (by C), a text written from B.
    first = (await engine.start_run("tech-article", inputs, models=[A, B])).pipeline_run_id
    await _pick(engine, first, B)
    await _pick(engine, first, A)
    await engine.execute_step(first)
    await engine.merge(first, [0, 1], model=C)
    await engine.accept(first)
    run = await engine.execute_step(first)
    await engine.merge(first, [_by_model(run.current, B)], text="My own polish, from B's.")
    await engine.accept(first)
    # 2. tech-article, blind: B, A, A, then polish skipped with both candidates offered.
    blind = (
        await engine.start_run("tech-article", inputs, models=[A, B], blind=True)
    ).pipeline_run_id
    for model in (B, A, A):
        await _pick(engine, blind, model)
    await engine.execute_step(blind)
    await engine.skip(blind)
    # 3. a fork of run 2 from its angles, where the writer (models now shown) takes A.
    fork = (await engine.fork(blind, "angles")).pipeline_run_id
    await engine.select(fork, _by_model((await engine.fetch(fork)).current, A))
    # 4. blog-post in another style, with A and C: C.
    other = await engine.start_run(
        "blog-post", {"topic": "Temporal"}, models=[A, C], style="executive-brief"
    )
    run = await engine.execute_step(other.pipeline_run_id)
    await engine.select(other.pipeline_run_id, _by_model(run.current, C))
    return {"first": first, "blind": blind, "fork": fork, "other": other.pipeline_run_id}


# model: (offered, chosen, blind_offered, blind_chosen), from the picks above
EXPECTED = {A: (10, 5, 4, 2), B: (9, 4, 4, 1), C: (1, 1, 0, 0)}


def _counts(found: dict) -> dict[str, tuple[int, int, int, int]]:
    return {
        m["model"]: (m["offered"], m["chosen"], m["blind_offered"], m["blind_chosen"])
        for m in found["models"]
    }


def _offered_responses(engine, runs: dict[str, str], model: str) -> list:
    """Every distinct response of `model` the writer was shown at a decided step."""
    found = {}
    for name in ("first", "blind", "other"):
        for step in engine.store.load(runs[name]).steps.values():
            if step.decision is not None:
                found |= {c.response_id: c for c in step.candidates if c.model_name == model}
    return list(found.values())


async def test_win_rates_count_picks_merges_written_texts_skips_blind_decisions_and_forks(engine):
    runs = await _known_picks(engine)
    found = stats.win_rates(engine.store)

    assert _counts(found) == EXPECTED
    assert (found["decisions"], found["runs"]) == (10, 4)
    assert [m["model"] for m in found["models"]] == [C, A, B]  # by win rate
    a, b, c = found["models"][1], found["models"][2], found["models"][0]
    assert (a["win_rate"], b["win_rate"], c["win_rate"]) == (0.5, 0.4444, 1.0)
    assert (a["blind_win_rate"], b["blind_win_rate"], c["blind_win_rate"]) == (0.5, 0.25, None)
    # the means are over each response once (the fork's angles are run 2's responses)
    responses = _offered_responses(engine, runs, A)
    assert len(responses) == 9
    costs = [r.usage_stats.cost_usd for r in responses]
    assert a["mean_cost_usd"] == round(sum(costs) / 9, 6) and a["mean_cost_usd"] > 0
    assert a["mean_quality"] == round(sum(r.quality_score for r in responses) / 9, 4)
    assert a["mean_seconds"] == round(sum(round(r.processing_time, 3) for r in responses) / 9, 3)
    assert b["mean_cost_usd"] is None  # no price known for it: unknown, not $0
    assert b["mean_quality"] is not None


async def test_each_decision_has_one_outcome_record_in_the_run_that_made_it(engine):
    runs = await _known_picks(engine)
    records = [record for _, record in stats.records(engine.store)]
    by_run = {name: [r for r in records if r["run_id"] == run_id] for name, run_id in runs.items()}

    assert [r["how"] for r in by_run["first"]] == ["selected", "selected", "merged", "written"]
    merged = by_run["first"][2]
    assert {(o["model"], o["chosen"]) for o in merged["offered"]} == {(A, True), (B, True)}
    assert [r["how"] for r in by_run["blind"]] == ["selected", "selected", "selected", "skipped"]
    assert all(r["blind"] for r in by_run["blind"])
    skipped = by_run["blind"][3]
    assert [o["chosen"] for o in skipped["offered"]] == [False, False]
    assert len(skipped["offered"]) == 2
    # the fork holds only its own choice, made with the models shown
    (chosen_again,) = by_run["fork"]
    assert (chosen_again["step"], chosen_again["blind"]) == ("angles", False)
    assert [o["model"] for o in chosen_again["offered"] if o["chosen"]] == [A]
    assert by_run["other"][0] | {"offered": None} == {
        "run_id": runs["other"],
        "pipeline": "blog-post",
        "style": "executive-brief",
        "step": "hook",
        "how": "selected",
        "blind": False,
        "by": "writer",
        "offered": None,
    }


async def test_filters_by_pipeline_step_style_and_since(engine):
    runs = await _known_picks(engine)
    store = engine.store

    angles = stats.win_rates(store, step="angles")
    assert _counts(angles) == {A: (3, 1, 1, 0), B: (3, 2, 1, 1)}
    assert (angles["decisions"], angles["runs"]) == (3, 3)
    blog = stats.win_rates(store, pipeline="blog-post")
    assert _counts(blog) == {C: (1, 1, 0, 0), A: (1, 0, 0, 0)}
    assert stats.win_rates(store, style="executive-brief") == blog
    assert stats.win_rates(store, style="tech-journalist")["decisions"] == 9
    assert stats.win_rates(store, pipeline="tech-article", step="hook")["decisions"] == 0

    between = datetime.now(UTC)
    later = await engine.start_run("tech-article", {"source_material": "n"}, models=[A, B])
    await _pick(engine, later.pipeline_run_id, B)
    recent = stats.win_rates(store, since=between)
    assert _counts(recent) == {B: (1, 1, 0, 0), A: (1, 0, 0, 0)}
    assert stats.win_rates(store, since=between.strftime("%Y-%m-%dT%H:%M:%S.%f")) == recent
    yesterday = (between - timedelta(days=1)).date().isoformat()  # safe across midnight
    assert stats.win_rates(store, since=yesterday)["decisions"] == 11
    tomorrow = (between + timedelta(days=1)).date().isoformat()
    assert stats.win_rates(store, since=tomorrow) == {"models": [], "decisions": 0, "runs": 0}
    assert runs  # made before `between`, so left out of `recent`


def test_since_says_when_it_is_not_a_date():
    with pytest.raises(InvalidInput, match="'last week' is not a date") as raised:
        stats.parse_since("last week")
    assert "2026-11-01" in raised.value.hint
    assert stats.parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)


async def test_a_deleted_run_leaves_the_win_rates(engine):
    runs = await _known_picks(engine)
    await engine.delete(runs["other"])
    found = stats.win_rates(engine.store)
    assert C not in _counts(found)
    assert _counts(found)[A] == (9, 5, 4, 2)
    assert (found["decisions"], found["runs"]) == (9, 3)
    assert not [k for k in engine.store.keys("outcome:") if runs["other"] in k]


def _as_before_stats(store) -> None:
    """Make the store what a WriteIt before outcome records left: no records, no mark."""
    with store.env.begin(write=True) as txn:
        for prefix in (b"outcome:", b"outcome_keys:"):
            for key in [k.encode() for k in store.keys(prefix.decode())]:
                txn.delete(key)
        txn.delete(stats.INDEXED)


async def test_an_older_store_is_indexed_once_by_replaying_its_runs(engine):
    await _known_picks(engine)
    store = engine.store
    written = {k: store.get(k) for k in store.keys("outcome")}
    expected = stats.win_rates(store)
    assert stats.ensure_indexed(store) == 0  # a new store is marked at creation

    _as_before_stats(store)
    assert store.keys("outcome") == []
    told: list[int] = []
    assert stats.win_rates(store, announce=told.append) == expected
    assert told == [4]
    assert {k: store.get(k) for k in store.keys("outcome")} == written  # the same records
    assert stats.win_rates(store, announce=told.append) == expected
    assert told == [4]  # once


async def test_writeit_stats_prints_the_table_and_the_json(engine):
    await _known_picks(engine)
    expected = stats.win_rates(engine.store)

    assert json.loads(writeit("stats", "--json").stdout) == expected
    table = writeit("stats").stdout
    assert table.startswith(
        "10 decisions in 4 runs (all pipelines, steps and styles; yours; --autopilot"
    )
    rows = [line.split() for line in table.splitlines() if line.strip().startswith("scripted")]
    assert [row[0] for row in rows] == [C, A, B]  # by win rate
    assert rows[1][:8] == [A, "50%", "5", "of", "10", "50%,", "2", "of"]  # blind: 2 of 4
    assert rows[2][-2] == "unknown"  # B's cost
    assert rows[0][5] == "-"  # C was never offered blind
    filtered = writeit("stats", "--pipeline", "blog-post", "--since", "2026-01-01").stdout
    assert filtered.startswith("1 decision in 1 run (pipeline blog-post, since 2026-01-01; yours")


async def test_writeit_stats_indexes_an_older_store_once_and_says_so(engine):
    await _known_picks(engine)
    _as_before_stats(engine.store)
    first = writeit("stats", "--json")
    assert first.stderr.strip() == "indexing 4 runs for stats (once)"
    assert json.loads(first.stdout)["decisions"] == 10
    assert writeit("stats", "--json").stderr == ""


def test_writeit_stats_on_a_bad_date_and_on_an_empty_workspace():
    bad = writeit("stats", "--since", "30/11/2026", check=False)
    assert bad.returncode == 1
    assert "'30/11/2026' is not a date" in bad.stderr and "2026-11-01" in bad.stderr
    empty = writeit("stats")
    assert empty.stdout.startswith("No decisions yet (all pipelines, steps and styles; yours")
    assert json.loads(writeit("stats", "--json").stdout) == {
        "models": [],
        "decisions": 0,
        "runs": 0,
    }


async def test_get_api_stats(live_server, preferences):
    driver = Engine(get_workspace(), preferences=preferences, retry_backoff=0.01)
    await _known_picks(driver)
    expected = stats.win_rates(driver.store)
    server = live_server()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=15) as client:
        assert client.get("/api/stats").json() == expected
        angles = client.get("/api/stats", params={"step": "angles", "since": "2026-01-01"})
        assert angles.json() == stats.win_rates(driver.store, step="angles")
        assert angles.json()["decisions"] == 3
        blog = client.get(
            "/api/stats", params={"pipeline": "blog-post", "style": "executive-brief"}
        )
        assert _counts(blog.json()) == {C: (1, 1, 0, 0), A: (1, 0, 0, 0)}
        bad = client.get("/api/stats", params={"since": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_request"
        assert "'yesterday' is not a date" in bad.json()["error"]["message"]
        assert (
            client.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )


async def test_a_merge_of_an_earlier_attempt_counts_that_response_as_offered_and_chosen(engine):
    run = await engine.start_run("tech-article", {"source_material": "n"}, models=[A, B])
    run_id = run.pipeline_run_id
    first = (await engine.execute_step(run_id)).current
    earlier_b = _by_model(first, B)
    again = (await engine.regenerate(run_id)).current
    await engine.merge(run_id, [_by_model(again, A), earlier_b], text="Both attempts, mine.")

    ((_, record),) = stats.records(engine.store)
    offered = [(o["model"], o["chosen"], o["response"]) for o in record["offered"]]
    assert record["how"] == "written"
    assert offered == [
        (A, True, _by_model(again, A)[:12]),
        (B, False, _by_model(again, B)[:12]),
        (B, True, earlier_b[:12]),
    ]
    assert _counts(stats.win_rates(engine.store)) == {A: (1, 1, 0, 0), B: (2, 1, 0, 0)}


async def test_records_of_another_layout_are_rebuilt_in_place(engine):
    await _known_picks(engine)
    store = engine.store
    written = {k: store.get(k) for k in store.keys("outcome")}
    expected = stats.win_rates(store)
    with store.env.begin(write=True) as txn:  # as an earlier layout marked its store
        txn.put(stats.INDEXED, b"1")
        for key in store.keys("outcome:"):
            txn.put(key.encode(), stats._dump({"named": "fields"}))
    told: list[int] = []
    assert stats.win_rates(store, announce=told.append) == expected
    assert told == [4]
    assert {k: store.get(k) for k in store.keys("outcome")} == written


async def test_the_autopilots_picks_count_only_when_asked(engine):
    from writeit import autopilot

    run = await engine.start_run(
        "tech-article", {"source_material": "n"}, models=["scripted-a", "scripted-b"]
    )
    await autopilot.drive(engine, run.pipeline_run_id, "first")
    assert stats.win_rates(engine.store)["decisions"] == 0  # no choice of the writer's
    counted = stats.win_rates(engine.store, autopilot=True)
    assert counted["decisions"] == 4
    assert {m["model"]: m["chosen"] for m in counted["models"]} == {
        "scripted-a": 4,
        "scripted-b": 0,
    }
    shown = writeit("stats", "--autopilot").stdout
    assert shown.startswith("4 decisions in 1 run (all pipelines, steps and styles; yours and")


async def test_a_filter_that_finds_nothing_names_what_exists(engine):
    run = await engine.start_run("tech-article", {"source_material": "n"}, models=["scripted-a"])
    await engine.execute_step(run.pipeline_run_id)
    await engine.select(run.pipeline_run_id, 0)
    assert stats.known(engine.store) == {
        "pipeline": ["tech-article"],
        "step": ["angles"],
        "style": ["tech-journalist"],
    }
    typo = writeit("stats", "--step", "angels")
    assert typo.stdout.startswith("No decisions yet (step angels")
    assert "no decision was made in a step 'angels'; known: angles" in typo.stderr
