"""Every model call goes through Simon Willison's `llm`: resolve, stream, time, price.

Async models stream natively; sync-only models (such as `markov`) run in a daemon
thread that feeds the event loop. Failures become `ProviderError` with a short code
and the provider's own message, so one failing model never sinks a step.

That message is stored, shown and exported, so it is scrubbed of anything that looks
like a credential first (`scrub`). Retries are ours alone (the openai client's own are
switched off) and follow what the provider says: `x-should-retry`, `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from writeit.errors import InvalidInput
from writeit.models import WriteItError

OFFLINE_MODEL = "markov"

# A provider asking for a longer pause than this is not retried: the writer can try
# again later, which beats a pane that looks stuck for minutes.
MAX_RETRY_AFTER = 60.0

_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
}


class ProviderError(WriteItError):
    """A model call failed; `code` says how, `retryable` whether trying again may help,
    `retry_after` how long the provider asked us to wait first (seconds, if it said).
    `run_id` names the run holding the failed response when the call made a branch."""

    def __init__(
        self,
        message: str,
        code: str = "error",
        retryable: bool = False,
        run_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.run_id = run_id
        self.retry_after = retry_after


@dataclass
class ModelInfo:
    model_id: str
    aliases: list[str]
    provider: str
    needs_key: str | None
    has_key: bool
    is_async: bool

    @property
    def usable(self) -> bool:
        return self.needs_key is None or self.has_key


@dataclass
class StreamResult:
    text: str
    provider: str
    input_tokens: int
    output_tokens: int
    duration: float
    estimated_usage: bool = False
    attempts: int = 1
    response: Any = field(default=None, repr=False)  # llm's own, for its logs.db (llmlog)


def _provider_of(model: Any) -> str:
    if getattr(model, "api_base", None):
        return "openai-compatible"
    module = type(model).__module__
    if module.startswith("llm.default_plugins.openai"):
        return "openai"
    return module.split(".")[0].removeprefix("llm_").replace("_", "-")


def _has_key(model: Any) -> bool:
    if getattr(model, "needs_key", None) is None:
        return True
    try:
        return bool(model.get_key())
    except Exception:
        return False


def list_models() -> list[ModelInfo]:
    import llm

    found = []
    for entry in llm.get_models_with_aliases():
        model = entry.model or entry.async_model
        found.append(
            ModelInfo(
                model_id=model.model_id,
                aliases=list(entry.aliases),
                provider=_provider_of(model),
                needs_key=getattr(model, "needs_key", None),
                has_key=_has_key(model),
                is_async=entry.async_model is not None,
            )
        )
    return found


def key_hint(needs_key: str | None) -> str:
    if not needs_key:
        return ""
    variable = _KEY_VARIABLES.get(needs_key)
    hint = f"llm keys set {needs_key}"
    return f"{hint} (or set {variable})" if variable else hint


def reaches_real_provider(model: ModelInfo) -> bool:
    """Whether a model writes with a real provider: one whose key is set, or one the writer
    pointed at an endpoint of their own (extra-openai-models.yaml: a local server or a
    proxy, with or without `api_key_name`) that is usable as configured. `llm` clears
    `needs_key` for such models, so a key check alone would call them offline."""
    if model.provider == "openai-compatible":
        return model.usable
    return bool(model.needs_key) and model.has_key


def has_real_provider(models: list[ModelInfo] | None = None) -> bool:
    """Whether a real provider is configured (among `models`, default: all of llm's), so
    the offline model is not what runs fall back to."""
    return any(reaches_real_provider(m) for m in (list_models() if models is None else models))


@dataclass
class Resolved:
    model_id: str
    provider: str
    async_model: Any | None
    sync_model: Any | None


@functools.lru_cache(maxsize=256)
def _resolve_cached(name: str) -> Resolved:
    import llm

    async_model = sync_model = None
    try:
        async_model = llm.get_async_model(name)
    except llm.UnknownModelError:
        try:
            sync_model = llm.get_model(name)
        except llm.UnknownModelError:
            raise ProviderError(
                f"unknown model {name!r}",
                code="unknown_model",
            ) from None
    model = async_model or sync_model
    _guard_key(model)
    _tune_client(model)
    return Resolved(model.model_id, _provider_of(model), async_model, sync_model)


def resolve(name: str) -> Resolved:
    """The model for an id or alias; unknown names fail with a pointer to `writeit models`."""
    try:
        return _resolve_cached(name)
    except ProviderError as error:
        error.hint = "run `writeit models` to see what is installed, or `llm install <plugin>`"
        raise


def forget_models() -> None:
    """Drop resolved models, e.g. after `llm keys set` or a new extra-openai-models.yaml."""
    from writeit import pricing

    _resolve_cached.cache_clear()
    pricing.forget()  # a model's identity (and so its price) may have changed


def _guard_key(model: Any) -> None:
    """Never send the default OpenAI key to a host the writer configured for another key."""
    if getattr(model, "api_base", None) and getattr(model, "needs_key", None) not in (
        None,
        "openai",
    ):
        model.key_env_var = None


# Models are resolved once and shared, so each stream's timeout travels with its task.
_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("writeit_timeout", default=120.0)


def _tune_client(model: Any) -> None:
    """`llm`'s openai client retries on its own and reads for 600 s; we want neither:
    `stream` is the one retry layer (it knows whether text was already shown)."""
    get_client = getattr(model, "get_client", None)
    if get_client is None or getattr(get_client, "_writeit", False):
        return

    def tuned(*args: Any, **kwargs: Any) -> Any:
        import httpx

        client = get_client(*args, **kwargs)
        limit = _timeout.get()
        return client.with_options(
            timeout=httpx.Timeout(limit, connect=min(10.0, limit)), max_retries=0
        )

    tuned._writeit = True  # type: ignore[attr-defined]
    model.get_client = tuned


# --- scrubbing credentials out of provider text ----------------------------------------

_MASK = "***"
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Authorization: Bearer xyz / "authorization": "xyz" (scheme and value go)
    re.compile(
        r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
        r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;})\]]+"
    ),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{4,}"),
    # api_key=..., "api-key": "...", x-api-key: ..., x-goog-api-key: ...
    re.compile(
        r"(?i)(\b(?:x-)?(?:goog-)?(?:api[_-]?key|access[_-]?token|secret[_-]?key)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;})\]]+"
    ),
    re.compile(r"(?i)([?&](?:key|token|access_token|api_key|apikey)=)[^&\s\"'#]+"),
    # Well-known key shapes: OpenAI/Anthropic sk-, Google AIza, Groq, Hugging Face, xAI...
    re.compile(r"\b(sk-|sk_|AIza|gsk_|hf_|xai-|pplx-|r8_)[A-Za-z0-9_\-]{8,}"),
)
_MIN_SECRET = 6  # shorter "secrets" would blank ordinary words


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with credentials masked: the given secrets wherever they appear, and
    anything shaped like one (Authorization values, `Bearer ...`, `sk-...`, `api_key=`).
    Provider errors often echo what was sent, and their text is stored and exported."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len)[::-1]:
        text = text.replace(secret, _MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + _MASK, text)
    return text


def secrets_of(model: Any) -> list[str]:
    """What a model sends that must never be echoed back: its key and header values."""
    found = [getattr(model, "key", None)]
    if getattr(model, "needs_key", None):
        with contextlib.suppress(Exception):  # no key configured: nothing to hide
            found.append(model.get_key())
    headers = getattr(model, "headers", None)
    if isinstance(headers, Mapping):
        found += [v for v in headers.values() if isinstance(v, str)]
    return [s for s in found if isinstance(s, str) and s]


# --- what a failure means and whether to try again -------------------------------------

_RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx


def _headers_of(error: BaseException) -> Mapping[str, str]:
    """The HTTP response headers an SDK error carries (openai, anthropic: `.response`)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def asked_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait: `retry-after-ms`, then `Retry-After` as
    seconds or an HTTP date; None when it did not say (or said something unreadable)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) / scale
        except ValueError:
            continue
        return max(seconds, 0.0) if not math.isnan(seconds) else None
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _by_status(status: int | None, name: str, message: str) -> ProviderError:
    if status == 408:
        return ProviderError(f"timed out (408): {message}", code="timeout", retryable=True)
    if status == 409:
        return ProviderError(f"conflict (409): {message}", code="conflict", retryable=True)
    if status == 429 or "RateLimit" in name:
        return ProviderError(f"rate limited (429): {message}", code="rate_limited", retryable=True)
    if status in (401, 403) or "Authentication" in name or "PermissionDenied" in name:
        return ProviderError(f"not authorised ({status}): {message}", code="auth")
    if status == 404 or "NotFound" in name:
        return ProviderError(f"not found ({status}): {message}", code="not_found")
    if status is not None and status >= 500:
        return ProviderError(f"server error ({status}): {message}", code="server", retryable=True)
    if status is not None:
        return ProviderError(f"request refused ({status}): {message}", code="bad_request")
    if "Connection" in name or "RemoteProtocol" in name or "ReadError" in name:
        return ProviderError(f"connection failed: {message}", code="connection", retryable=True)
    return ProviderError(f"{name}: {message}" if message else name, code="error")


def _follow_provider(failure: ProviderError, headers: Mapping[str, str]) -> ProviderError:
    """Let the provider's own word decide: `x-should-retry` over our status table, and a
    `Retry-After` we honour up to MAX_RETRY_AFTER (beyond it we stop and say so)."""
    said = headers.get("x-should-retry", "").strip().lower()
    if said in ("true", "false"):
        failure.retryable = said == "true"
        if not failure.retryable:
            failure.args = (f"{failure.args[0]} (the provider says not to retry)",)
    wait = asked_wait(headers)
    if wait is not None and failure.retryable:
        if wait > MAX_RETRY_AFTER:
            failure.retryable = False
            failure.args = (
                f"{failure.args[0]} (the provider asks to wait {wait:.0f} s before trying "
                f"again, longer than the {MAX_RETRY_AFTER:.0f} s WriteIt waits)",
            )
            failure.hint = "try again later, or pick another model"
        else:
            failure.retry_after = wait
    return failure


def classify(error: BaseException, secrets: Iterable[str | None] = ()) -> ProviderError:
    """The provider's own message (credentials scrubbed) with a code the engine and front
    ends can act on, and whether and when trying again may help."""
    if isinstance(error, ProviderError):
        return error
    import llm

    message = scrub(_message(error), secrets)
    if isinstance(error, llm.NeedsKeyException):
        return ProviderError(message, code="needs_key")
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return ProviderError(f"timed out: {message}", code="timeout", retryable=True)
    status = getattr(error, "status_code", None)
    failure = _by_status(status, type(error).__name__, message)
    return _follow_provider(failure, _headers_of(error))


def _message(error: BaseException) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return body["message"]
    return str(error).strip() or type(error).__name__


def _accepted_options(model: Any, options: dict[str, Any]) -> dict[str, Any]:
    fields = getattr(model.Options, "model_fields", {})
    return {k: v for k, v in options.items() if k in fields and v is not None}


class IdleTimeout:
    """`async with IdleTimeout(s) as idle:` raises TimeoutError after `s` seconds without
    `idle.touch()`. A touch only stores the time and the timer re-arms itself when it fires,
    so a fast stream pays no timer churn per chunk (asyncio.Timeout.reschedule costs a heap
    push and a cancelled handle per call, a third of the engine's time on an instant model)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False

    async def __aenter__(self) -> IdleTimeout:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._cancelling = self._task.cancelling()  # cancels handled before us are not ours
        self.last = self._loop.time()
        self._handle = self._loop.call_at(self.last + self.seconds, self._check)
        return self

    def touch(self) -> None:
        self.last = self._loop.time()

    def _check(self) -> None:
        due = self.last + self.seconds
        if self._loop.time() >= due:
            self.expired = True
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(due, self._check)

    async def __aexit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        self._handle.cancel()
        # As asyncio.Timeout does: once fired, take back our cancel whatever the body turned
        # it into (uncancel runs whenever expired), and call it a timeout only if no one
        # else cancelled the task meanwhile.
        if (
            self.expired
            and self._task.uncancel() <= self._cancelling
            and kind is asyncio.CancelledError
        ):
            raise TimeoutError(f"no data for {self.seconds:g} s") from error


async def _iterate_sync(
    model: Any,
    prompt: str,
    system: str | None,
    options: dict,
    idle: float,
    on_call: Callable[[Any], Any] = lambda _: None,
) -> AsyncIterator[tuple[str | None, Any]]:
    """Run a sync model in a daemon thread; chunks cross back through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            response = model.prompt(prompt, system=system or None, **options)
            loop.call_soon_threadsafe(queue.put_nowait, ("call", response))
            for chunk in response:
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
            loop.call_soon_threadsafe(queue.put_nowait, ("done", response))
        except BaseException as error:  # noqa: BLE001 - handed to the event loop
            loop.call_soon_threadsafe(queue.put_nowait, ("error", error))

    threading.Thread(target=work, daemon=True, name=f"writeit-{model.model_id}").start()
    try:
        while True:
            async with IdleTimeout(idle):
                kind, value = await queue.get()
            if kind == "chunk":
                yield value, None
            elif kind == "call":
                on_call(value)
            elif kind == "done":
                yield None, value
                return
            else:
                raise value
    finally:
        stop.set()


async def _stream_once(
    resolved: Resolved,
    prompt: str,
    system: str | None,
    options: dict[str, Any],
    on_delta: Callable[[str], Any],
    idle: float,
    parts: list[str],
    on_call: Callable[[Any], Any] = lambda _: None,
) -> StreamResult:
    started = time.monotonic()
    if resolved.async_model is not None:
        model = resolved.async_model
        response = model.prompt(prompt, system=system or None, **_accepted_options(model, options))
        on_call(response)
        async with IdleTimeout(idle) as watchdog:
            async for chunk in response:
                parts.append(chunk)
                on_delta(chunk)
                watchdog.touch()
        usage = await response.usage()
        input_tokens, output_tokens = usage.input, usage.output
    else:
        model = resolved.sync_model
        accepted = _accepted_options(model, options)
        response = None
        async for chunk, finished in _iterate_sync(model, prompt, system, accepted, idle, on_call):
            if chunk is not None:
                parts.append(chunk)
                on_delta(chunk)
            else:
                response = finished
        usage = response.usage() if response is not None else None
        input_tokens = usage.input if usage else None
        output_tokens = usage.output if usage else None
    text = "".join(parts)
    estimated = input_tokens is None or output_tokens is None
    return StreamResult(
        text=text,
        provider=resolved.provider,
        input_tokens=input_tokens if input_tokens is not None else _estimate(prompt, system),
        output_tokens=output_tokens if output_tokens is not None else _estimate(text),
        duration=time.monotonic() - started,
        estimated_usage=estimated,
        response=response,
    )


def _estimate(*texts: str | None) -> int:
    """About four characters a token: only for models that report no usage."""
    return sum(len(t or "") for t in texts) // 4


async def _sleep(seconds: float) -> None:
    """The pause between attempts (a seam for tests that count the waits)."""
    await asyncio.sleep(seconds)


async def stream(
    name: str,
    prompt: str,
    *,
    system: str | None = None,
    options: dict[str, Any] | None = None,
    on_delta: Callable[[str], Any] = lambda _: None,
    on_call: Callable[[Any], Any] = lambda _: None,
    timeout: float = 120.0,
    retries: int = 2,
    backoff: float = 0.5,
) -> StreamResult:
    """Stream one answer. Retries (bounded, with backoff) only before the first token,
    so a retry never duplicates text the writer already saw, and only when the provider
    lets us: `x-should-retry`, `Retry-After` and the status decide (see `classify`)."""
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

    _timeout.set(timeout)
    try:
        resolved = resolve(name)
    except Exception as error:
        raise classify(error) from error
    parts: list[str] = []  # stays empty until the first token: retrying is safe till then
    backoff_wait = wait_exponential(multiplier=backoff, max=10)

    def retryable(error: BaseException) -> bool:
        return not parts and classify(error).retryable

    def wait(state: Any) -> float:
        asked = classify(state.outcome.exception()).retry_after
        return asked if asked is not None else backoff_wait(state)

    attempts = 0
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait,
            retry=retry_if_exception(retryable),
            sleep=_sleep,
            reraise=True,
        ):
            with attempt:
                attempts += 1
                result = await _stream_once(
                    resolved, prompt, system, options or {}, on_delta, timeout, parts, on_call
                )
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        failure = classify(error, secrets=_secrets(resolved))
        if attempts > 1:
            failure.args = (f"{failure.args[0]} (after {attempts} attempts)",)
        raise failure from error
    result.attempts = attempts
    return result


def _secrets(resolved: Resolved) -> list[str]:
    return [s for m in (resolved.async_model, resolved.sync_model) if m for s in secrets_of(m)]


def check_model(name: str) -> None:
    """Fail before a run starts when a model is unknown or has no key."""
    resolved = resolve(name)
    model = resolved.async_model or resolved.sync_model
    needs = getattr(model, "needs_key", None)
    if needs and not _has_key(model):
        raise InvalidInput(
            f"model {name!r} needs an API key for {needs}",
            hint=f"{key_hint(needs)}; or run offline with --model {OFFLINE_MODEL}",
        )
