"""The TUI figures, each run in a process of its own (so RSS is the TUI's). Prints one
JSON line; run.py records it.

`python tui_bench.py`: three panes behind three 20,000-token streams at full speed, then
the rest of a 4-step run. Everything is sampled from a thread, outside the app's event
loop, so a stalled loop cannot hide its own stall: every 2 ms the thread compares what
the models have produced (counted as the instant models yield it) with what each pane
shows, asks the loop to run a callback (how late it runs is the loop's stall: a key
press would wait as long), and reads RSS from /proc/self/statm.

`python tui_bench.py history HOME RUN`: open the app on workspace `chain` of HOME,
highlight RUN in the run list, press H, and time until the history tree is shown.

`python tui_bench.py baseline`: RSS of Python with Textual imported.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
os.environ["LLM_USER_PATH"] = tempfile.mkdtemp(prefix="writeit-bench-tui-llm-")
atexit.register(shutil.rmtree, os.environ["LLM_USER_PATH"], ignore_errors=True)
if sys.argv[1:2] != ["history"]:  # history opens the fixture's home; nothing else is ever
    os.environ["WRITEIT_HOME"] = tempfile.mkdtemp(prefix="writeit-bench-tui-")  # the user's
    atexit.register(shutil.rmtree, os.environ["WRITEIT_HOME"], ignore_errors=True)
os.environ.pop("WRITEIT_WORKSPACE", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))

SAMPLE_SECONDS = 0.002
HISTORY_TIMEOUT = float(os.environ.get("WRITEIT_BENCH_TUI_TIMEOUT", "30"))


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler(threading.Thread):
    """Watches the app from outside its loop: pane lag, loop stalls, RSS.

    `panes` (response id -> pane) is refreshed by the driver on the loop; a pane not
    known yet counts as showing nothing, so a stream that starts before its pane does
    is lag too. Model output is counted where the instant models yield it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, produced: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.loop = loop
        self.produced = produced
        self.panes: dict[str, object] = {}
        self.streams_on = True  # pane lag is measured while the streams are shown
        self.stop = threading.Event()
        self.timeline: dict[str, tuple[list[int], list[float]]] = {}
        self.worst_lag = 0.0
        self.peak_rss = 0.0
        self.samples = 0
        self._probe: tuple[float, str] | None = None
        self.stalls: dict[str, float] = {}  # the worst loop stall in each phase
        self.phase = "start"  # start-up, "streams" (the measured step), "rest"

    def _stalled(self, phase: str, seconds: float) -> None:
        self.stalls[phase] = max(self.stalls.get(phase, 0.0), seconds)

    def _probe_back(self, sent: float, phase: str) -> None:  # runs on the loop
        self._stalled(phase, time.perf_counter() - sent)
        self._probe = None

    def _send_probe(self, now: float) -> None:
        if self._probe is None:
            self._probe = (now, self.phase)
            self.loop.call_soon_threadsafe(self._probe_back, now, self.phase)
        else:  # still waiting: the loop has been busy this long already
            sent, phase = self._probe
            self._stalled(phase, now - sent)

    def _pane_lag(self, now: float) -> None:
        shown: dict[str, int] = {}
        for pane in list(self.panes.values()):
            response = getattr(pane, "response", None)
            model = getattr(response, "model_name", None)
            if model is not None:
                shown[model] = max(shown.get(model, 0), len(getattr(pane, "shown", "")))
        for model, count in list(self.produced.items()):
            counts, times = self.timeline.setdefault(model, ([], []))
            if not counts or counts[-1] != count:
                counts.append(count)
                times.append(now)
            visible = shown.get(model, 0)
            if visible < count - 2:  # the pane strips the trailing space and newlines
                first_unshown = times[bisect.bisect_right(counts, visible)]
                self.worst_lag = max(self.worst_lag, now - first_unshown)

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            now = time.perf_counter()
            self._send_probe(now)
            if self.streams_on:
                self._pane_lag(now)
            self.peak_rss = max(self.peak_rss, rss_mb())
            self.samples += 1


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
    sampler = Sampler(asyncio.get_running_loop(), instant_model.PRODUCED)
    sampler.start()
    async with app.run_test(size=(120, 40)) as pilot:
        sampler.phase = "streams"
        app.open_run(run_id, start=True)
        while not _streams_shown(app, engine, run_id, sampler):
            await asyncio.sleep(0.005)
        sampler.streams_on = False
        sampler.phase = "rest"
        for _ in range(3):  # the rest of the 4-step run, shown in the TUI
            await engine.select(run_id, 0)
            await engine.accept(run_id)
            await engine.execute_step(run_id)
            await pilot.pause()
    sampler.stop.set()
    sampler.join()
    return {
        "lag_ms": sampler.worst_lag * 1000,
        "stall_ms": sampler.stalls.get("streams", 0.0) * 1000,
        "stall_rest_ms": sampler.stalls.get("rest", 0.0) * 1000,
        "stall_start_ms": sampler.stalls.get("start", 0.0) * 1000,
        "rss_mb": sampler.peak_rss,
        "samples": sampler.samples,
    }


def _streams_shown(app, engine, run_id: str, sampler: Sampler) -> bool:
    """Whether every candidate finished and its pane shows all of it; keeps the
    sampler's view of the panes current meanwhile."""
    try:
        panes = app.screen.panes  # a StepScreen once it is composed
    except Exception:
        panes = None
    if panes:
        sampler.panes = dict(panes)
    current = engine.load(run_id)
    candidates = current.current.candidates
    return bool(
        not engine.streaming(run_id)
        and candidates
        and all(r.status.value == "completed" for r in candidates)
        and panes
        and all(
            r.response_id in panes
            and len(panes[r.response_id].shown) >= len(r.raw_output.rstrip()) - 2
            for r in candidates
        )
    )


class Watchdog(threading.Thread):
    """Ends the process with a report once the app has failed, or is stuck past
    the timeout. An error in a screen makes Textual render its traceback with every
    frame's locals before the app stops, which on a deep history takes minutes while
    the app's loop (and a timeout on it) waits. The error is read from the app's
    `_exception` (private: Textual keeps the first one there for test runs); without
    it, the timeout still ends the wait."""

    def __init__(self, app, started: float) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.started = started
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            elapsed = time.perf_counter() - self.started
            error = getattr(self.app, "_exception", None)
            if error is not None:
                self.report(f"{_describe(error)} after {elapsed:.1f} s")
            if elapsed > HISTORY_TIMEOUT:
                self.report(f"no tree after {HISTORY_TIMEOUT:.0f} s")

    @staticmethod
    def report(message: str) -> None:
        print(json.dumps({"error": message}), flush=True)
        shutil.rmtree(os.environ["LLM_USER_PATH"], ignore_errors=True)  # atexit will not run
        os._exit(0)


def _describe(error: BaseException) -> str:
    """The error and the last WriteIt function it went through."""
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if "writeit" in f.filename]
    where = f" in {Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""
    return f"{type(error).__name__}{where}: {str(error)[:80]}"


async def history(home: str, run_id: str) -> dict[str, object]:
    """Seconds from pressing H on the run list to the history tree being shown."""
    from textual.widgets import DataTable, Tree

    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.history import HistoryScreen
    from writeit.tui.screens.run_list import RunListScreen

    app = WriteItApp(workspace="chain")
    async with app.run_test(size=(120, 40)) as pilot:
        opened = time.perf_counter()
        while not (isinstance(app.screen, RunListScreen) and app.screen.summaries):
            if time.perf_counter() - opened > HISTORY_TIMEOUT:
                return {"error": f"the run list did not load within {HISTORY_TIMEOUT:.0f} s"}
            await asyncio.sleep(0.01)
        runs = app.screen
        if runs.selected_id() != run_id:
            table = runs.query_one(DataTable)
            table.move_cursor(row=table.get_row_index(run_id))
            await pilot.pause()
        start = time.perf_counter()
        watchdog = Watchdog(app, start)
        watchdog.start()
        await pilot.press("h")
        while True:
            screen = app.screen
            if isinstance(screen, HistoryScreen) and screen.family is not None:
                tree = screen.query_one(Tree)
                if tree.root.children:
                    await pilot.pause()  # drawn
                    break
            if not app.is_running:
                return {"error": "the app stopped while opening the history"}
            if time.perf_counter() - start > HISTORY_TIMEOUT:
                return {"error": f"the tree was not shown within {HISTORY_TIMEOUT:.0f} s"}
            await asyncio.sleep(0.002)
        seconds = time.perf_counter() - start
        watchdog.done.set()
        return {"seconds": seconds, "runs": len(screen.family.runs)}


def main() -> None:
    args = sys.argv[1:]
    if args == ["baseline"]:
        import textual.app  # noqa: F401

        print(json.dumps({"rss_mb": rss_mb()}))
    elif args[:1] == ["history"] and len(args) == 3:
        os.environ["WRITEIT_HOME"] = args[1]
        try:
            result = asyncio.run(history(args[1], args[2]))
        except Exception as error:  # the bench reports it as a missed figure
            result = {"error": f"{type(error).__name__}: {error}"[:300]}
        print(json.dumps(result))
    else:
        print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()
