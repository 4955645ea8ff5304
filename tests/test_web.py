"""`writeit web`: a real server (a child process on a free port) driven by the system
Chromium through Playwright: a run started from the keyboard lands in the store, the
token guards the page and the WebSocket, foreign Hosts and Origins are refused, the token
never reaches the log, and stopping the server saves the streams.

The browser draws the terminal on a canvas, so the tests read the screen from what the
server sends over the WebSocket (the app's output, escape sequences removed).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from served import free_port, poll

CHROMIUM = Path(os.environ.get("WRITEIT_TEST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")

# As root and on a machine with no network: no sandbox, no GPU, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSI = re.compile(
    rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>78])"
)
# Two candidates a step (not the pipeline's own models) from the loopback OpenAI server,
# each sending two chunks and then nothing: streams still live when the server stops.
MODELS = ["-m", "oai-stall", "-m", "oai-stall"]
SOURCE = "Browser notes: 140 nightly jobs moved to Temporal; failures fell to 2 a month."


class Web:
    """`writeit web --port P -m oai-stall -m oai-stall` as a child process; its output kept."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "writeit", "web", "--port", str(self.port), *MODELS],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        poll(lambda: self.lines or self.process.poll() is not None, 30, "writeit web starting")
        self.url = self.lines[0].strip() if self.lines else ""  # printed once it listens
        assert self.url.startswith(f"http://127.0.0.1:{self.port}/?token="), self.url
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = self.url.split("token=", 1)[1]

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        """Ctrl+C, as a writer stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code

    @property
    def output(self) -> str:
        """Everything after the address (whose token is meant to be there)."""
        return "".join(self.lines[1:])


class Screen:
    """What the app drew, from the WebSocket frames the page received."""

    def __init__(self, page) -> None:
        self.page = page
        self.frames: list[bytes] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, bytes) else payload.encode())

    def mark(self) -> int:
        return len(self.frames)

    def text(self, since: int = 0) -> str:
        return ANSI.sub(b"", b"".join(self.frames[since:])).decode("utf-8", "replace")

    def wait_for(self, words: str, since: int = 0, timeout: float = 20) -> None:
        """Poll (bounded) until the app has drawn `words` since frame `since`."""
        deadline = time.monotonic() + timeout
        while words not in self.text(since):
            if time.monotonic() > deadline:
                raise AssertionError(f"{words!r} not drawn within {timeout}s: {self.text()[-600:]}")
            self.page.wait_for_timeout(25)  # lets Playwright deliver the frames meanwhile

    def press(self, key: str, then: str) -> None:
        mark = self.mark()
        self.page.keyboard.press(key)
        self.wait_for(then, mark)


@pytest.fixture
def web(openai_server) -> Iterator[Web]:
    server = Web()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def open_store():
    from writeit.workspaces import get_workspace

    return get_workspace().open_store()


def test_a_run_started_from_the_keyboard_is_stored_and_ctrl_c_saves_its_streams(web, page):
    screen = Screen(page)
    page.goto(web.url)
    assert page.url == f"{web.base}/"  # the token left the address bar
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["value"]) == (f"writeit_web_{web.port}", web.token)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    screen.wait_for("No runs yet")  # straight into the run list
    screen.press("n", then="tech-article")  # keys reach it without a click first
    screen.press("Enter", then="Source material")
    page.keyboard.type(SOURCE)
    page.keyboard.press("Control+s")

    store = open_store()  # once: LMDB wants one environment per file and process
    poll(store.recent, 30, "the run started from the browser")
    [summary] = store.recent()
    run = store.load(summary.run_id)
    assert run.pipeline.name == "tech-article"
    assert run.user_inputs["source_material"] == SOURCE
    assert run.models == ["oai-stall", "oai-stall"]  # --model reached the app

    def streaming_with_text() -> bool:
        responses = store.load(run.pipeline_run_id).steps["angles"].ai_responses
        return len(responses) == 2 and all(r.raw_output for r in responses)

    poll(streaming_with_text, 30, "both candidates streaming, their text checkpointed")
    assert web.stop() == 0  # Ctrl+C: every tab's app quits as Q does
    stopped = store.load(run.pipeline_run_id)  # the raw fold: nothing settled by us
    assert stopped.status.value == "paused"  # as Q leaves it: `writeit resume` goes on
    after = stopped.steps["angles"].ai_responses
    assert [r.status.value for r in after] == ["interrupted", "interrupted"]
    assert all(r.raw_output for r in after)  # their text kept
    assert web.token not in web.output  # the access log masks ?token=
    assert "token=***" in web.output


def test_a_missing_or_wrong_token_is_refused(web, page):
    response = page.goto(f"{web.base}/")
    assert response.status == 401
    assert "writeit serve --show-token" in page.content()
    response = page.goto(f"{web.base}/?token=not-the-token")
    assert response.status == 401
    assert "not this WriteIt" in page.content()
    assert page.context.cookies() == []
    for path in ("/static/js/textual.js", "/ws"):
        assert httpx.get(f"{web.base}{path}").status_code == 401
    wrong = {f"writeit_web_{web.port}": "not-the-token"}
    assert httpx.get(f"{web.base}/", cookies=wrong).status_code == 401
    assert web.token not in web.output


def test_foreign_hosts_and_origins_are_refused(web):
    cookies = {f"writeit_web_{web.port}": web.token}
    with httpx.Client(base_url=web.base, cookies=cookies) as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"Host": "localhost"}).status_code == 200
        rebound = client.get("/", headers={"Host": f"evil.example:{web.port}"})
        assert rebound.status_code == 400
        assert "not allowed" in rebound.text
        signed = client.get(f"/?token={web.token}", headers={"Host": "evil.example"})
        assert signed.status_code == 400 and "set-cookie" not in signed.headers
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
        upgrade["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
        for origin in ("http://evil.example", f"http://localhost:{web.port + 1}"):
            refused = client.get("/ws", headers={**upgrade, "Origin": origin})
            assert refused.status_code == 403, origin


def test_a_port_in_use_is_an_error_with_a_hint(web):
    from writeit_cli import run

    done = run("web", "--port", str(web.port), check=False)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{web.port}" in done.stderr
    assert "--port" in done.stderr
    assert web.process.poll() is None  # the first server is untouched


def test_an_export_from_the_browser_is_also_downloaded(web, page, engine, scripted):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from writeit import autopilot

    async def finished_run() -> str:
        scripted.script("scripted-a", replies=["angles", "outline", "draft", "# Done\n\nIt ran."])
        inputs = {"source_material": SOURCE}
        run = await engine.start_run("tech-article", inputs, models=["scripted-a"])
        await autopilot.drive(engine, run.pipeline_run_id, "first")
        return run.pipeline_run_id

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this thread
        run_id = thread.submit(asyncio.run, finished_run()).result(60)
    screen = Screen(page)
    page.goto(web.url)
    screen.wait_for(run_id[:8])  # the run list, the finished run on it
    page.focus(".xterm-helper-textarea")
    screen.press("e", then="Export run")
    screen.press("Control+s", then="Saved")
    with page.expect_download(timeout=20_000) as download:
        page.keyboard.press("Escape")
    got = download.value
    saved = sorted((web_home() / "workspaces" / "default" / "exports").glob("*.md"))
    assert [p.name for p in saved] == [got.suggested_filename]
    assert Path(got.path()).read_text() == saved[0].read_text()
    assert "It ran." in saved[0].read_text()


def web_home() -> Path:
    return Path(os.environ["WRITEIT_HOME"])
