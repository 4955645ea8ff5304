"""`make soak`: reliability figures. Runs killed with SIGKILL at random moments and resumed;
provider faults injected at random through the loopback OpenAI-compatible server;
the TUI and a `writeit serve` writing one store at once (soak_shared.py); two servers
racing executes and pauses, a burst against the limit, hostile exports (soak_trust.py).

Prints a table and appends its figures to benchmarks/results.json (same shape as run.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
os.environ["WRITEIT_HOME"] = tempfile.mkdtemp(prefix="writeit-soak-")
os.environ["LLM_USER_PATH"] = tempfile.mkdtemp(prefix="writeit-soak-llm-")
for name in list(os.environ):
    if name.endswith("_API_KEY"):
        del os.environ[name]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from run import FIGURES, record  # noqa: E402

KILLS = int(os.environ.get("SOAK_KILLS", "50"))
FAULT_RUNS = int(os.environ.get("SOAK_FAULT_RUNS", "20"))


def kill_and_resume() -> None:
    from writeit import autopilot
    from writeit.engine import Engine
    from writeit.models import PipelineStatus, ResponseStatus
    from writeit.workspaces import get_workspace

    engine = Engine(get_workspace())
    lost = corrupt = unfinished = 0
    rng = random.Random(7)
    for i in range(KILLS):
        child = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "instant_model.py"),
                "run",
                "tech-article",
                "-i",
                f"source_material=soak run {i}",
                "-m",
                "paced-a",
                "-m",
                "paced-b",
                "--headless",
                "--pick",
                "first",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 2.0))  # a random moment: this is the point, not a sync
        child.send_signal(signal.SIGKILL)
        child.wait()
        try:
            recent = engine.store.recent(limit=1)
            if not recent or recent[0].title != f"soak run {i}":
                continue  # killed before the run was created: nothing to lose
            run_id = recent[0].run_id
            before = engine.store.load(run_id)
        except Exception:
            corrupt += 1
            continue
        done = {
            r.response_id: r.raw_output
            for s in before.steps.values()
            for r in s.ai_responses
            if r.status == ResponseStatus.COMPLETED
        }
        chosen = {n: s.output for n, s in before.steps.items() if s.output is not None}
        try:
            after = asyncio.run(autopilot.drive(engine, run_id, "first"))
        except Exception as error:  # noqa: BLE001 - counted, printed
            print(f"  resume of {run_id[:8]} failed: {error}", file=sys.stderr)
            unfinished += 1
            continue
        kept = {r.response_id: r.raw_output for s in after.steps.values() for r in s.ai_responses}
        lost += sum(1 for rid, text in done.items() if kept.get(rid) != text)
        lost += sum(1 for n, text in chosen.items() if after.steps[n].output != text)
        events = engine.store.events(run_id)
        if [e.seq for e in events] != list(range(1, len(events) + 1)):
            corrupt += 1
        if after.status != PipelineStatus.COMPLETED:
            unfinished += 1
    record(f"soak: completed responses or choices lost ({KILLS} SIGKILLs)", lost, "count", 0)
    record("soak: corrupt stores or histories after SIGKILL", corrupt, "count", 0)
    record("soak: killed runs that did not resume to completion", unfinished, "count", 0)


def provider_faults() -> None:
    from openai_server import OpenAIServer

    from writeit.engine import Engine
    from writeit.models import PipelineStatus, UserPreferences
    from writeit.workspaces import get_workspace

    timeout = 1.0
    behaviours = ["ok", "http500", "http429", "http401", "timeout", "drop", "stall", "flaky500"]
    with OpenAIServer(hang_seconds=5) as server:
        server.register_llm_models(Path(os.environ["LLM_USER_PATH"]))
        for name in behaviours:
            server.add_llm_model(f"soak-{name}", name)
        engine = Engine(
            get_workspace(),
            preferences=UserPreferences(request_timeout=timeout, max_retries=1),
            retry_backoff=0.01,
        )
        rng = random.Random(11)

        async def one(i: int) -> float:
            models = [f"soak-{rng.choice(behaviours)}" for _ in range(2)]
            run = await engine.start_run(
                "tech-article", {"source_material": f"faults {i}"}, models=models
            )
            slowest = 0.0
            run_id = run.pipeline_run_id
            for _ in range(4):
                started = time.perf_counter()
                run = await engine.execute_step(run_id)
                slowest = max(slowest, time.perf_counter() - started)
                if run.status == PipelineStatus.ERROR:
                    return slowest  # recoverable: ERROR -> RUNNING on retry
                ok = [n for n, r in enumerate(run.current.candidates) if r.status == "completed"]
                await engine.select(run_id, ok[0])
                await engine.accept(run_id)
            return slowest

        async def all_runs() -> tuple[int, float]:
            bad, worst = 0, 0.0
            for i in range(FAULT_RUNS):
                try:
                    worst = max(worst, await one(i))
                except Exception as error:  # noqa: BLE001 - counted
                    print(f"  fault run {i} ended badly: {error}", file=sys.stderr)
                    bad += 1
            return bad, worst

        bad_endings, worst = asyncio.run(all_runs())
    record(
        f"soak: fault runs not ending completed or in recoverable ERROR ({FAULT_RUNS})",
        bad_endings,
        "count",
        0,
    )
    # bound: connect + idle timeout, retried once with backoff
    record("soak: slowest step under faults", worst, "s", timeout * 2 * 2 + 1)


def main() -> None:
    import instant_model

    instant_model.install()
    from soak_shared import shared_store  # the TUI and `writeit serve` on one store
    from soak_trust import trust_races  # two servers racing, a burst, hostile exports

    soaks = [kill_and_resume, provider_faults, shared_store, trust_races]
    only = os.environ.get("SOAK_ONLY")  # e.g. SOAK_ONLY=trust_races make soak
    for soak in [s for s in soaks if not only or s.__name__ in only.split(",")]:
        started = time.perf_counter()
        soak()
        print(f"  {soak.__name__} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    for f in FIGURES:
        print(
            f"{f.name:<75} {f.value:>8.4g} {f.unit:<6} target {f.target:<6g} {'ok' if f.meets_target else 'MISSED'}"
        )
    results = HERE / "results.json"
    existing = json.loads(results.read_text()) if results.exists() else []
    names = {f.name for f in FIGURES}
    merged = [e for e in existing if e["name"] not in names] + [f.__dict__ for f in FIGURES]
    results.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
