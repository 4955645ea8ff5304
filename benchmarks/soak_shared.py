"""Soak: the TUI and the server writing one store at once (part of `make soak`).

One WRITEIT_HOME, two writers:

- this process drives the real TUI (`WriteItApp.run_test()` pilot, its own Engine) through
  several runs: start from the input form, wait for the step's paced models, leave feedback
  (C), select (1/2), accept (A, which starts the next step), to the end;
- a real `writeit serve` process (same home, port 0, the workspace's bearer token) is
  driven over HTTP and its WebSocket by two client threads: one does runs of its own
  (execute, feedback, select, accept), the other acts on the run the TUI is working on
  while it streams (feedback, select), so one run has two writers.

Every write either side was told succeeded is logged: the TUI's through its store (each
`append` that returned), the server's as the 2xx answers (with the run's `last_seq`).
Then a fresh process opens the store and checks that every acknowledged event is there,
every run's seqs are contiguous and match its index, every completed response holds the
whole text the model sent; refusals are sorted into clean ones (409 conflict, `Conflict`,
a named engine error) and anything else (a 500, a traceback, an unretrieved task error,
a hang, text dropped after a refused write).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TUI_RUNS = int(os.environ.get("SOAK_SHARED_TUI_RUNS", "3"))
SERVER_RUNS = int(os.environ.get("SOAK_SHARED_SERVER_RUNS", "3"))
HAMMER_MAX = int(os.environ.get("SOAK_SHARED_HAMMER", "1000"))  # interfering requests
MODELS = ["paced-a", "paced-b"]
STEP_TIMEOUT = 60.0  # a hang detector, not a synchronisation
STEPS = 4
STREAM_ENDS = {"response_completed", "response_failed", "response_interrupted"}


def digest(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def expected_text() -> str:
    import instant_model

    return "".join(w + " " for w in instant_model.REPLY.split(" "))


class Tally:
    """What both sides were told, thread-safe enough for list appends under the GIL."""

    def __init__(self) -> None:
        self.tui_events: list[dict[str, Any]] = []  # appends that returned
        self.server_acks: list[dict[str, Any]] = []  # 2xx answers
        self.conflicts: Counter[str] = Counter()  # refused as a conflict, by side
        self.refusals: Counter[str] = Counter()  # other clean refusals, by code
        self.unclean: list[str] = []  # anything else, described
        self.told_writer = 0  # conflicts the TUI showed the writer (a subset of its own)

    def bad(self, what: str) -> None:
        self.unclean.append(what)
        print(f"  shared-store: {what}", file=sys.stderr)


# --- the TUI side ---------------------------------------------------------------------------


def recording_store(tally: Tally, path: Path):
    from writeit.store import Conflict, Store

    class RecordingStore(Store):
        def append(self, run, events, expected_seq, **options):
            try:
                super().append(run, events, expected_seq, **options)
            except Conflict:
                streamed = not options.get("index", True) or any(
                    e.type.value in STREAM_ENDS for e in events
                )
                tally.conflicts[
                    f"TUI Conflict on {'a stream write' if streamed else 'an action'}"
                ] += 1
                raise
            except Exception as error:
                tally.bad(f"TUI append failed with {type(error).__name__}: {error}")
                raise
            for event in events:
                data = event.model_dump(mode="json")
                tally.tui_events.append(
                    {
                        "run_id": event.run_id,
                        "seq": event.seq,
                        "type": data["type"],
                        "digest": digest(data["data"]),
                    }
                )

    return RecordingStore(path)


class ErrorLog(logging.Handler):
    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.ERROR)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        self.tally.bad(f"TUI logged an error: {record.getMessage()}")


async def drive_tui(tally: Tally, shared: dict[str, Any]) -> None:
    from textual.worker import WorkerFailed

    from writeit.engine import Engine
    from writeit.models import PipelineStatus, ResponseStatus, StepStatus, UserPreferences
    from writeit.tui.app import WriteItApp
    from writeit.tui.screens.step_view import StepScreen
    from writeit.workspaces import get_workspace

    loop = asyncio.get_running_loop()

    def on_loop_error(_loop: Any, context: dict[str, Any]) -> None:
        error = context.get("exception")
        tally.bad(f"TUI loop: {context.get('message')}: {type(error).__name__}: {error}")

    loop.set_exception_handler(on_loop_error)
    workspace = get_workspace()
    engine = Engine(
        workspace,
        store=recording_store(tally, workspace.store_path),
        preferences=UserPreferences(max_concurrent_pipelines=8),
    )
    app = WriteItApp(engine=engine)
    plain_notify = app.notify

    def notify(message: str, *, title: str = "", severity: str = "information", **kw: Any):
        if severity in ("warning", "error"):
            if "changed elsewhere" in message:
                tally.told_writer += 1
            elif title in ("Unexpected error",) or message.startswith("Display error"):
                tally.bad(f"TUI: {title}: {message}")
            else:
                tally.refusals[f"tui: {title}: {message.splitlines()[0][:60]}"] += 1
        return plain_notify(message, title=title, severity=severity, **kw)

    app.notify = notify  # type: ignore[method-assign]
    rng = random.Random(5)

    async def settle(pilot: Any) -> None:
        """Until the engine calls the keys started (app workers of group engine) are done."""
        await pilot.pause()
        workers = [w for w in app.workers if w.group == "engine"]
        for worker in workers:
            try:
                await worker.wait()
            except WorkerFailed as error:
                tally.bad(f"TUI worker failed: {error}")
        await pilot.pause()

    waited: set[asyncio.Task] = set()
    async with app.run_test(size=(120, 40)) as pilot:
        for i in range(TUI_RUNS):
            created = engine.subscribe(None)
            app.open_form("tech-article", {"source_material": f"tui run {i}"}, models=MODELS)
            await pilot.pause()
            await pilot.press("ctrl+s")
            update = await asyncio.wait_for(created.queue.get(), STEP_TIMEOUT)
            while update.data.get("event") != "run_created":
                update = await asyncio.wait_for(created.queue.get(), STEP_TIMEOUT)
            created.close()
            while not isinstance(app.screen, StepScreen):  # open_run follows start_run
                await pilot.pause()
            screen = app.screen
            started = time.monotonic()
            feedback_given: set[str] = set()
            while True:
                if time.monotonic() - started > STEP_TIMEOUT * 2:
                    tally.bad(f"TUI run {screen.run_id[:8]} made no progress (hang)")
                    break
                await settle(pilot)
                run_id = screen.run_id  # a branch moves the screen to the child
                shared["tui_run"] = run_id
                generation = engine._generations.get(run_id)
                if generation is not None and generation not in waited:
                    waited.add(generation)
                    try:  # the step's generation task: the real signal that it is over
                        await asyncio.shield(generation)
                    except Exception as error:  # noqa: BLE001 - counted: the task failed
                        tally.bad(
                            f"TUI step generation ended with {type(error).__name__}: "
                            f"{str(error).splitlines()[0]}"
                        )
                if generation is not None and generation.done() and engine.streaming(run_id):
                    tally.bad(
                        f"TUI run {run_id[:8]} wedged: its streams ended but the engine still "
                        "says it is generating, so every action is refused"
                    )
                    break
                run = await asyncio.to_thread(engine.load, run_id)
                step = run.current
                if run.status == PipelineStatus.COMPLETED:
                    break
                if run.status == PipelineStatus.ERROR:
                    await pilot.press("u")
                    continue
                stuck = [r for r in step.candidates if r.status == ResponseStatus.STREAMING]
                if stuck and not engine.streaming(run_id):
                    tally.bad(
                        f"TUI run {run_id[:8]} step {step.step_name}: a candidate left "
                        "streaming in the store after its stream ended"
                    )
                    await pilot.press("u")  # resume: interrupt the orphan and ask again
                    continue
                if step.status == StepStatus.PENDING:
                    await pilot.press("r")
                elif step.status == StepStatus.RUNNING:
                    if step.step_name not in feedback_given:
                        feedback_given.add(step.step_name)
                        await pilot.press("c")
                        area = screen.query_one("#feedback")
                        area.text = f"tui feedback {i} {step.step_name} {rng.random():.6f}"
                        await pilot.press("escape")
                        continue
                    done = [r for r in step.candidates if r.status == ResponseStatus.COMPLETED]
                    if not done:
                        await pilot.press("t")  # retry the failed/interrupted ones
                        continue
                    number = step.candidates.index(rng.choice(done)) + 1
                    await pilot.press(str(number))
                elif step.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                    await pilot.press("a")
            shared["tui_run"] = None
            app.to_run_list()
            await pilot.pause()
        shared["tui_done"] = True
        await pilot.press("q")
    loop.set_exception_handler(None)


# --- the server side ---------------------------------------------------------------------------


class Server:
    """`writeit serve --port 0` (through instant_model.py so it knows the paced models)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.log: list[str] = []
        self.ready = threading.Event()
        self.port = 0
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "instant_model.py"), "serve", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(60):
            self.proc.kill()
            raise RuntimeError("writeit serve did not start:\n" + "".join(self.log[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                self.ready.set()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # graceful: streams saved, runs paused
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.tally.bad("writeit serve did not stop within 30 s of SIGINT (killed)")
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        text = "".join(self.log)
        for marker in ("Traceback", "Task exception was never retrieved", "ERROR"):
            for _ in range(text.count(marker)):
                self.tally.bad(f"server log: {marker}")
        if "Traceback" in text or "ERROR" in text:
            tail = [ln for ln in self.log if "INFO" not in ln][-15:]
            print("  server log (not INFO, tail):\n    " + "    ".join(tail), file=sys.stderr)


class Client:
    """One HTTP client of the server; every answer is sorted into ack / clean / unclean."""

    def __init__(self, tally: Tally, port: int, token: str, side: str) -> None:
        import httpx

        self.tally = tally
        self.side = side
        self.port = port
        self.token = token
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=STEP_TIMEOUT,
        )

    def call(self, action: str, path: str, body: dict | None = None, **check: Any) -> dict | None:
        try:
            answer = self.http.post(path, json=body or {})
        except Exception as error:  # noqa: BLE001 - counted
            self.tally.bad(f"{self.side} {action}: {type(error).__name__}: {error}")
            return None
        try:
            data = answer.json()
        except ValueError:
            self.tally.bad(f"{self.side} {action}: HTTP {answer.status_code}, not JSON")
            return None
        if answer.status_code < 300:
            step = data["current_step"]  # feedback and select act on the current step
            if "feedback" in check or action.startswith("select"):
                check["step"] = step
            if action.startswith("select"):
                state = data["steps"][step]
                index = state["user_selection"]
                shown = state["ai_responses"]  # from the run's own index responses_from[step]
                first = data.get("responses_from", {}).get(step, 0)
                selected = shown[index - first]["response_id"] if index is not None else None
                if check.get("selected", selected) != selected:
                    self.tally.bad(f"{self.side} {action}: answered with another selection")
                check["selected"] = selected
            self.tally.server_acks.append(
                {
                    "side": self.side,
                    "action": action,
                    "run_id": data["pipeline_run_id"],
                    "last_seq": data["last_seq"],
                    "status": data["status"],
                    "current_step": data["current_step"],
                    **check,
                }
            )
            return data
        code = data.get("error", {}).get("code", "?") if isinstance(data, dict) else "?"
        if answer.status_code >= 500 or code == "?":
            self.tally.bad(f"{self.side} {action}: HTTP {answer.status_code} {data}")
        elif code == "conflict":
            self.tally.conflicts[f"server 409 conflict ({self.side})"] += 1
        else:
            self.tally.refusals[f"{self.side}: {answer.status_code} {code}"] += 1
        return None

    def stream(self, run_id: str):
        from websockets.sync.client import connect

        return connect(
            f"ws://127.0.0.1:{self.port}/api/runs/{run_id}/stream",
            additional_headers={"Authorization": f"Bearer {self.token}"},
            max_size=None,
        )


def server_runs(client: Client, shared: dict[str, Any]) -> None:
    """Runs of the server's own, with interference on the TUI's run between steps."""
    rng = random.Random(9)
    for i in range(SERVER_RUNS):
        run = client.call(
            "start",
            "/api/runs",
            {"pipeline": "tech-article", "inputs": {"source_material": f"server run {i}"}}
            | {"models": MODELS},
        )
        if run is None:
            continue
        run_id = run["pipeline_run_id"]
        with client.stream(run_id) as ws:
            json.loads(ws.recv(timeout=STEP_TIMEOUT))  # the initial state
            for _ in range(STEPS):
                step = run["current_step"]
                started = client.call(
                    "execute", f"/api/runs/{run_id}/steps/{step}/execute", step=step
                )
                if started is None:
                    break
                deadline = time.monotonic() + STEP_TIMEOUT
                while True:
                    try:
                        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                    except TimeoutError:
                        client.tally.bad(f"server run {run_id[:8]}: no step_done for {step}")
                        break
                    if message["type"] == "step_done" and message["step"] == step:
                        break
                text = f"server feedback {i} {step} {rng.random():.6f}"
                client.call(
                    "feedback",
                    f"/api/runs/{run_id}/feedback",
                    {"feedback": text},
                    step=step,
                    feedback=text,
                )
                current = client.http.get(f"/api/runs/{run_id}").json()
                done = [
                    c["response_id"] for c in current["candidates"] if c["status"] == "completed"
                ]
                if not done:
                    client.tally.bad(f"server run {run_id[:8]}: no completed candidate at {step}")
                    break
                chosen = rng.choice(done)
                client.call(
                    "select",
                    f"/api/runs/{run_id}/select",
                    {"response_id": chosen},
                    step=step,
                    selected=chosen,
                )
                moved = client.call("accept", f"/api/runs/{run_id}/accept", step=step)
                if moved is None:
                    break
                run = moved
                interfere(client, shared, rng, tag=f"s{i}")
    shared["server_done"] = True


def interfere(client: Client, shared: dict[str, Any], rng: random.Random, tag: str) -> None:
    """Feedback or a selection on the run the TUI is working on (maybe while it streams)."""
    run_id = shared.get("tui_run")
    if not run_id:
        return
    if rng.random() < 0.7:
        text = f"from the server {tag} {rng.random():.6f}"
        client.call(
            "feedback on the TUI's run",
            f"/api/runs/{run_id}/feedback",
            {"feedback": text},
            feedback=text,
            foreign=True,
        )
    else:
        index = rng.choice([0, 1])
        client.call(
            "select on the TUI's run",
            f"/api/runs/{run_id}/select",
            {"index": index},
            foreign=True,
        )


def hammer(client: Client, shared: dict[str, Any]) -> None:
    """Many small writes on the TUI's run while it streams, to meet its writes head on."""
    rng = random.Random(13)
    sent = 0
    while sent < HAMMER_MAX and not shared.get("tui_done"):
        if shared.get("tui_run"):
            interfere(client, shared, rng, tag=f"h{sent}")
            sent += 1
        time.sleep(rng.uniform(0.005, 0.08))  # random pauses for overlap, not for sync
    shared["hammered"] = sent


# --- checking, from a fresh process ------------------------------------------------------------


def verify(home: str, acks_path: str) -> dict[str, Any]:
    """Open the store fresh and check it against what both sides were told."""
    from writeit.models import ResponseStatus
    from writeit.store import Store
    from writeit.workspaces import get_workspace

    os.environ["WRITEIT_HOME"] = home
    acks = json.loads(Path(acks_path).read_text())
    result: dict[str, Any] = {"opened": False}
    try:
        store = Store(get_workspace().store_path)
        store.env.stat()
        run_ids = [k.removeprefix("run:") for k in store.keys("run:")]
        result["opened"] = True
    except Exception as error:  # noqa: BLE001 - reported
        result["open_error"] = f"{type(error).__name__}: {error}"
        return result
    expected = expected_text()
    lineages = {}
    gaps, not_intact, left_streaming = [], [], []
    events_total = 0
    for run_id in run_ids:
        try:
            events = store.events(run_id)
            run = store.load(run_id)
        except Exception as error:  # noqa: BLE001 - reported
            gaps.append(f"{run_id[:8]}: {type(error).__name__}: {error}")
            continue
        lineages[run_id] = events
        summary = store.summary(run_id)
        events_total += sum(1 for e in events if e.run_id == run_id)
        if [e.seq for e in events] != list(range(1, len(events) + 1)):
            gaps.append(f"{run_id[:8]}: seqs {[e.seq for e in events][:5]}...")
        elif summary.last_seq != events[-1].seq:
            gaps.append(f"{run_id[:8]}: index says {summary.last_seq}, log ends {events[-1].seq}")
        for step in run.steps.values():
            for response in step.ai_responses:
                if response.status == ResponseStatus.STREAMING:
                    left_streaming.append(f"{run_id[:8]}/{response.response_id[:8]}")
                if (
                    response.status == ResponseStatus.COMPLETED
                    and response.model_name in MODELS
                    and response.raw_output != expected
                ):
                    not_intact.append(
                        f"{run_id[:8]}/{step.step_name}/{response.model_name}: "
                        f"{len(response.raw_output)} of {len(expected)} chars"
                    )
    lost = []
    for ack in acks["tui_events"]:
        events = lineages.get(ack["run_id"], [])
        found = events[ack["seq"] - 1] if 0 < ack["seq"] <= len(events) else None
        if (
            found is None
            or found.type.value != ack["type"]
            or digest(found.model_dump(mode="json")["data"]) != ack["digest"]
        ):
            lost.append(f"TUI {ack['type']} {ack['run_id'][:8]}#{ack['seq']}")
    for ack in acks["server_acks"]:
        where = f"server {ack['action']} {ack['run_id'][:8]}#{ack['last_seq']}"
        try:
            state = store.state_at(ack["run_id"], ack["last_seq"])
        except Exception as error:  # noqa: BLE001 - reported
            lost.append(f"{where}: {error}")
            continue
        problems = []
        if state.status.value != ack["status"] or state.current_step != ack["current_step"]:
            problems.append(f"state {state.status.value}/{state.current_step}")
        step = state.steps.get(ack.get("step") or "")
        if "feedback" in ack and (step is None or step.user_feedback != ack["feedback"]):
            problems.append("feedback missing")
        if "selected" in ack:
            chosen = (
                step
                and step.user_selection is not None
                and step.ai_responses[step.user_selection].response_id
            )
            if chosen != ack["selected"]:
                problems.append("selection missing")
        if ack["action"] == "execute" and (step is None or step.status.value == "pending"):
            problems.append("step not started")
        if problems:
            lost.append(f"{where}: {', '.join(problems)}")
    result.update(
        runs=len(run_ids),
        events=events_total,
        gaps=gaps,
        lost=lost,
        not_intact=not_intact,
        left_streaming=left_streaming,
    )
    return result


# --- the soak ------------------------------------------------------------------------------------


def shared_store() -> None:
    from run import record

    from writeit.workspaces import ensure_token, init

    # Clients left by the earlier soaks' event loops close themselves on collection; let
    # that happen now, outside any loop, not as noise inside the TUI's loop.
    gc.collect()
    saved_home = os.environ["WRITEIT_HOME"]
    home = tempfile.mkdtemp(prefix="writeit-soak-shared-")
    os.environ["WRITEIT_HOME"] = home
    tally = Tally()
    shared: dict[str, Any] = {}
    handler = ErrorLog(tally)
    logging.getLogger().addHandler(handler)
    started = time.perf_counter()
    try:
        init()
        token = ensure_token()
        server = Server(tally)
        try:
            own = Client(tally, server.port, token, "server runs")
            other = Client(tally, server.port, token, "hammer")
            threads = [
                threading.Thread(target=server_runs, args=(own, shared), daemon=True),
                threading.Thread(target=hammer, args=(other, shared), daemon=True),
            ]
            for thread in threads:
                thread.start()
            asyncio.run(drive_tui(tally, shared))
            for thread in threads:
                thread.join(timeout=STEP_TIMEOUT * STEPS * SERVER_RUNS)
                if thread.is_alive():
                    tally.bad(f"client thread {thread.name} did not finish (hang)")
        finally:
            server.stop()
        acks = Path(home) / "acks.json"
        acks.write_text(
            json.dumps({"tui_events": tally.tui_events, "server_acks": tally.server_acks})
        )
        checked = subprocess.run(
            [sys.executable, __file__, "verify", home, str(acks)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            found = json.loads(checked.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            found = {"opened": False, "open_error": checked.stderr[-2000:]}
    finally:
        logging.getLogger().removeHandler(handler)
        os.environ["WRITEIT_HOME"] = saved_home
    seconds = time.perf_counter() - started
    for kind in ("gaps", "lost", "not_intact", "left_streaming"):
        for line in found.get(kind, [])[:8]:
            print(f"  shared-store {kind}: {line}", file=sys.stderr)
    print(
        f"  shared-store: {len(tally.tui_events)} TUI events and {len(tally.server_acks)} "
        f"server actions acknowledged, {found.get('events', 0)} events in "
        f"{found.get('runs', 0)} runs, {shared.get('hammered', 0)} interfering requests; "
        f"conflicts {dict(tally.conflicts)} ({tally.told_writer} shown in the TUI); "
        f"other refusals {dict(tally.refusals)}; "
        f"{seconds:.1f}s",
        file=sys.stderr,
    )
    what = f"{len(tally.tui_events)} TUI events + {len(tally.server_acks)} server acks"
    record(
        "soak shared: acknowledged events lost (TUI + server on one store)",
        len(found.get("lost", [])),
        "count",
        0,
        note=what,
    )
    record(
        "soak shared: runs with seq gaps or index mismatch",
        len(found.get("gaps", [])),
        "count",
        0,
        note=f"{found.get('runs', 0)} runs",
    )
    record(
        "soak shared: completed responses not intact",
        len(found.get("not_intact", [])),
        "count",
        0,
    )
    orphaned = {line.split("/")[0] for line in found.get("left_streaming", [])}
    record(
        "soak shared: runs left with candidates streaming that nothing generates",
        len(orphaned),
        "count",
        0,
        note="after both sides stopped (streams are saved and interrupted on a clean stop)",
    )
    record(
        "soak shared: store did not reopen cleanly",
        0 if found.get("opened") else 1,
        "count",
        0,
    )
    record(
        "soak shared: conflicting writes refused cleanly (409/Conflict)",
        sum(tally.conflicts.values()),
        "count",
        1,
        higher_is_better=True,
        note="; ".join(f"{k}: {v}" for k, v in tally.conflicts.items()),
    )
    record(
        "soak shared: errors other than clean refusals (5xx, traceback, hang, dropped text)",
        len(tally.unclean),
        "count",
        0,
        note="; ".join(sorted(set(tally.unclean)))[:300],
    )


if __name__ == "__main__" and sys.argv[1:2] == ["verify"]:
    os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
    sys.path.insert(0, str(HERE))
    print(json.dumps(verify(sys.argv[2], sys.argv[3])))
