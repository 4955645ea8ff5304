"""Several WriteIt processes on one workspace: real `writeit serve` processes racing.

The servers stream from the loopback OpenAI-compatible server (the scripted model lives
only in the test process), slowed down so that a race or a kill lands mid-stream. Waits
are bounded polls of the API, never bare sleeps.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
from collections.abc import Callable, Iterator

import httpx
import pytest
from served import Served, poll

from writeit.events import EventType
from writeit.workspaces import ensure_token, get_workspace

SLOW = "oai-slow"


@pytest.fixture
def serve(openai_server) -> Iterator[Callable[[], Served]]:
    openai_server.slow_delay = 0.25  # a reply takes about three seconds
    openai_server.add_llm_model(f"{SLOW}-b", "slow-b")
    started: list[Served] = []

    def start() -> Served:
        started.append(Served(ensure_token()))
        return started[-1]

    yield start
    for served in started:
        served.stop()


def new_run(served: Served, source: str, models: list[str]) -> str:
    response = served.client.post(
        "/api/runs",
        json={"pipeline": "tech-article", "inputs": {"source_material": source}, "models": models},
    )
    assert response.status_code == 201, response.text
    return response.json()["pipeline_run_id"]


def step_starts(run_id: str) -> int:
    events = get_workspace().open_store().events(run_id)
    return [e.type for e in events].count(EventType.STEP_STARTED)


def stored_text(run_id: str) -> str:
    """The first candidate's text as checkpointed in the store (not a server's buffer)."""
    steps = get_workspace().open_store().load(run_id).steps
    return "".join(r.raw_output for r in steps["angles"].ai_responses[:1])


def candidates(served: Served, run_id: str) -> list[dict]:
    response = served.client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()["steps"]["angles"]["ai_responses"]


def at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def race_executes(a: Served, b: Served, openai_server, source: str) -> None:
    run_id = new_run(a, source, [SLOW, f"{SLOW}-b"])
    asked = sum(openai_server.counts.values())
    path = f"/api/runs/{run_id}/steps/angles/execute"
    answers = at_once(lambda: a.client.post(path), lambda: b.client.post(path))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202, 409], [r.text for r in answers]
    refusal = next(r for r in answers if r.status_code == 409).json()["error"]
    assert refusal["code"] == "step_running", refusal
    assert run_id[:8] in refusal["message"] and "angles" in refusal["message"]
    assert step_starts(run_id) == 1
    poll(lambda: sum(openai_server.counts.values()) - asked >= 2, what="both models asked")
    assert sum(openai_server.counts.values()) - asked == 2
    poll(
        lambda: [c["status"] for c in candidates(a, run_id)] == ["completed"] * 2,
        what="the generation to end",
    )


def test_two_servers_racing_executes_start_one_generation(serve, openai_server, source):
    a, b = serve(), serve()
    for _ in range(4):
        race_executes(a, b, openai_server, source)


def test_a_pause_through_one_server_stops_the_other_servers_streams(serve, source):
    a, b = serve(), serve()
    run_id = new_run(a, source, [SLOW])
    assert a.client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202
    poll(lambda: stored_text(run_id), what="a checkpoint of the stream")
    paused = b.client.post(f"/api/runs/{run_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    poll(
        lambda: candidates(a, run_id)[0]["status"] == "interrupted",
        timeout=2.0,
        what="the owner stopping its stream",
    )
    stopped = candidates(b, run_id)[0]
    assert stopped["status"] == "interrupted" and stopped["raw_output"]
    assert "paused in another process" in stopped["error"]
    assert not stopped["raw_output"].endswith("second paragraph.")  # it did not finish
    assert get_workspace().open_store().live_runs() == {}


def test_a_killed_servers_streams_read_as_interrupted_from_a_fresh_one(serve, source):
    a = serve()
    run_id = new_run(a, source, [SLOW])
    assert a.client.post(f"/api/runs/{run_id}/steps/angles/execute").status_code == 202
    poll(lambda: stored_text(run_id), what="a checkpoint of the stream")
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait()
    fresh = serve()
    orphan = candidates(fresh, run_id)[0]
    assert orphan["status"] == "interrupted" and orphan["raw_output"]
    assert f"pid {a.process.pid}" in orphan["error"]
    exported = fresh.client.post(f"/api/runs/{run_id}/export", json={"format": "json"})
    assert exported.status_code == 200, exported.text
    history = json.loads(exported.json()["content"])["history"][0]
    assert history["responses"][0]["status"] == "interrupted"
    resumed = fresh.client.post(f"/api/runs/{run_id}/resume")
    assert resumed.status_code == 202, resumed.text
    poll(
        lambda: [c["status"] for c in candidates(fresh, run_id)] == ["interrupted", "completed"],
        what="the resumed candidate",
    )


def test_a_burst_of_executes_is_held_to_the_limit(live_server, scripted, source):
    from writeit.engine import Engine
    from writeit.models import UserPreferences

    engine = Engine(
        get_workspace(),
        preferences=UserPreferences(max_concurrent_pipelines=3, request_timeout=5),
    )
    server = live_server(engine=engine)
    gate = scripted.Gate(after_chunks=1)
    scripted.script("*", gate=gate)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=20) as client:
        runs = [
            client.post(
                "/api/runs",
                json={
                    "pipeline": "tech-article",
                    "inputs": {"source_material": source},
                    "models": ["scripted-a"],
                },
            ).json()["pipeline_run_id"]
            for _ in range(20)
        ]
        answers = at_once(
            *(
                (lambda run_id=run_id: client.post(f"/api/runs/{run_id}/steps/angles/execute"))
                for run_id in runs
            )
        )
    codes = [r.status_code for r in answers]
    assert codes.count(202) == 3, codes
    assert codes.count(409) == 17 and not [c for c in codes if c >= 500]
    refusal = next(r for r in answers if r.status_code == 409).json()["error"]
    assert refusal["code"] == "too_many_runs"
    assert "max_concurrent_pipelines = 3" in refusal["message"]
    assert sum(step_starts(run_id) for run_id in runs) == 3
    gate.release()
