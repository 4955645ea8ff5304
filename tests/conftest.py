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


SOURCE = """Our team moved 140 nightly cron jobs to Temporal in six weeks.
Failures dropped from 12 a month to 2. Template text like {{ 7*7 }} and
{% for x in y %}loops{% endfor %} must reach the model verbatim."""


@pytest.fixture
def source() -> str:
    return SOURCE
