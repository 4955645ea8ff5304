"""Trust figures for `make soak`: two `writeit serve` processes on one workspace racing
executes, a burst of executes against `max_concurrent_pipelines`, pauses sent through
the other server, and exports aimed outside the workspace.

Targets: one generation per step, accepted <= the limit, every paused stream stopped
within a second, no 5xx, no write outside the workspace.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
from run import record
from served import Served, poll

HERE = Path(__file__).resolve().parent
RACES = int(os.environ.get("SOAK_RACES", "20"))
BURST, LIMIT = 20, 3


def trust_server(token: str) -> Served:
    """`writeit serve` with the benchmark's models (instant, slow) on a free port."""
    return Served(token, [sys.executable, str(HERE / "instant_model.py")])


def wait_for(check: Callable[[], object], timeout: float) -> bool:
    try:
        poll(check, timeout)
    except AssertionError:
        return False
    return True


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def new_run(server: Served, models: list[str]) -> str:
    body = {"pipeline": "tech-article", "inputs": {"source_material": "x"}, "models": models}
    return server.client.post("/api/runs", json=body).json()["pipeline_run_id"]


def idle(server: Served, run_id: str) -> bool:
    run = server.client.get(f"/api/runs/{run_id}").json()
    responses = [r for s in run["steps"].values() for r in s["ai_responses"]]
    return not any(r["status"] == "streaming" for r in responses)


def trust_races() -> None:
    from writeit.models import UserPreferences
    from writeit.workspaces import ensure_token, save_preferences

    save_preferences(UserPreferences(max_concurrent_pipelines=LIMIT))
    token = ensure_token()
    a, b = trust_server(token), trust_server(token)
    codes: Counter[int] = Counter()
    try:
        generations = races(a, b, codes)
        accepted = burst(a, b, codes)
        late = pauses(a, b, codes)
        outside = hostile_exports(a, codes)
    finally:
        a.stop(), b.stop()
    print(f"  trust soak answers by status: {dict(sorted(codes.items()))}", file=sys.stderr)
    record("soak: generations per step when two servers race (worst)", generations, "count", 1)
    record(
        f"soak: executes accepted of a burst of {BURST} (limit {LIMIT})", accepted, "count", LIMIT
    )
    record("soak: streams still running 1 s after a pause sent elsewhere", late, "count", 0)
    record(
        "soak: 5xx answers in the trust soak",
        sum(n for c, n in codes.items() if c >= 500),
        "count",
        0,
    )
    record("soak: writes outside the workspace by exports", outside, "count", 0)


def races(a: Served, b: Served, codes: Counter[int]) -> int:
    from writeit.workspaces import get_workspace

    worst = 0
    store = get_workspace().open_store()
    for _ in range(RACES):
        run_id = new_run(a, ["instant-a", "instant-b"])
        path = f"/api/runs/{run_id}/steps/angles/execute"
        answers = at_once([lambda: a.client.post(path), lambda: b.client.post(path)])  # noqa: B023
        codes.update(r.status_code for r in answers)
        wait_for(lambda: idle(a, run_id), 30)  # noqa: B023
        starts = [e.type.value for e in store.events(run_id)].count("step_started")
        worst = max(worst, starts)
    return worst


def burst(a: Served, b: Served, codes: Counter[int]) -> int:
    runs = [new_run(a, ["slow-a"]) for _ in range(BURST)]
    servers = [a, b] * BURST
    calls = [
        (lambda s=servers[i], r=run_id: s.client.post(f"/api/runs/{r}/steps/angles/execute"))
        for i, run_id in enumerate(runs)
    ]
    answers = at_once(calls)
    codes.update(r.status_code for r in answers)
    for run_id, answer in zip(runs, answers, strict=True):
        if answer.status_code == 202:
            a.client.post(f"/api/runs/{run_id}/pause")
    for run_id in runs:
        wait_for(lambda r=run_id: idle(a, r), 30)
    return sum(r.status_code == 202 for r in answers)


def pauses(a: Served, b: Served, codes: Counter[int]) -> int:
    late = 0
    for _ in range(5):
        run_id = new_run(a, ["slow-a", "slow-b"])
        started = a.client.post(f"/api/runs/{run_id}/steps/angles/execute")
        codes[started.status_code] += 1
        paused = b.client.post(f"/api/runs/{run_id}/pause")
        codes[paused.status_code] += 1
        if not wait_for(lambda r=run_id: idle(a, r), 1.0):
            late += 1
            wait_for(lambda r=run_id: idle(a, r), 30)
    return late


def hostile_exports(a: Served, codes: Counter[int]) -> int:
    """Names and planted symlinks that once let an export escape or answer 500."""
    from writeit.workspaces import get_workspace

    exports = get_workspace().exports
    exports.mkdir(parents=True, exist_ok=True)
    outside = Path(tempfile.mkdtemp(prefix="writeit-outside-")) / "victim.txt"
    outside.write_text("untouched")
    (exports / "note.md.tmp").unlink(missing_ok=True)
    (exports / "note.md.tmp").symlink_to(outside)
    (exports / "link.md").unlink(missing_ok=True)
    (exports / "link.md").symlink_to(outside)
    (exports / "ok.md").write_text("a file")
    run_id = new_run(a, ["instant-a"])
    for path in [
        "note.md",
        "link.md",
        "../escape.md",
        str(outside),
        "x" * 300 + ".md",
        "ok.md/child.md",
    ]:
        answer = a.client.post(
            f"/api/runs/{run_id}/export", json={"format": "md", "path": path, "overwrite": True}
        )
        codes[answer.status_code] += 1
    escaped = outside.read_text() != "untouched" or (exports.parent / "escape.md").exists()
    return int(escaped) + int((exports / "note.md").is_symlink())
