"""Shared test fixtures.

Sections:
  1. Import-time set-up (must run before anything imports ``llm``).
  2. Environment isolation (autouse).
  3. Fake providers: the scripted in-process model and the loopback OpenAI server.

Add new fixtures in their own section below, keeping the import-time block first.
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# 1. Import-time set-up
# --------------------------------------------------------------------------
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# llm reads LLM_LOAD_PLUGINS when llm.plugins is first imported: load only the
# offline markov plugin, never whatever plugins this machine has installed.
# (Kept in os.environ so subprocesses started by tests inherit it.)
os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def _pin_llm_plugins() -> None:
    """If something imported llm before this file, make it honour LLM_LOAD_PLUGINS anyway."""
    plugins = sys.modules.get("llm.plugins")
    if plugins is None or plugins.LLM_LOAD_PLUGINS == "llm-markov":
        return
    if plugins._loaded:
        raise RuntimeError(
            "llm loaded the machine's plugins before tests/conftest.py ran; "
            "set LLM_LOAD_PLUGINS=llm-markov before importing llm"
        )
    plugins.LLM_LOAD_PLUGINS = "llm-markov"


_pin_llm_plugins()

import httpx  # noqa: E402
import pytest  # noqa: E402
import scripted_model  # noqa: E402
from openai_server import OpenAIServer  # noqa: E402

scripted_model.install()


# --------------------------------------------------------------------------
# 2. Environment isolation
# --------------------------------------------------------------------------

# Provider credentials and settings that must never leak into a test.
PROVIDER_ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_ADMIN_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "OPENROUTER_KEY",
    "OPENROUTER_API_KEY",
    "LLM_OPENAI_SHOW_RESPONSES",
    "LLM_RAISE_ERRORS",
)

LOOPBACK_HOSTS = "127.0.0.1,localhost,::1"


class IsolatedEnv:
    """Paths of the per-test llm and WriteIt homes (both empty at the start)."""

    def __init__(self, llm_user_path: Path, writeit_home: Path) -> None:
        self.llm_user_path = llm_user_path
        self.writeit_home = writeit_home


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IsolatedEnv]:
    """Fresh LLM_USER_PATH and WRITEIT_HOME, no provider keys, a clean scripted model."""
    llm_user_path = tmp_path / "llm-user"
    writeit_home = tmp_path / "writeit-home"
    llm_user_path.mkdir()
    writeit_home.mkdir()
    monkeypatch.setenv("LLM_USER_PATH", str(llm_user_path))
    monkeypatch.setenv("WRITEIT_HOME", str(writeit_home))
    monkeypatch.setenv("LLM_LOAD_PLUGINS", "llm-markov")
    for name in list(os.environ):
        if name in PROVIDER_ENV_VARS or name.endswith("_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    # A proxy configured on this machine must not intercept the loopback server.
    for name in ("NO_PROXY", "no_proxy"):
        existing = os.environ.get(name)
        monkeypatch.setenv(name, f"{existing},{LOOPBACK_HOSTS}" if existing else LOOPBACK_HOSTS)
    scripted_model.reset()
    yield IsolatedEnv(llm_user_path, writeit_home)
    scripted_model.reset()


# --------------------------------------------------------------------------
# 3. Fake providers
# --------------------------------------------------------------------------


@pytest.fixture
def scripted():
    """The scripted model module (``script``, ``Gate``, ``calls``, ``default_reply``...)."""
    return scripted_model


@pytest.fixture
def openai_server(isolated_env: IsolatedEnv) -> Iterator[OpenAIServer]:
    """A loopback OpenAI-compatible server, registered with llm as the ``oai-*`` models.

    ``oai-ok``, ``oai-500``, ``oai-429``, ``oai-401``, ``oai-timeout``, ``oai-drop``,
    ``oai-slow``, ``oai-flaky`` and ``oai-stall`` (see ``openai_server.LLM_MODELS``),
    written to ``extra-openai-models.yaml`` in this test's LLM_USER_PATH with
    ``api_base`` = ``server.url``. Yields the :class:`OpenAIServer` (``.url``,
    ``.requests``, ``.counts``, ``.count(model)``, ``.authorizations``,
    ``.add_llm_model(...)``).
    """
    server = OpenAIServer().start()
    try:
        server.register_llm_models(isolated_env.llm_user_path)
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------
# 4. The engine over a real store in this test's WRITEIT_HOME
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_models() -> Iterator[None]:
    """Resolved models are cached per process; each test has its own llm config."""
    from writeit import providers

    providers.forget_models()
    yield
    providers.forget_models()


@pytest.fixture
def preferences():
    from writeit.models import UserPreferences

    return UserPreferences(request_timeout=2.0, max_retries=2, style_primer="tech-journalist")


@pytest.fixture
def engine(isolated_env: IsolatedEnv, preferences):
    from writeit.engine import Engine
    from writeit.workspaces import get_workspace

    return Engine(get_workspace(), preferences=preferences, retry_backoff=0.01)


@pytest.fixture
def built_on_angles(engine):
    """`await built_on_angles(run_id)` on a run whose angles have candidates: pick the
    first, run the outline on it and go back to the angles, where a change now branches."""

    async def build(run_id: str) -> None:
        await engine.select(run_id, 0)
        await engine.accept(run_id)
        await engine.execute_step(run_id)  # the outline builds on the angles
        await engine.rewind(run_id)

    return build


@pytest.fixture
def fork_with_a_new_polish(engine, scripted):
    """`await fork_with_a_new_polish()`: a finished run and a fork of it from the draft
    whose article differs in three words; returns (parent id, child id, child article)."""

    async def build() -> tuple[str, str, str]:
        from writeit import autopilot

        polish = (
            "# Six weeks to Temporal\n\nWe moved 140 nightly jobs; failures fell to 2 a month.\n"
        )
        forked = polish.replace("Six", "Seven").replace("nightly ", "")
        scripted.script("scripted-a", replies=["angles", "outline", "draft", polish, forked])
        inputs = {"source_material": "n"}
        run = await engine.start_run("tech-article", inputs, models=["scripted-a"])
        parent = run.pipeline_run_id
        await autopilot.drive(engine, parent, "first")
        child = (await engine.fork(parent, "draft")).pipeline_run_id
        await autopilot.drive(engine, child, "first")
        return parent, child, forked

    return build


SOURCE = """Our team moved 140 nightly cron jobs to Temporal in six weeks.
Failures dropped from 12 a month to 2. Template text like {{ 7*7 }} and
{% for x in y %}loops{% endfor %} must reach the model verbatim."""


@pytest.fixture
def source() -> str:
    return SOURCE


# --------------------------------------------------------------------------
# 5. Server
# --------------------------------------------------------------------------


class LiveServer:
    """A real uvicorn serving a WriteIt app on a free 127.0.0.1 port, in its own thread.

    The app (and so the engine) runs on the server thread's event loop; tests talk to it
    over HTTP and WebSocket only. ``url``, ``ws_url``, ``token``, ``headers`` (with the
    bearer token), ``app`` and ``engine`` (the app's engine: read ``engine.store`` from
    tests; drive runs through the API).
    """

    def __init__(self, app, token: str, *, sndbuf: int | None = None) -> None:
        import socket
        import threading

        import uvicorn

        ready = threading.Event()

        class _Server(uvicorn.Server):
            async def startup(self, sockets=None):
                try:
                    await super().startup(sockets=sockets)
                finally:
                    ready.set()  # also on failure, so start() does not wait in vain

        self.app, self.token = app, token
        self._ready = ready
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on connections whose
        # proto says TCP (with proto 0, small responses wait ~40 ms for delayed ACKs).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sndbuf:  # inherited by accepted connections: makes backpressure come early
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            ws_max_size=1 << 16,
            timeout_graceful_shutdown=3,
        )
        self.server = _Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def engine(self):
        return self.app.state.writeit.engine

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(15) or not self.server.started:
            raise RuntimeError("uvicorn did not start (see the log above)")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self._socket.close()


@pytest.fixture
def live_server(engine):
    """Start WriteIt servers: ``live_server(**create_app_kwargs, sndbuf=None)``.

    By default the app uses this test's ``engine`` and a fresh random token. Every
    server started is stopped (engine closed by the app's lifespan) after the test.
    """
    import secrets

    from writeit.server import create_app

    started: list[LiveServer] = []

    def start(*, sndbuf: int | None = None, **kwargs) -> LiveServer:
        kwargs.setdefault("engine", engine)
        token = kwargs.pop("token", None) or f"test-{secrets.token_urlsafe(16)}"
        server = LiveServer(create_app(token=token, **kwargs), token, sndbuf=sndbuf)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(live_server) -> LiveServer:
    """One running server over this test's engine."""
    return live_server()


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    """An HTTP client of that server, with its token."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=15) as http:
        yield http


# --------------------------------------------------------------------------
# 6. TUI
# --------------------------------------------------------------------------


@pytest.fixture
def tui_stable(isolated_env: IsolatedEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Screens that look the same on every run, for snapshot tests.

    Run and response ids count up (``00000001-…``), times read ``today 09:30``,
    durations ``1.2s``, HOME is this test's tmp_path (paths show as ``~/writeit-home/…``)
    and the default export name carries no timestamp.
    """
    import itertools

    from writeit import engine as engine_module
    from writeit import export, generation
    from writeit.tui import format as fmt

    counter = itertools.count(1)

    def counted() -> str:
        return f"{next(counter):08d}-0000-4000-8000-000000000000"

    monkeypatch.setattr(engine_module, "new_id", counted)  # run ids
    monkeypatch.setattr(generation, "new_id", counted)  # response ids
    monkeypatch.setattr(fmt, "when", lambda value: "today 09:30")
    monkeypatch.setattr(fmt, "seconds", lambda value: "1.2s")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(
        export,
        "default_path",
        lambda exports, run, kind: (
            exports / f"{run.configuration_id}-{run.pipeline_run_id[:8]}{export.SUFFIX[kind]}"
        ),
    )
