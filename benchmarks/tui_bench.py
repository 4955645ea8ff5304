"""The TUI figures, run in a process of their own (so RSS is the TUI's):
how far three panes fall behind three 20,000-token streams at full speed, and RSS
during a 4-step run. Prints one JSON line; run.py records it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
os.environ.setdefault("WRITEIT_HOME", tempfile.mkdtemp(prefix="writeit-bench-tui-"))
os.environ.setdefault("LLM_USER_PATH", tempfile.mkdtemp(prefix="writeit-bench-tui-llm-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure() -> dict[str, float]:
    import instant_model

    instant_model.install()
    from writeit.engine import Engine
    from writeit.models import UserPreferences
    from writeit.tui.app import WriteItApp
    from writeit.workspaces import get_workspace

    engine = Engine(get_workspace(), preferences=UserPreferences(max_concurrent_pipelines=8))
    models = ["burst-a", "burst-b", "burst-c"]
    run = await engine.start_run("tech-article", {"source_material": "notes"}, models=models)
    run_id = run.pipeline_run_id
    app = WriteItApp(engine=engine)
    worst_lag = 0.0
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run_id, start=True)
        timeline: dict[str, list[tuple[float, int]]] = {}
        done = False
        while not done:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            screen = app.screen
            panes = getattr(screen, "panes", {}) if hasattr(screen, "panes") else {}
            for rid, text in list(app.live_text.items()):
                history = timeline.setdefault(rid, [])
                if not history or history[-1][1] != len(text):
                    history.append((now, len(text)))
                pane = panes.get(rid)
                shown = len(pane.shown) if pane is not None else 0
                if shown < len(text):
                    # how long ago the stream had already produced more than is shown
                    first_unshown = next((t for t, n in history if n > shown), now)
                    worst_lag = max(worst_lag, now - first_unshown)
            current = engine.load(run_id)
            done = (
                not engine.streaming(run_id)
                and current.current.candidates
                and all(r.status.value == "completed" for r in current.current.candidates)
                and all(
                    len(panes.get(r.response_id).shown) >= len(r.raw_output.rstrip()) - 2
                    for r in current.current.candidates
                    if panes.get(r.response_id) is not None
                )
            )
        peak = rss_mb()
        for _ in range(3):  # the rest of the 4-step run, shown in the TUI
            await engine.select(run_id, 0)
            await engine.accept(run_id)
            await engine.execute_step(run_id)
            await pilot.pause()
            peak = max(peak, rss_mb())
    return {"lag_ms": worst_lag * 1000, "rss_mb": peak}


def main() -> None:
    if sys.argv[1:] == ["baseline"]:
        import textual.app  # noqa: F401

        print(json.dumps({"rss_mb": rss_mb()}))
        return
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()
