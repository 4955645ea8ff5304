"""`make bench`: WriteIt's speed figures beside their targets and same-run baselines.

Prints a table and writes benchmarks/results.json (a list of {name, value, unit,
target, baseline, ratio, meets_target}). No network; a few minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
os.environ.setdefault("WRITEIT_HOME", tempfile.mkdtemp(prefix="writeit-bench-"))
os.environ.setdefault("LLM_USER_PATH", tempfile.mkdtemp(prefix="writeit-bench-llm-"))
sys.path.insert(0, str(HERE))


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: float
    baseline: float | None
    ratio: float | None
    meets_target: bool
    note: str = ""


FIGURES: list[Figure] = []


def record(
    name: str,
    value: float,
    unit: str,
    target: float,
    baseline: float | None = None,
    *,
    higher_is_better: bool = False,
    note: str = "",
) -> None:
    ratio = round(value / baseline, 2) if baseline else None
    meets = value >= target if higher_is_better else value <= target
    FIGURES.append(
        Figure(
            name, round(value, 4), unit, target, baseline and round(baseline, 4), ratio, meets, note
        )
    )


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# --- start-up ---------------------------------------------------------------------------


def bench_help() -> None:
    exe = Path(sys.executable).parent / "writeit"
    help_time = timed(lambda: subprocess.run([str(exe), "--help"], capture_output=True), 9)
    bare = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], capture_output=True), 9)
    record("writeit --help (median)", help_time, "s", 0.2, bare, note="baseline: python -c pass")


# --- engine -----------------------------------------------------------------------------


def _engine():
    from writeit.engine import Engine
    from writeit.models import UserPreferences
    from writeit.workspaces import get_workspace

    return Engine(get_workspace(), preferences=UserPreferences(max_concurrent_pipelines=64))


async def _full_run(engine) -> None:
    run = await engine.start_run(
        "tech-article", {"source_material": "notes " * 200}, models=["instant-a", "instant-b"]
    )
    await engine.autopilot(run.pipeline_run_id, "first")


async def _direct_calls() -> None:
    import llm

    for _ in range(4):
        for model_id in ("instant-a", "instant-b"):
            response = llm.get_async_model(model_id).prompt("notes " * 200)
            async for _chunk in response:
                pass
            await response.usage()


def bench_engine() -> None:
    engine = _engine()
    asyncio.run(_full_run(engine))  # warm caches (imports, templates, model lookup)
    asyncio.run(_direct_calls())
    full = timed(lambda: asyncio.run(_full_run(engine)), 5)
    direct = timed(lambda: asyncio.run(_direct_calls()), 5)
    record(
        "engine: 4-step run, 2 models, instant model",
        full,
        "s",
        direct * 1.2,
        direct,
        note="target: at most 1.2x the same calls made directly through llm",
    )
    record("engine: overhead per step transition", (full - direct) / 4 * 1000, "ms", 50)


async def _stream_through_engine(engine) -> float:
    run = await engine.start_run("tech-article", {"source_material": "x"}, models=["firehose"])
    start = time.perf_counter()
    await engine.execute_step(run.pipeline_run_id)
    return time.perf_counter() - start


async def _raw_stream() -> float:
    import llm

    start = time.perf_counter()
    async for _chunk in llm.get_async_model("firehose").prompt("x"):
        pass
    return time.perf_counter() - start


def bench_streaming() -> None:
    from instant_model import FIREHOSE_DELTAS

    engine = _engine()
    through = asyncio.run(_stream_through_engine(engine))
    raw = asyncio.run(_raw_stream())
    record(
        "streaming: deltas/s through engine + store",
        FIREHOSE_DELTAS / through,
        "deltas/s",
        50_000,
        FIREHOSE_DELTAS / raw,
        higher_is_better=True,
        note="baseline: the raw llm stream",
    )


def bench_websocket() -> None:
    """Deltas that reach a WebSocket client from `writeit serve` in its own process."""
    import socket

    import httpx
    import websockets
    from instant_model import FIREHOSE_DELTAS

    from writeit.workspaces import ensure_token

    token = ensure_token()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(HERE / "instant_model.py"), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(200):  # wait for the server to listen
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)

    async def client() -> tuple[float, int]:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            body = {
                "pipeline": "tech-article",
                "inputs": {"source_material": "x"},
                "models": ["firehose"],
            }
            run_id = (await http.post("/api/runs", json=body)).json()["pipeline_run_id"]
            url = f"ws://127.0.0.1:{port}/api/runs/{run_id}/stream?token={token}"
            async with websockets.connect(url, max_size=None) as ws:
                await ws.recv()  # the state comes first
                start = time.perf_counter()
                await http.post(f"/api/runs/{run_id}/steps/angles/execute", json={})
                received = messages = 0
                while True:
                    message = json.loads(await ws.recv())
                    messages += 1
                    if message["type"] == "delta":
                        received += len(message["text"])
                    elif message["type"] == "state":  # a resync: the text so far is in it
                        step = message["run"]["steps"]["angles"]
                        received = sum(len(r["raw_output"]) for r in step["ai_responses"])
                    elif message["type"] == "step_done":
                        break
                return received / (time.perf_counter() - start), messages

    try:
        rate, messages = asyncio.run(client())
    finally:
        server.terminate()
        server.wait(10)
    raw = asyncio.run(_raw_stream())
    record(
        "streaming: deltas/s to a WebSocket client",
        rate,
        "deltas/s",
        20_000,
        FIREHOSE_DELTAS / raw,
        higher_is_better=True,
        note=f"server in its own process; {messages} messages (deltas are coalesced)",
    )


def bench_tui() -> None:
    """Three panes on three 20,000-token streams, and RSS over a 4-step run (own process)."""

    def child(*args: str) -> dict:
        out = subprocess.run(
            [sys.executable, str(HERE / "tui_bench.py"), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ},
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    runs = [child() for _ in range(3)]  # a GC pass or a busy core moves one run a lot
    baseline = child("baseline")["rss_mb"]
    lags = sorted(r["lag_ms"] for r in runs)
    record(
        "TUI: worst lag of 3 panes behind 3 x 20,000-token streams (median of 3 runs)",
        statistics.median(lags),
        "ms",
        100,
        note="the 3 runs: " + ", ".join(f"{lag:.0f}" for lag in lags) + " ms",
    )
    record(
        "TUI: RSS above Python + Textual during a 4-step run (largest of 3 runs)",
        max(r["rss_mb"] for r in runs) - baseline,
        "MB",
        100,
        note=f"baseline process with textual imported: {baseline:.0f} MB",
    )


# --- store scale ------------------------------------------------------------------------


def bench_store() -> None:
    from writeit.config import get_pipeline
    from writeit.events import Event, EventType, apply, new_run
    from writeit.store import Store

    path = Path(tempfile.mkdtemp(prefix="writeit-bench-store-")) / "store"
    store = Store(path)
    pipeline = get_pipeline("tech-article").model_dump(mode="json")

    def create(run_id: str):
        event = Event(
            seq=1,
            type=EventType.RUN_CREATED,
            run_id=run_id,
            data={"pipeline": pipeline, "inputs": {"source_material": "notes"}},
        )
        run = new_run(event)
        store.append(run, [event], 0)
        return run

    def extend(run, specs):
        expected, events = run.last_seq, []
        for kind, data in specs:
            event = Event(seq=run.last_seq + 1, type=kind, run_id=run.pipeline_run_id, data=data)
            apply(run, event)
            events.append(event)
        store.append(run, events, expected, index=True)

    for i in range(10_000):
        create(f"bulk-{i:05d}")
    list_time = timed(lambda: store.recent(limit=50), 9)
    record("store: list 50 recent of 10,000 runs", list_time * 1000, "ms", 50)

    big = create("big")
    extend(
        big,
        [
            (EventType.RUN_STARTED, {}),
            (EventType.STEP_STARTED, {"step": "angles", "prompt": "p"}),
            (EventType.RESPONSE_STARTED, {"step": "angles", "response_id": "r", "model": "m"}),
        ],
    )
    for _ in range(996):
        extend(big, [(EventType.RESPONSE_PROGRESS, {"response_id": "r", "delta": "word " * 20})])
    open_time = timed(lambda: store.load("big"), 9)
    record("store: open a run of 1,000 events", open_time * 1000, "ms", 20)

    # a 100-deep fork chain, each fork adding a little of its own
    parent = create("chain-0")
    extend(
        parent,
        [
            (EventType.RUN_STARTED, {}),
            (EventType.FEEDBACK_GIVEN, {"step": "angles", "feedback": "f"}),
        ],
    )
    for depth in range(1, 101):
        child = store.state_at(parent.pipeline_run_id, parent.last_seq)
        fork = Event(
            seq=parent.last_seq + 1,
            type=EventType.RUN_FORKED,
            run_id=f"chain-{depth}",
            data={
                "parent": parent.pipeline_run_id,
                "branch_point": "angles",
                "branch_seq": parent.last_seq,
                "current_step": "angles",
            },
        )
        apply(child, fork)
        store.append(child, [fork], 0)
        extend(child, [(EventType.FEEDBACK_GIVEN, {"step": "angles", "feedback": f"f{depth}"})])
        parent = child
    walk = timed(lambda: [store.summary(r) for r in store.ancestors("chain-100")], 9)
    record("store: history walk of a 100-deep fork chain", walk * 1000, "ms", 20)
    deep_open = timed(lambda: store.load("chain-100"), 9)
    record("store: open the deepest fork (folds 100 ancestors' events)", deep_open * 1000, "ms", 20)


def bench_bytes() -> None:
    from writeit.store import Store

    engine = _engine()
    path = Path(tempfile.mkdtemp(prefix="writeit-bench-bytes-")) / "store"
    engine.store = Store(path)

    async def runs() -> int:
        text = 0
        for _ in range(20):
            run = await engine.start_run(
                "tech-article",
                {"source_material": "notes " * 200},
                models=["instant-a", "instant-b"],
            )
            run = await engine.autopilot(run.pipeline_run_id, "first")
            text += sum(
                len(r.raw_output.encode()) + len(r.prompt_used.encode())
                for s in run.steps.values()
                for r in s.ai_responses
            )
        return text

    text_bytes = asyncio.run(runs())
    stat = engine.store.env.stat()
    info = engine.store.env.info()
    used = (info["last_pgno"] + 1) * stat["psize"]
    record("store: bytes stored per text byte (20 runs)", used / text_bytes, "x", 1.5)


def main() -> None:
    import instant_model

    instant_model.install()
    for bench in (
        bench_help,
        bench_engine,
        bench_streaming,
        bench_websocket,
        bench_tui,
        bench_store,
        bench_bytes,
    ):
        started = time.perf_counter()
        bench()
        print(f"  {bench.__name__} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    from rich.console import Console
    from rich.table import Table

    table = Table("Figure", "Value", "Target", "Baseline", "Ratio", "Meets")
    for f in FIGURES:
        table.add_row(
            f.name,
            f"{f.value:,.4g} {f.unit}",
            f"{f.target:,.4g}",
            "" if f.baseline is None else f"{f.baseline:,.4g}",
            "" if f.ratio is None else f"{f.ratio}x",
            "[green]yes[/]" if f.meets_target else "[red]no[/]",
        )
    Console(width=max(Console().width, 150)).print(table)
    (HERE / "results.json").write_text(json.dumps([asdict(f) for f in FIGURES], indent=2) + "\n")


if __name__ == "__main__":
    main()
