"""A deterministic, in-process ``llm`` model for tests.

Registered with ``llm``'s plugin manager, so tests (and the product code under
test) reach it through the real ``llm.get_model`` / ``llm.get_async_model``
path, exactly like a provider plugin.

Model ids
---------
``scripted``, ``scripted-a``, ``scripted-b``, ``scripted-c``
    Sync *and* async (``register(model, async_model)``), ``can_stream = True``.
    Different ids give different default text, so "ask two models" yields two
    distinguishable candidates.
``scripted-sync``
    Sync only (like ``markov``): ``llm.get_async_model("scripted-sync")``
    raises ``llm.UnknownModelError``, which exercises the worker-thread path.

Behaviour
---------
Nothing scripted: each call streams :func:`default_reply` for the model id and
prompt, in chunks of :data:`DEFAULT_CHUNK_SIZE` characters.

``script(model_id, ...)`` changes what one model does (``"*"`` scripts every
scripted model that has no script of its own)::

    script("scripted-a", replies=["first answer", "second answer"], chunk_size=4)
    script("scripted-b", fail="quota exceeded")          # ModelError, no chunks
    script("scripted-c", fail_after_chunks=2)            # ModelError after 2 chunks
    script("scripted", replies=[llm.ModelError("once"), "then this"])
    gate = Gate(after_chunks=3)
    script("scripted-a", gate=gate)                      # park after 3 chunks
    await gate.wait_reached(); ...; gate.release()

Every call is appended to :data:`calls` (a list of dicts with ``model_id``,
``prompt``, ``system``, ``options``, plus ``stream``, ``mode`` and ``reply``).
Usage is set on every completed response: ``input`` = words in the prompt,
``output`` = words in the reply. ``reset()`` clears scripts and calls and
releases every gate.

Import this module as ``scripted_model`` (``tests/`` is put on ``sys.path`` by
``tests/conftest.py``), never as ``tests.scripted_model``: the registry is
module state, and a second copy of the module would have its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import llm
from pydantic import Field

PLUGIN_NAME = "writeit-scripted"
DUAL_MODEL_IDS = ("scripted", "scripted-a", "scripted-b", "scripted-c")
SYNC_ONLY_MODEL_IDS = ("scripted-sync",)
MODEL_IDS = DUAL_MODEL_IDS + SYNC_ONLY_MODEL_IDS
DEFAULT_CHUNK_SIZE = 24

Reply = str | BaseException

# Every call any scripted model received, in order. Cleared in place by reset().
calls: list[dict[str, Any]] = []

_lock = threading.Lock()
_scripts: dict[str, Script] = {}
_gates: list[Gate] = []


# --------------------------------------------------------------------------
# Gate: hold a stream mid-way, from a thread or an event loop
# --------------------------------------------------------------------------


class _Flag:
    """A one-shot flag that threads wait on and coroutines await, in any loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._event.is_set():
                return True
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Gate:
    """Parks a scripted stream after ``after_chunks`` chunks until :meth:`release`.

    The stream sets :attr:`reached` once it is parked; at that moment the
    consumer has already received exactly ``after_chunks`` chunks (the model
    only resumes when the consumer asks for the next one). If the reply has
    fewer chunks, the stream parks after its last chunk, before completing.

    One gate may serve several calls (each parks); once released it stays open.
    A stream parked longer than ``timeout`` seconds fails with
    ``llm.ModelError`` so a forgotten gate cannot hang the suite, and
    ``reset()`` releases every gate.

    Test side::

        await gate.wait_reached()        # async test
        gate.wait_reached_sync()         # sync test / other thread
        gate.release()
    """

    def __init__(self, after_chunks: int = 1, *, timeout: float = 30.0) -> None:
        if after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        self.after_chunks = after_chunks
        self.timeout = timeout
        self._reached = _Flag()
        self._released = _Flag()
        with _lock:
            _gates.append(self)

    @property
    def reached(self) -> bool:
        return self._reached.is_set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        self._released.set()

    async def wait_reached(self, timeout: float = 5.0) -> None:
        if not await self._reached.wait_async(timeout):
            raise TimeoutError(f"no scripted stream reached the gate within {timeout}s")

    def wait_reached_sync(self, timeout: float = 5.0) -> None:
        if not self._reached.wait(timeout):
            raise TimeoutError(f"no scripted stream reached the gate within {timeout}s")

    # Called by the models.
    def _park_sync(self) -> None:
        self._reached.set()
        if not self._released.wait(self.timeout):
            raise llm.ModelError(f"scripted gate was not released within {self.timeout}s")

    async def _park_async(self) -> None:
        self._reached.set()
        if not await self._released.wait_async(self.timeout):
            raise llm.ModelError(f"scripted gate was not released within {self.timeout}s")


# --------------------------------------------------------------------------
# Scripts
# --------------------------------------------------------------------------


@dataclass
class Script:
    """What one scripted model does. Build it with :func:`script`."""

    replies: list[Reply] = field(default_factory=list)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    fail: str | None = None
    fail_after_chunks: int | None = None
    delay: float = 0.0
    gate: Gate | None = None


def script(
    model_id: str,
    *,
    replies: Sequence[Reply] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    fail: str | None = None,
    fail_after_chunks: int | None = None,
    delay: float = 0.0,
    gate: Gate | None = None,
) -> Script:
    """Script ``model_id`` (or ``"*"`` for every scripted model without a script).

    replies
        One entry per call, consumed in order; when exhausted, calls fall back
        to :func:`default_reply`. An entry that is an exception instance is
        raised by that call before any chunk (e.g. ``llm.ModelError("x")``),
        so "fail once, then succeed" is ``[llm.ModelError("x"), "text"]``.
    chunk_size
        Characters per streamed chunk (non-streaming calls yield one piece).
    fail
        Every call raises ``llm.ModelError(fail)`` before the first chunk
        (takes precedence over ``replies``, which are then not consumed).
    fail_after_chunks
        Every call raises ``llm.ModelError`` after that many chunks: a
        mid-stream drop. The message is ``fail`` if given, else a default.
        With ``fail`` and ``fail_after_chunks`` both set, the failure happens
        mid-stream (after the chunks) rather than before the first chunk.
    delay
        Seconds to wait before each chunk (pacing only; never needed for
        synchronisation: use ``gate``).
    gate
        A :class:`Gate` that parks the stream part way.

    Scripting a model again replaces its previous script.
    """
    if model_id != "*" and model_id not in MODEL_IDS:
        raise ValueError(f"unknown scripted model {model_id!r}; choose from {MODEL_IDS}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    new = Script(
        replies=list(replies or []),
        chunk_size=chunk_size,
        fail=fail,
        fail_after_chunks=fail_after_chunks,
        delay=delay,
        gate=gate,
    )
    with _lock:
        _scripts[model_id] = new
    return new


# The scripted models are free, as offline models are ($0, a known price); a test that
# needs a model with no known price adds its id here (cleared by reset()).
UNPRICED: set[str] = set()


def reset() -> None:
    """Forget every script, recorded call and unpriced id, and release every gate."""
    with _lock:
        gates = list(_gates)
        _gates.clear()
        _scripts.clear()
        calls.clear()
        UNPRICED.clear()
    for gate in gates:
        gate.release()


def calls_for(model_id: str) -> list[dict[str, Any]]:
    """The recorded calls to one model, in order."""
    return [call for call in calls if call["model_id"] == model_id]


_WORDS_OF_PROSE = (
    "Clear writing starts with knowing exactly who will read the piece and why.",
    "The strongest drafts make one argument and support it with concrete detail.",
    "Each paragraph should earn its place by moving the reader one step further.",
    "Examples carry more weight than adjectives, so show the system at work.",
    "A good outline names the tension early and resolves it near the end.",
    "Readers forgive a plain style far sooner than they forgive a vague one.",
    "Numbers help when they are few, sourced, and explained in ordinary words.",
    "Trade-offs deserve honest treatment, including the costs of the choice made.",
    "Short sentences give the reader room; longer ones should still be easy to parse.",
    "The conclusion should point somewhere useful rather than repeat the introduction.",
    "Technical terms need a definition the first time they appear in the text.",
    "Structure is a promise to the reader, and every heading should keep it.",
    "Revision is where most of the clarity comes from, one pass at a time.",
    "A quotation works best when it says something the writer could not say better.",
    "The opening line should make a specific claim that the rest of the piece tests.",
    "Transitions matter: each section should explain why it follows the last.",
)


def default_reply(model_id: str, prompt: str) -> str:
    """The deterministic article-like text a model streams when nothing is scripted.

    Starts with ``"[scripted] <model_id> answered: <first 60 chars>...\\n\\n"``
    (prompt whitespace collapsed to single spaces), then four paragraphs of
    prose chosen from the model id and prompt, then a line with the prompt's
    length and a short hash, so different prompts and models give different
    text.
    """
    digest = hashlib.sha256(f"{model_id}\x00{prompt}".encode()).hexdigest()
    head = " ".join(prompt.split())[:60]
    paragraphs = []
    for p in range(4):
        sentences = []
        for s in range(3):
            index = int(digest[(p * 3 + s) * 2 : (p * 3 + s) * 2 + 2], 16)
            sentences.append(_WORDS_OF_PROSE[index % len(_WORDS_OF_PROSE)])
        paragraphs.append(" ".join(sentences))
    return (
        f"[scripted] {model_id} answered: {head}...\n\n"
        + "\n\n".join(paragraphs)
        + f"\n\n(Prompt of {len(prompt)} characters, digest {digest[:8]}.)\n"
    )


# --------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------


@dataclass
class _Plan:
    chunks: list[str]
    reply: str
    fail_before: BaseException | None
    fail_after_chunks: int | None
    fail_message: str
    delay: float
    gate: Gate | None


def _plan(model_id: str, prompt: llm.Prompt, stream: bool, mode: str) -> _Plan:
    text = prompt.prompt
    with _lock:
        current = _scripts.get(model_id) or _scripts.get("*") or Script()
        fail_before: BaseException | None = None
        reply: str | None = None
        if current.fail is not None and current.fail_after_chunks is None:
            fail_before = llm.ModelError(current.fail)
        elif current.replies:
            entry = current.replies.pop(0)
            if isinstance(entry, BaseException):
                fail_before = entry
            else:
                reply = entry
        if reply is None:
            reply = default_reply(model_id, text)
        calls.append(
            {
                "model_id": model_id,
                "prompt": text,
                "system": prompt.system or None,
                "options": prompt.options.model_dump(exclude_none=True),
                "stream": stream,
                "mode": mode,
                "reply": None if fail_before else reply,
            }
        )
    if stream:
        size = current.chunk_size
        chunks = [reply[i : i + size] for i in range(0, len(reply), size)]
    else:
        chunks = [reply]
    message = current.fail or (
        f"scripted stream from {model_id} dropped after {current.fail_after_chunks} chunks"
    )
    return _Plan(
        chunks=chunks,
        reply=reply,
        fail_before=fail_before,
        fail_after_chunks=current.fail_after_chunks,
        fail_message=message,
        delay=current.delay,
        gate=current.gate,
    )


def _set_usage(response: llm.Response | llm.AsyncResponse, prompt: str, reply: str) -> None:
    response.set_usage(input=len(prompt.split()), output=len(reply.split()))


class _ScriptedOptions(llm.Options):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)


class ScriptedModel(llm.Model):
    """Sync scripted model. Runs in whatever thread iterates the response."""

    can_stream = True
    Options = _ScriptedOptions

    @property
    def writeit_free(self) -> bool:  # offline: WriteIt prices it at $0, known
        return self.model_id not in UNPRICED

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def execute(
        self,
        prompt: llm.Prompt,
        stream: bool,
        response: llm.Response,
        conversation: llm.Conversation | None,
    ) -> Iterator[str]:
        plan = _plan(self.model_id, prompt, stream, "sync")
        if plan.fail_before is not None:
            raise plan.fail_before
        for sent, chunk in enumerate(plan.chunks):
            if plan.fail_after_chunks is not None and sent == plan.fail_after_chunks:
                raise llm.ModelError(plan.fail_message)
            if plan.gate is not None and sent == plan.gate.after_chunks:
                plan.gate._park_sync()
            if plan.delay:
                time.sleep(plan.delay)
            yield chunk
        sent = len(plan.chunks)
        if plan.fail_after_chunks is not None and sent <= plan.fail_after_chunks:
            raise llm.ModelError(plan.fail_message)
        if plan.gate is not None and sent <= plan.gate.after_chunks:
            plan.gate._park_sync()
        _set_usage(response, prompt.prompt, plan.reply)

    def __str__(self) -> str:
        return f"Scripted: {self.model_id}"


class AsyncScriptedModel(llm.AsyncModel):
    """Async scripted model. Yields control to the loop between chunks."""

    can_stream = True
    Options = _ScriptedOptions

    @property
    def writeit_free(self) -> bool:  # offline: WriteIt prices it at $0, known
        return self.model_id not in UNPRICED

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    async def execute(
        self,
        prompt: llm.Prompt,
        stream: bool,
        response: llm.AsyncResponse,
        conversation: llm.AsyncConversation | None,
    ) -> AsyncIterator[str]:
        plan = _plan(self.model_id, prompt, stream, "async")
        if plan.fail_before is not None:
            raise plan.fail_before
        for sent, chunk in enumerate(plan.chunks):
            if plan.fail_after_chunks is not None and sent == plan.fail_after_chunks:
                raise llm.ModelError(plan.fail_message)
            if plan.gate is not None and sent == plan.gate.after_chunks:
                await plan.gate._park_async()
            # Always give the loop a turn, so concurrent streams interleave.
            await asyncio.sleep(plan.delay)
            yield chunk
        sent = len(plan.chunks)
        if plan.fail_after_chunks is not None and sent <= plan.fail_after_chunks:
            raise llm.ModelError(plan.fail_message)
        if plan.gate is not None and sent <= plan.gate.after_chunks:
            await plan.gate._park_async()
        _set_usage(response, prompt.prompt, plan.reply)

    def __str__(self) -> str:
        return f"Scripted (async): {self.model_id}"


# --------------------------------------------------------------------------
# Plugin registration
# --------------------------------------------------------------------------


@llm.hookimpl
def register_models(register):
    for model_id in DUAL_MODEL_IDS:
        register(ScriptedModel(model_id), AsyncScriptedModel(model_id))
    for model_id in SYNC_ONLY_MODEL_IDS:
        register(ScriptedModel(model_id))


def install() -> None:
    """Register this module with ``llm``'s plugin manager (idempotent)."""
    from llm.plugins import pm

    module = sys.modules[__name__]
    registered = pm.get_plugin(PLUGIN_NAME)
    if registered is module:
        return
    if registered is not None:
        raise RuntimeError(
            f"{PLUGIN_NAME} is already registered from {registered.__name__!r}; import the "
            "scripted model as 'scripted_model' only, so there is one registry"
        )
    pm.register(module, name=PLUGIN_NAME)


def uninstall() -> None:
    """Remove the plugin again (for tests that need a clean plugin list)."""
    from llm.plugins import pm

    if pm.get_plugin(PLUGIN_NAME) is not None:
        pm.unregister(name=PLUGIN_NAME)
