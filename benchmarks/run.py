"""`make bench`: WriteIt's speed and scale figures beside their targets and same-run baselines.

Prints a table (every figure with its target and ok/MISSED, notes below it) and writes
benchmarks/results.json (a list of {name, value, unit, target, target_text, baseline,
ratio, meets_target, note}). No network. Everything runs in throwaway folders, never
the writer's own WRITEIT_HOME or llm settings. Scale fixtures (long runs, a deep fork
chain, 100,000 runs) come from scale.py and are cached between runs while the code that
shapes them is unchanged; `WRITEIT_BENCH_QUICK=1` shrinks them for development (see
scale.py for the size knobs). A few minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
# Never the writer's own: not setdefault, which would honour an exported WRITEIT_HOME.
os.environ["WRITEIT_HOME"] = tempfile.mkdtemp(prefix="writeit-bench-")
os.environ["LLM_USER_PATH"] = tempfile.mkdtemp(prefix="writeit-bench-llm-")
for _own in ("WRITEIT_HOME", "LLM_USER_PATH"):
    atexit.register(shutil.rmtree, os.environ[_own], ignore_errors=True)
os.environ.pop("WRITEIT_WORKSPACE", None)
sys.path.insert(0, str(HERE))

import scale  # noqa: E402  (after the environment above)

SIZES = scale.Sizes.from_env()
WRITEIT = Path(sys.executable).parent / "writeit"


@dataclass
class Figure:
    name: str
    value: float | None  # None: the figure could not be taken (see note)
    unit: str
    target: float | None
    target_text: str
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
    target_text: str = "",
) -> None:
    ratio = round(value / baseline, 2) if baseline else None
    meets = value >= target if higher_is_better else value <= target
    text = target_text or f"{'≥' if higher_is_better else '≤'} {_num(target)} {unit}"
    FIGURES.append(
        Figure(
            name,
            round(value, 4),
            unit,
            round(target, 4),
            text,
            None if baseline is None else round(baseline, 4),
            ratio,
            meets,
            note,
        )
    )


def _num(value: float) -> str:
    """A figure as people read it: 212,000 / 38.6 / 4.20 / 0.43."""
    size = abs(value)
    if value == int(value) and size >= 1:
        return f"{int(value):,}"
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def missed(name: str, unit: str, target_text: str, note: str) -> None:
    """A figure that could not be taken (a crash, a timeout): MISSED, and why."""
    FIGURES.append(Figure(name, None, unit, None, target_text, None, None, False, note))


def timed(fn: Callable[[], object], repeat: int = 5, budget: float | None = None) -> float:
    """Median wall time of `fn`; with `budget` (seconds), fewer runs when each is slow."""
    samples: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
        if budget is not None and sum(samples) > budget:
            break
    return statistics.median(samples)


# --- a real server ------------------------------------------------------------------------


class Server:
    """`writeit serve` (with the instant models) in its own process, on a free port."""

    def __init__(self, home: Path | None = None, workspace: str | None = None) -> None:
        import httpx

        from writeit.workspaces import ensure_token

        env = dict(os.environ)
        if home is not None:
            env["WRITEIT_HOME"] = str(home)
        with scale.writeit_home(Path(env["WRITEIT_HOME"])):
            self.token = ensure_token()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        args = ["serve", "--port", str(self.port), *(["-w", workspace] if workspace else [])]
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "instant_model.py"), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.token}"}
        for _ in range(400):  # wait for it to listen
            try:
                httpx.get(f"{self.base}/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


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
    from writeit import autopilot

    await autopilot.drive(engine, run.pipeline_run_id, "first")


async def _direct_calls() -> None:
    import llm

    for _ in range(4):
        for model_id in ("instant-a", "instant-b"):
            response = llm.get_async_model(model_id).prompt("notes " * 200)
            async for _chunk in response:
                pass
            await response.usage()


INSTANT = ("instant-a", "instant-b")


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
        note="baseline: the same 8 calls made directly through llm",
        target_text="≤ 1.2x baseline",
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
    import httpx
    import websockets
    from instant_model import FIREHOSE_DELTAS

    async def client(server: Server) -> tuple[float, int]:
        async with httpx.AsyncClient(
            base_url=server.base, headers=server.headers, timeout=60
        ) as http:
            body = {
                "pipeline": "tech-article",
                "inputs": {"source_material": "x"},
                "models": ["firehose"],
            }
            run_id = (await http.post("/api/runs", json=body)).json()["pipeline_run_id"]
            url = f"ws://127.0.0.1:{server.port}/api/runs/{run_id}/stream?token={server.token}"
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

    with Server() as server:
        rate, messages = asyncio.run(client(server))
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


# --- the TUI ------------------------------------------------------------------------------


def _child(script: str, *args: str, timeout: float = 600) -> dict:
    """Run a bench script in its own process; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ},
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{script} {' '.join(args)} failed: {tail}")
    return json.loads(lines[-1])


def bench_tui() -> None:
    """Three panes on three 20,000-token streams, then the rest of a 4-step run, each in
    a process of its own, sampled from a thread outside the app's loop (tui_bench.py)."""
    runs = [_child("tui_bench.py") for _ in range(3)]  # a GC pass or a busy core moves one
    baseline = _child("tui_bench.py", "baseline")["rss_mb"]
    lags = sorted(r["lag_ms"] for r in runs)
    record(
        "TUI: worst lag of 3 panes behind 3 x 20,000-token streams (median of 3 runs)",
        statistics.median(lags),
        "ms",
        100,
        note="sampled every 2 ms from a thread: model output vs pane text; the 3 runs: "
        + ", ".join(f"{lag:.0f}" for lag in lags)
        + " ms",
    )
    stalls = sorted(max(r["stall_ms"], r["stall_rest_ms"]) for r in runs)
    record(
        "TUI: worst event-loop stall during a 4-step run (median of 3 runs)",
        statistics.median(stalls),
        "ms",
        100,
        note="how late a callback posted from a thread every 2 ms ran (a key press waits "
        "as long); while the 3 streams are shown: "
        + ", ".join(f"{r['stall_ms']:.0f}" for r in runs)
        + " ms; over the other 3 steps: "
        + ", ".join(f"{r['stall_rest_ms']:.0f}" for r in runs)
        + " ms",
    )
    record(
        "TUI: RSS above Python + Textual during a 4-step run (largest of 3 runs)",
        max(r["rss_mb"] for r in runs) - baseline,
        "MB",
        100,
        note=f"polled every 2 ms through the run; process with textual imported: {baseline:.0f} MB",
    )


def bench_history_tui() -> None:
    """The History screen (H on the run list) on the tip of the deep fork chain."""
    home, chain = scale.fixture("chain", SIZES)
    scratch = scale.scratch_copy(home)  # the app may write (drafts, sessions)
    name = f"TUI: History screen on a {chain['depth']:,}-deep fork chain"
    timeout = float(os.environ.get("WRITEIT_BENCH_TUI_TIMEOUT", "30"))
    try:
        result = _child("tui_bench.py", "history", str(scratch), chain["tip"], timeout=timeout + 60)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        result = {"error": str(error)[:300]}
    if "error" in result:
        missed(name, "s", "< 0.5 s", result["error"])
        return
    record(
        name,
        result["seconds"],
        "s",
        0.5,
        note=f"pilot: H pressed on the run list until the tree of {result['runs']:,} runs is drawn",
    )


# --- the CLI --------------------------------------------------------------------------------


def bench_tree_cli() -> None:
    """`writeit tree` on the chain's tip: it must work at any depth."""
    home, chain = scale.fixture("chain", SIZES)
    name = f"`writeit tree` on a {chain['depth']:,}-deep fork chain"
    env = {**os.environ, "WRITEIT_HOME": str(home), "COLUMNS": "120"}
    start = time.perf_counter()
    try:
        out = subprocess.run(
            [str(WRITEIT), "tree", chain["tip"], "-w", "chain"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    except subprocess.TimeoutExpired:
        missed(name, "s", "works at any depth", "no answer within 120 s")
        return
    seconds = time.perf_counter() - start
    lines = out.stdout.splitlines()
    if out.returncode or len(lines) < chain["depth"] + 1:
        if out.returncode:
            tail = (out.stderr.strip().splitlines() or ["no message"])[-1]
            why = f"exit {out.returncode} after {seconds:.1f} s: {tail}"
        else:
            why = (
                f"exit 0 in {seconds:.1f} s, but only {len(lines)} of {chain['depth'] + 1} "
                "runs printed (at 120 columns)"
            )
        missed(name, "s", "works at any depth", why[:300])
        return
    visible = "yes" if chain["tip"][:8] in out.stdout else "no (cut at 120 columns)"
    record(
        name,
        seconds,
        "s",
        2.0,
        target_text="works (≤ 2 s)",
        note=f"a fresh process; {len(lines):,} lines printed; the tip's id visible: {visible}",
    )


def bench_runs_cli() -> None:
    """`writeit runs --status X`, `--pipeline X` and `workspace info` as runs pile up.

    The filters ask for values only RARE runs have at every size, so the answer is the
    same at 1,000 and 100,000 runs and only the work to find it can grow. Timed in
    process through the CLI's own Typer app (warm: imports and the store's environment
    paid once), so start-up (`writeit --help`, above) is not counted twice."""
    from typer.testing import CliRunner

    from writeit.cli import app

    home, runs = scale.fixture("runs", SIZES)
    runner = CliRunner()
    env = {"WRITEIT_HOME": str(home)}
    sizes = sorted(int(n) for n in runs["workspaces"])
    commands = {
        f"runs --status {runs['status']}": lambda ws: (
            ["runs", "--status", runs["status"]] + ["-w", ws]
        ),
        f"runs --pipeline {runs['pipeline']}": lambda ws: (
            ["runs", "--pipeline", runs["pipeline"]] + ["-w", ws]
        ),
        "workspace info": lambda ws: ["workspace", "info", ws],
    }
    for label, args in commands.items():
        times: dict[int, float] = {}
        for size in sizes:
            argv = args(runs["workspaces"][str(size)])

            def invoke(argv: list[str] = argv) -> None:
                result = runner.invoke(app, argv, env=env)
                if result.exit_code:
                    raise RuntimeError(f"writeit {' '.join(argv)}: {result.output[-200:]}")

            invoke()  # warm
            times[size] = timed(invoke, 5, budget=3.0)
        small, large = sizes[0], sizes[-1]
        argv = args(runs["workspaces"][str(large)])
        wall = timed(
            lambda argv=argv: subprocess.run(
                [str(WRITEIT), *argv], capture_output=True, env={**os.environ, **env}
            ),
            1,
        )
        record(
            f"`writeit {label}` at {large:,} runs (warm, in process)",
            times[large] * 1000,
            "ms",
            50,
            times[small] * 1000,
            note=f"baseline: the same at {small:,} runs (flat: ratio ~1x); as a fresh "
            f"process at {large:,} runs: {wall:.2f} s",
            target_text="< 50 ms, flat",
        )


# --- runs that grow -------------------------------------------------------------------------


def _fresh_engine(workspace):
    from writeit.engine import Engine
    from writeit.models import UserPreferences

    return Engine(workspace, preferences=UserPreferences(max_concurrent_pipelines=64))


def bench_open_cycles() -> None:
    """Opening a run (a fresh engine's `load`: what the TUI and the server do on first
    sight) after 10, 100 and 1,000 feedback + regenerate cycles."""
    from writeit.workspaces import get_workspace

    home, cycles = scale.fixture("cycles", SIZES)
    with scale.writeit_home(home):
        workspace = get_workspace(cycles["workspace"])

        def open_once(run_id: str) -> float:
            engine = _fresh_engine(workspace)
            start = time.perf_counter()
            engine.load(run_id)
            return time.perf_counter() - start

        times = {}
        for n in SIZES.cycles:
            run = cycles["runs"][str(n)]
            open_once(run["id"])  # warm: pages in, imports
            samples = []
            for _ in range(7):
                samples.append(open_once(run["id"]))
                if sum(samples) > 3:
                    break
            times[n] = statistics.median(samples)
            record(
                f"open a run with {n:,} feedback + regenerate cycles ({run['events']:,} events)",
                times[n] * 1000,
                "ms",
                20,
                note="a fresh Engine's load(run), median; earlier attempts parsed when read",
            )
    small, large = min(SIZES.cycles), max(SIZES.cycles)
    record(
        f"open: {large:,} cycles vs {small:,} cycles (about the same)",
        times[large] / times[small],
        "x",
        2.0,
        note="measured in this run; 'about the same' taken as within 2x",
    )


async def _engine_feedback(workspace, long_id: str) -> tuple[float, float]:
    """give_feedback on a warm engine: on the long run and on a new run, alternately."""
    from instant_model import prose

    engine = _fresh_engine(workspace)
    inputs = {"source_material": prose("feedback-new", 600)}
    new = await engine.start_run("tech-article", inputs, models=scale.PROSE_MODELS)
    new_id = (await engine.execute_step(new.pipeline_run_id)).pipeline_run_id
    for run_id in (long_id, new_id):
        await engine.give_feedback(run_id, "warm-up")
    samples: dict[str, list[float]] = {long_id: [], new_id: []}
    for i in range(7):
        for run_id, bucket in samples.items():
            start = time.perf_counter()
            await engine.give_feedback(run_id, scale.feedback_text(900_000 + i))
            bucket.append(time.perf_counter() - start)
    return statistics.median(samples[long_id]), statistics.median(samples[new_id])


def _server_feedback(server: Server, long_id: str) -> tuple[float, float, int, int]:
    """POST /feedback through a real server: on the long run and on a new run (medians,
    and the largest answer of each)."""
    import httpx
    from instant_model import prose

    with httpx.Client(base_url=server.base, headers=server.headers, timeout=300) as http:
        body = {
            "pipeline": "tech-article",
            "inputs": {"source_material": prose("server-new", 600)},
            "models": scale.PROSE_MODELS,
        }
        new_id = http.post("/api/runs", json=body).raise_for_status().json()["pipeline_run_id"]
        http.post(f"/api/runs/{new_id}/steps/angles/execute", json={}).raise_for_status()
        while http.get(f"/api/runs/{new_id}").json()["streaming"]:
            time.sleep(0.02)
        for run_id in (long_id, new_id):  # warm: the server reads each run once
            http.post(f"/api/runs/{run_id}/feedback", json={"feedback": "warm-up"})
        samples: dict[str, list[float]] = {long_id: [], new_id: []}
        sizes = dict.fromkeys(samples, 0)
        for i in range(7):
            for run_id, bucket in samples.items():
                text = scale.feedback_text(800_000 + i)
                start = time.perf_counter()
                answer = http.post(f"/api/runs/{run_id}/feedback", json={"feedback": text})
                bucket.append(time.perf_counter() - start)
                answer.raise_for_status()
                sizes[run_id] = max(sizes[run_id], len(answer.content))
    medians = [statistics.median(samples[run_id]) for run_id in (long_id, new_id)]
    return medians[0], medians[1], sizes[long_id], sizes[new_id]


def bench_feedback() -> None:
    """One feedback on a run with 600 cycles vs on a new run, on a warm server."""
    from writeit.workspaces import get_workspace

    home, cycles = scale.fixture("cycles", SIZES)
    scratch = scale.scratch_copy(home)
    n = SIZES.feedback_cycles
    long_id = cycles["runs"][str(n)]["id"]
    with scale.writeit_home(scratch):
        workspace = get_workspace(cycles["workspace"])
    engine_long, engine_new = asyncio.run(_engine_feedback(workspace, long_id))
    with Server(scratch, cycles["workspace"]) as server:
        server_long, server_new, size, size_new = _server_feedback(server, long_id)
    record(
        f"server: one feedback on a run with {n:,} cycles vs a new run (warm)",
        server_long * 1000,
        "ms",
        server_new * 1000 * 1.5,
        server_new * 1000,
        target_text="≤ 1.5x baseline",
        note=f"baseline: the same POST on a new run, alternated, medians of 7; the answer "
        f"(the run, each step from its latest attempt) {size / 1024:,.0f} KB vs "
        f"{size_new / 1024:,.0f} KB on the new run; the engine alone (in process, warm): "
        f"{engine_long * 1000:.1f} vs {engine_new * 1000:.1f} ms = "
        f"{engine_long / engine_new:.1f}x",
    )


def bench_memory() -> None:
    """RSS of one engine as runs accumulate (scale.py memory, a process of its own)."""
    result = _child("scale.py", "memory")
    record(
        f"memory growth per run over {result['runs']} runs (one engine)",
        result["per_run_kb"],
        "KB",
        30,
        note=f"anonymous RSS (the engine's own memory) {result['start_kb'] / 1024:.0f} MB "
        f"after {SIZES.memory_warmup} warm-up runs, {result['end_kb'] / 1024:.0f} MB after "
        f"{result['runs']} more (peak {result['peak_kb'] / 1024:.0f} MB, polled after every "
        f"run); whole RSS grows {result['rss_per_run_kb']:.0f} KB a run, the rest being the "
        "store's memory-mapped pages (page cache, growing with the store on disk); each run "
        "made by autopilot with 2 prose models, read back, the run list asked",
    )


# --- diffs -----------------------------------------------------------------------------------


def _article(words: int, seed: int) -> str:
    """Article-like text: words drawn as in English (Zipf: a few very common, most rare),
    sentences of 8 to 24 words, paragraphs."""
    import itertools
    import random

    rnd = random.Random(seed)
    vocabulary = [f"word{rank}" for rank in range(1, 5001)]
    weights = list(itertools.accumulate(1 / rank for rank in range(1, 5001)))
    drawn = rnd.choices(vocabulary, cum_weights=weights, k=words)
    sentences, start = [], 0
    while start < words:
        end = start + rnd.randint(8, 24)
        sentences.append(" ".join(drawn[start:end]).capitalize() + ".")
        sentences.append("\n\n" if rnd.random() < 0.2 else " ")
        start = end
    return "".join(sentences)


def bench_diff() -> None:
    """`writeit diff` and the TUI's D on 10,000-word texts: a revision and two drafts."""
    import random
    from difflib import SequenceMatcher

    from writeit import diffs

    old = _article(10_000, 1)
    words = old.split(" ")
    rnd = random.Random(2)
    for _ in range(100):
        words[rnd.randrange(len(words))] = "changed"
    revised, other = " ".join(words), _article(10_000, 3)
    naive = timed(lambda: SequenceMatcher(None, old.split(), revised.split()).get_opcodes(), 3)
    record(
        "diff: a 10,000-word revision (100 words changed)",
        timed(lambda: diffs.diff(old, revised), 9) * 1000,
        "ms",
        100,
        naive * 1000,
        note="baseline: one SequenceMatcher pass over the words; two unrelated 10,000-word "
        f"drafts: {timed(lambda: diffs.diff(old, other), 5) * 1000:.0f} ms",
    )


# --- win rates ------------------------------------------------------------------------------

STATS_RUNS = 1_000 if os.environ.get("WRITEIT_BENCH_QUICK") == "1" else 10_000
_STATS_MODELS = ["gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash", "local-llama"]
_STATS_EVERY = 52  # minutes between two runs' starts: 10,000 runs span a year


def _decided_run(store, index: int, skeletons: dict) -> None:
    """One finished 4-step run with 2 candidates a step, each step decided (a pick, a blind
    one in three runs), appended as one transaction; its decisions a year apart from the
    first run's to the last's, so `--since` has something to leave out."""
    from datetime import UTC, datetime, timedelta

    from writeit.events import Event, EventType, apply, new_run
    from writeit.models import new_id

    run_id = new_id()
    pipeline = skeletons["blog-post" if index % 4 == 0 else "tech-article"]
    models = [_STATS_MODELS[index % 4], _STATS_MODELS[(index + 1 + index // 4) % 4]]
    if models[0] == models[1]:
        models[1] = _STATS_MODELS[(index + 2) % 4]
    when = datetime(2025, 12, 1, tzinfo=UTC) + timedelta(minutes=_STATS_EVERY * index)
    style = ["tech-journalist", "executive-brief", None][index % 3]
    created = {"pipeline": pipeline, "inputs": {"source_material": "n"}, "style": style}
    specs: list[tuple[EventType, dict]] = [
        (EventType.RUN_CREATED, created),
        (EventType.RUN_STARTED, {}),
    ]
    steps = [s["name"] for s in pipeline["steps"]]
    for number, step in enumerate(steps):
        ids = [new_id() for _ in models]
        specs.append((EventType.STEP_STARTED, {"step": step, "models": models, "prompt": "p"}))
        specs += [
            (EventType.RESPONSE_STARTED, {"step": step, "response_id": i, "model": m})
            for i, m in zip(ids, models, strict=True)
        ]
        for k, (response_id, model) in enumerate(zip(ids, models, strict=True)):
            usage = {"input_tokens": 900, "output_tokens": 700, "total_tokens": 1600}
            usage["cost_usd"] = None if model == "local-llama" else 0.001 * (k + 1)
            done = {"response_id": response_id, "delta": f"text {index} {step} {k}"}
            done |= {"usage": usage, "processing_time": 2.5 + k, "quality_score": 0.5 + k / 10}
            specs.append((EventType.RESPONSE_COMPLETED, done))
        chosen = ids[(index + number) % 2]
        specs.append(
            (
                EventType.RESPONSE_SELECTED,
                {"step": step, "response_id": chosen, "blind": index % 3 == 0},
            )
        )
        following = steps[number + 1] if number + 1 < len(steps) else None
        specs.append(
            (EventType.STEP_ADVANCED, {"from": step, "to": following})
            if following
            else (EventType.RUN_COMPLETED, {})
        )
    events = []
    run = None
    for seq, (kind, data) in enumerate(specs, start=1):
        at = when + timedelta(minutes=seq)
        event = Event(seq=seq, type=kind, run_id=run_id, data=data, at=at)
        run = new_run(event) if run is None else apply(run, event)
        events.append(event)
    store.append(run, events, 0)


def bench_stats() -> None:
    """`writeit stats` over 10,000 finished runs (40,000 decisions), read from the outcome
    records the store writes with each decision; the baseline is what the index spares:
    replaying every run's decisions (what indexing an older store does, once)."""
    from typer.testing import CliRunner

    from writeit import stats
    from writeit.cli import app
    from writeit.workspaces import create_workspace

    home = scale.temp_dir("writeit-bench-stats-")
    skeletons = {n: scale._skeleton(n) for n in ("tech-article", "blog-post")}
    with scale.writeit_home(home):
        store = create_workspace("stats").open_store()
        started = time.perf_counter()
        for index in range(STATS_RUNS):
            _decided_run(store, index, skeletons)
        built = time.perf_counter() - started
    runner = CliRunner()
    env = {"WRITEIT_HOME": str(home), "COLUMNS": "120"}

    def invoke(*args: str) -> Callable[[], None]:
        def go() -> None:
            result = runner.invoke(app, ["stats", "-w", "stats", *args], env=env)
            if result.exit_code or "decisions in" not in result.output:
                raise RuntimeError(f"writeit stats {' '.join(args)}: {result.output[-300:]}")

        return go

    everything = invoke()
    everything()  # warm: imports and the store's environment paid once
    warm = timed(everything, 5)
    cpu = time.process_time()
    everything()
    cpu = time.process_time() - cpu  # what a busy machine cannot inflate much
    filtered = timed(invoke("--pipeline", "blog-post", "--step", "outline"), 5)
    from datetime import date, timedelta

    month = date(2025, 12, 1) + timedelta(minutes=_STATS_EVERY * STATS_RUNS) - timedelta(days=30)
    recent = timed(invoke("--since", month.isoformat()), 5)
    wall = timed(
        lambda: subprocess.run(
            [str(WRITEIT), "stats", "-w", "stats"],
            capture_output=True,
            env={**os.environ, **env},
        ),
        3,
    )
    with store.env.begin(write=True) as txn:  # the store as WriteIt before stats left it
        for prefix in ("outcome:", "outcome_keys:"):
            for key in store.keys(prefix):
                txn.delete(key.encode())
        txn.delete(stats.INDEXED)
    started = time.perf_counter()
    replayed = stats.ensure_indexed(store)
    replay = time.perf_counter() - started
    decisions = stats.win_rates(store)["decisions"]
    record(
        f"`writeit stats` at {STATS_RUNS:,} runs ({decisions:,} decisions, warm, in process)",
        warm * 1000,
        "ms",
        500,
        replay * 1000,
        note=f"baseline: replaying the {replayed:,} runs' decisions (indexing an older store, "
        f"once); CPU time: {cpu * 1000:.0f} ms; --pipeline --step: {filtered * 1000:.0f} ms; --since the last month: "
        f"{recent * 1000:.0f} ms (from {month}); as a fresh process: {wall:.2f} s; building the runs "
        f"(one append each, outcome records included): {built / STATS_RUNS * 1000:.1f} ms a run",
        target_text="< 500 ms",
    )


# --- the store ------------------------------------------------------------------------------


def bench_store() -> None:
    """Listing and fork-chain reads on the scale fixtures (read only: used in place)."""
    from writeit.workspaces import get_workspace

    home, runs = scale.fixture("runs", SIZES)
    largest = max(int(n) for n in runs["workspaces"])
    with scale.writeit_home(home):
        store = get_workspace(runs["workspaces"][str(largest)]).open_store()
    store.recent(limit=50)
    list_time = timed(lambda: store.recent(limit=50), 9)
    record(f"store: list 50 recent of {largest:,} runs", list_time * 1000, "ms", 50)

    home, chain = scale.fixture("chain", SIZES)
    with scale.writeit_home(home):
        store = get_workspace(chain["workspace"]).open_store()
    tip, depth = chain["walk_tip"], chain["walk_depth"]
    walk = timed(lambda: [store.summary(r) for r in store.ancestors(tip)], 9)
    record(f"store: history walk of a {depth}-deep fork chain", walk * 1000, "ms", 20)
    deep_open = timed(lambda: store.load(tip), 9)
    record(
        f"store: open the deepest of {depth} forks (folds its ancestors' events)",
        deep_open * 1000,
        "ms",
        20,
        note="the chain's links were made by Engine.fork, each with its own feedback",
    )


def _text_bytes(run) -> tuple[int, list[str]]:
    """What the writer and the models wrote: inputs, each step's prompt and feedback
    (once), every response's text."""
    texts = [*run.user_inputs.values()]
    for step in run.steps.values():
        texts += [step.prompt or "", step.user_feedback or ""]
        texts += [r.raw_output for r in step.ai_responses]
    texts = [t for t in texts if t]
    return sum(len(t.encode()) for t in texts), texts


def _disk(words: int) -> tuple[float, float, float]:
    """Store SIZES.disk_runs short 4-step runs on a `words`-word prose source: used bytes
    grown per run, text bytes per run, and zlib alone on each text over the text."""
    import zlib

    from instant_model import prose

    from writeit import autopilot
    from writeit.workspaces import create_workspace

    home = Path(tempfile.mkdtemp(prefix="writeit-bench-disk-"))
    with scale.writeit_home(home):
        engine = _fresh_engine(create_workspace("disk"))

    def used() -> int:
        info, stat = engine.store.env.info(), engine.store.env.stat()
        return (info["last_pgno"] + 1) * stat["psize"]

    async def one(i: int):
        inputs = {"source_material": prose(f"disk-{words}-{i}", words)}
        run = await engine.start_run("tech-article", inputs, models=scale.PROSE_MODELS)
        return await autopilot.drive(engine, run.pipeline_run_id, "first")

    asyncio.run(one(-1))
    before = used()
    text, texts = 0, []
    for i in range(SIZES.disk_runs):
        size, parts = _text_bytes(asyncio.run(one(i)))
        text, texts = text + size, texts + parts
    grown = used() - before
    shutil.rmtree(home, ignore_errors=True)
    runs = SIZES.disk_runs
    zlib_alone = sum(len(zlib.compress(t.encode(), 6)) for t in texts) / text
    return grown / runs, text / runs, zlib_alone


def bench_disk() -> None:
    """Bytes on disk per short 4-step run, and per byte of text, with prose models: on
    a 600-word source (the row issue 12 set) and on a 2,000-word one (a longer source is
    repeated in every step's prompt, unless prompts reference it).

    Used pages (LMDB's last page number times the page size, from `Store.env`) grow as
    runs are stored; one run first, so the measured ones find a store in use."""
    runs = SIZES.disk_runs
    for words in (600, 2000):
        per_run, text, zlib_alone = _disk(words)
        source = "" if words == 600 else f", {words:,}-word source"
        record(
            f"disk per short 4-step run, 2 prose models ({runs} runs{source})",
            per_run / 1024,
            "KB",
            30,
            note=f"{text / 1024:.0f} KB of text a run; used LMDB pages grown over {runs} runs",
        )
        record(
            f"store: bytes stored per text byte, prose ({runs} runs{source})",
            per_run / text,
            "x",
            1.5,
            note=f"text: inputs, prompts, feedback, responses; zlib alone on each text: "
            f"{zlib_alone:.2f}x",
        )


# --- the table ------------------------------------------------------------------------------


def _print_table() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("Figure", "Value", "Target", "Baseline", "Ratio", "Meets")
    for f in FIGURES:
        table.add_row(
            f.name,
            "failed" if f.value is None else f"{_num(f.value)} {f.unit}",
            f.target_text,
            "" if f.baseline is None else _num(f.baseline),
            "" if f.ratio is None else f"{f.ratio}x",
            "[green]ok[/]" if f.meets_target else "[red]MISSED[/]",
        )
    console = Console(width=max(Console().width, 150))
    console.print(table)
    for f in FIGURES:
        if f.note:
            console.print(f"[dim]- {f.name}:[/] {f.note}", highlight=False)


def bench_forecast() -> None:
    """A forecast and a budget cost a writer nothing they would notice: the whole run's
    forecast with 20 runs of history, a price lookup, and a budgeted run's overhead."""
    from writeit import pricing

    engine = _engine()
    engine.preferences.pricing = {m: {"input": 1.0, "output": 2.0} for m in INSTANT}
    for _ in range(20):
        asyncio.run(_full_run(engine))
    inputs = {"source_material": "notes " * 2000}

    def ahead():
        return engine.forecast(pipeline="tech-article", inputs=inputs, models=list(INSTANT))

    ahead()
    record(
        "forecast: a whole 4-step run, 2 models, 20 runs of history",
        timed(ahead, 20) * 1000,
        "ms",
        50,
    )
    pricing.cost("gpt-4o-mini", 1000, 500)
    lookup = timed(lambda: [pricing.cost("gpt-4o-mini", 1000, 500) for _ in range(1000)], 5)
    record("pricing: one response priced (genai-prices, cached lookup)", lookup * 1000, "µs", 100)

    async def budgeted() -> None:
        run = await engine.start_run(
            "tech-article",
            {"source_material": "notes " * 200},
            models=list(INSTANT),
            budget_usd=100,
        )
        from writeit import autopilot

        await autopilot.drive(engine, run.pipeline_run_id, "first")

    plain, held = [], []
    for _ in range(9):  # alternated, so load from other jobs falls on both alike
        plain.append(timed(lambda: asyncio.run(_full_run(engine)), 1))
        held.append(timed(lambda: asyncio.run(budgeted()), 1))
    record(
        "budget: overhead per step of a run with a budget",
        max(statistics.median(held) - statistics.median(plain), 0.0) / 4 * 1000,
        "ms",
        20,
        note="medians of 9 alternated runs with and without a budget",
    )
    run = engine.load(engine.store.recent(limit=1)[0].run_id)
    prompt = run.steps["draft"].prompt
    check = timed(lambda: engine._ahead(run, "draft", list(INSTANT), prompt), 20)
    record(
        "budget: the forecast checked in a step's claim (2 models, 20 runs of history)",
        check * 1000,
        "ms",
        5,
    )


def bench_replay() -> None:
    """A replay is a fork with its models and style: it costs a branch, not a run; an
    export with provenance reads every response once, and every fork with --all-branches."""
    from writeit import autopilot, export

    engine = _engine()

    async def finished() -> str:
        run = await engine.start_run(
            "tech-article", {"source_material": "notes " * 200}, models=["instant-a", "instant-b"]
        )
        return (await autopilot.drive(engine, run.pipeline_run_id, "first")).pipeline_run_id

    run_id = asyncio.run(finished())
    replay = timed(lambda: asyncio.run(engine.replay(run_id, "draft", models=["instant-b"])), 20)
    record(
        "replay: a branch from step 3 of a finished run (no model asked)", replay * 1000, "ms", 50
    )
    for _ in range(10):
        child = asyncio.run(engine.replay(run_id, "draft", models=["instant-a"]))
        asyncio.run(autopilot.drive(engine, child.pipeline_run_id, "first"))
    run = engine.load(run_id)
    alone = timed(lambda: export.export_run(engine, run, "json"), 10)
    record("export: JSON with provenance, 4 steps x 2 models", alone * 1000, "ms", 50)
    every = timed(lambda: export.export_run(engine, run, "json", all_branches=True), 10)
    branches = len(engine.store.children(run_id))
    record(
        f"export: --all-branches, the run and its {branches} replays",
        every * 1000,
        "ms",
        500,
    )


BENCHES = (
    bench_help,
    bench_engine,
    bench_streaming,
    bench_websocket,
    bench_tui,
    bench_store,
    bench_open_cycles,
    bench_feedback,
    bench_history_tui,
    bench_tree_cli,
    bench_memory,
    bench_runs_cli,
    bench_disk,
    bench_diff,
    bench_replay,
    bench_stats,
    bench_forecast,
)


def main() -> None:
    import instant_model

    instant_model.install()
    only = set(os.environ.get("WRITEIT_BENCH_ONLY", "").split(",")) - {""}
    began = time.perf_counter()
    for bench in BENCHES:
        if only and bench.__name__.removeprefix("bench_") not in only:
            continue
        started = time.perf_counter()
        try:
            bench()
        except Exception as error:  # one broken figure must not hide the others
            traceback.print_exc()
            missed(bench.__name__, "", "", f"{type(error).__name__}: {error}"[:300])
        print(f"  {bench.__name__} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    _print_table()
    print(f"make bench: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    (HERE / "results.json").write_text(json.dumps([asdict(f) for f in FIGURES], indent=2) + "\n")
    scale.cleanup()


if __name__ == "__main__":
    main()
