"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests.

It runs in a background thread on a real socket (ephemeral port), so the real
``llm`` -> ``openai`` -> ``httpx`` code path is exercised: connection set-up,
SSE parsing, status handling, retries and timeouts.

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``), streaming
(SSE with chunked transfer encoding, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``) or not, and
``GET /v1/models``.

What happens is chosen by the requested model name (``model_name`` in llm's
``extra-openai-models.yaml``). A ``-suffix`` is allowed and keeps the
behaviour, so ``ok-a`` and ``ok-b`` are two distinguishable ``ok`` models.

``ok``        deterministic reply mentioning the last user message's first words
``slow``      like ``ok``, waiting ``slow_delay`` seconds before each chunk
``httpNNN``   status NNN with an OpenAI-style error body; ``http429`` carries
              ``Retry-After`` (``retry_after``, "0" by default, and ``retry-after-ms``
              if ``retry_after_ms`` is set), ``http401`` the ``invalid_api_key`` error;
              every error also carries the headers in ``error_headers``
``leakNNN``   status NNN whose error message echoes the credentials it was sent (the
              Authorization header, ``api_key=<key>`` and the bare key), as careless
              providers and proxies do
``flakyNNN``  status NNN for the first ``flaky_failures`` requests to that name, then
              ``ok``; ``flakyNNN-3`` fails the first 3 instead
``timeout``   reads the request and sends nothing until the server stops (or
              ``hang_seconds``), then closes: the client must time out
``stall``     sends the headers and ``drop_after_chunks`` chunks, then nothing until
              the server stops: a read timeout in the middle of a stream
``drop``      sends ``drop_after_chunks`` chunks, then closes the connection without
              finishing the chunked body or sending ``[DONE]``
anything else 404 ``model_not_found``

Every request is recorded in :attr:`OpenAIServer.requests` and counted per
requested model name in :attr:`OpenAIServer.counts`.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

# llm model id -> server behaviour, as written by OpenAIServer.register_llm_models().
LLM_MODELS: dict[str, str] = {
    "oai-ok": "ok",
    "oai-500": "http500",
    "oai-429": "http429",
    "oai-401": "http401",
    "oai-timeout": "timeout",
    "oai-drop": "drop",
    "oai-slow": "slow",
    "oai-flaky": "flaky500",
    "oai-stall": "stall",
}

ERROR_BODIES: dict[int, dict[str, Any]] = {
    400: {"message": "Bad request", "type": "invalid_request_error", "code": None},
    401: {
        "message": "Incorrect API key provided: DUMMY_KEY. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    },
    403: {"message": "Forbidden", "type": "invalid_request_error", "code": None},
    404: {"message": "Not found", "type": "invalid_request_error", "code": None},
    429: {
        "message": "Rate limit reached for requests. Please try again in 1s.",
        "type": "requests",
        "code": "rate_limit_exceeded",
    },
    500: {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "code": None,
    },
    503: {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error",
        "code": None,
    },
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    model: str | None
    body: dict[str, Any] | None
    headers: dict[str, str]  # lower-cased names

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])


def message_text(content: Any) -> str:
    """The text of a chat message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def reply_for(model: str, messages: list[dict[str, Any]]) -> str:
    """The deterministic reply of an ``ok``-like model to ``messages``."""
    last_user = next(
        (message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    first_words = " ".join(last_user.split()[:6])
    return (
        f"Reply from {model}: you said \u201c{first_words}\u201d. "
        "This loopback server answers deterministically, one small chunk at a time, "
        "so tests can check streaming, usage and faults without a network.\n\n"
        "It ends with a short second paragraph."
    )


def _split_chunks(text: str, words_per_chunk: int) -> list[str]:
    tokens = re.findall(r"\S+\s*|\s+", text)
    return [
        "".join(tokens[i : i + words_per_chunk]) for i in range(0, len(tokens), words_per_chunk)
    ]


def _word_count(messages: Iterable[dict[str, Any]]) -> int:
    return sum(len(message_text(m.get("content")).split()) for m in messages)


@dataclass
class _Behaviour:
    kind: str  # ok, slow, error, leak, flaky, timeout, stall, drop, unknown
    status: int = 200
    arg: int | None = None


def parse_behaviour(model: str) -> _Behaviour:
    base, _, suffix = model.partition("-")
    arg = int(suffix) if suffix.isdigit() else None
    if base in ("ok", "slow", "timeout", "stall", "drop"):
        return _Behaviour(base, arg=arg)
    if m := re.fullmatch(r"http(\d{3})", base):
        return _Behaviour("error", status=int(m.group(1)))
    if m := re.fullmatch(r"leak(\d{3})", base):
        return _Behaviour("leak", status=int(m.group(1)))
    if m := re.fullmatch(r"flaky(\d{3})", base):
        return _Behaviour("flaky", status=int(m.group(1)), arg=arg)
    return _Behaviour("unknown", status=404)


@dataclass
class OpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1. ``start()``/``stop()`` or ``with``.

    The public attributes below can be changed while it runs.
    """

    host: str = "127.0.0.1"
    port: int = 0
    slow_delay: float = 0.02
    hang_seconds: float = 60.0
    drop_after_chunks: int = 2
    flaky_failures: int = 1
    words_per_chunk: int = 3
    retry_after: str | None = "0"
    retry_after_ms: str | None = None
    error_headers: dict[str, str] = field(default_factory=dict)

    requests: list[RecordedRequest] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._llm_models: dict[str, dict[str, Any]] = {}
        self._llm_user_dir: Path | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> OpenAIServer:
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake every hanging handler and close open connections."""
        self._stopping.set()
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The ``api_base`` for clients: ``http://127.0.0.1:<port>/v1``."""
        return f"{self.base_url}/v1"

    # -- assertions --------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.counts.clear()

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """Recorded requests for a model *name* or for an llm model id registered here."""
        name = self._llm_models.get(model, {}).get("model_name", model)
        with self._lock:
            return [r for r in self.requests if r.model == name]

    def count(self, model: str) -> int:
        """Requests received for a model *name* or llm model id registered here."""
        return len(self.requests_for(model))

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of every request, in order."""
        with self._lock:
            return [r.authorization for r in self.requests]

    # -- llm configuration -------------------------------------------------

    def register_llm_models(
        self, llm_user_dir: str | Path, models: dict[str, str] | None = None
    ) -> None:
        """Write ``extra-openai-models.yaml`` in ``llm_user_dir`` pointing at this server.

        ``models`` maps llm model id -> model name (behaviour); default :data:`LLM_MODELS`.
        """
        self._llm_user_dir = Path(llm_user_dir)
        self._llm_models = {
            model_id: {"model_id": model_id, "model_name": name, "api_base": self.url}
            for model_id, name in (models or LLM_MODELS).items()
        }
        self._write_llm_yaml()

    def add_llm_model(self, model_id: str, model_name: str, **extra: Any) -> None:
        """Add one model to the YAML (extra keys such as ``api_key_name`` go in verbatim)."""
        if self._llm_user_dir is None:
            raise RuntimeError("call register_llm_models() first")
        self._llm_models[model_id] = {
            "model_id": model_id,
            "model_name": model_name,
            "api_base": self.url,
            **extra,
        }
        self._write_llm_yaml()

    def _write_llm_yaml(self) -> None:
        assert self._llm_user_dir is not None
        self._llm_user_dir.mkdir(parents=True, exist_ok=True)
        path = self._llm_user_dir / "extra-openai-models.yaml"
        path.write_text(yaml.safe_dump(list(self._llm_models.values()), sort_keys=False))

    # -- used by the handler -------------------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            if request.model is not None:
                self.counts[request.model] += 1
                return self.counts[request.model]
            return 0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: OpenAIServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are the point of several behaviours.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 30  # idle keep-alive connections give up eventually

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> OpenAIServer:
        return self.server.owner

    # -- routing -----------------------------------------------------------

    def do_GET(self) -> None:
        self._record_request(None)
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            names = sorted({"ok", "slow", "timeout", "stall", "drop", "http500", "http429"})
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "writeit-tests"}
                for name in names
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, message=f"Unknown path {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._record_request(None)
            self._send_error(400, message="Request body is not valid JSON")
            return
        if not isinstance(body, dict):
            body = {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        nth = self._record_request(model, body)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(404, message=f"Unknown path {self.path}")
            return
        if model is None:
            self._send_error(400, message="you must provide a model parameter")
            return
        self._chat(model, body, nth)

    def _record_request(self, model: str | None, body: dict[str, Any] | None = None) -> int:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return self.owner._record(RecordedRequest(self.command, self.path, model, body, headers))

    # -- chat --------------------------------------------------------------

    def _chat(self, model: str, body: dict[str, Any], nth: int) -> None:
        owner = self.owner
        behaviour = parse_behaviour(model)
        kind = behaviour.kind
        if kind == "unknown":
            self._send_error(
                404,
                message=f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
            return
        if kind == "error":
            self._send_error(behaviour.status)
            return
        if kind == "leak":
            self._send_error(behaviour.status, message=self._leaked_credentials())
            return
        if kind == "flaky":
            failures = behaviour.arg if behaviour.arg is not None else owner.flaky_failures
            if nth <= failures:
                self._send_error(behaviour.status)
                return
        if kind == "timeout":
            owner._stopping.wait(owner.hang_seconds)
            self.close_connection = True
            return

        messages = body.get("messages") or []
        reply = reply_for(model, messages)
        usage = {
            "prompt_tokens": _word_count(messages),
            "completion_tokens": len(reply.split()),
            "total_tokens": _word_count(messages) + len(reply.split()),
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(model, kind, reply, usage if include_usage else None)
        else:
            self._send_json(200, _completion(model, reply, usage))

    def _leaked_credentials(self) -> str:
        authorization = self.headers.get("authorization", "")
        key = authorization.partition(" ")[2]
        return (
            f"Invalid request (Authorization: {authorization}). The key {key} was "
            f"rejected for api_key={key}; retry with a valid key."
        )

    def _stream(self, model: str, kind: str, reply: str, usage: dict[str, int] | None) -> None:
        owner = self.owner
        chunks = _split_chunks(reply, owner.words_per_chunk)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        completion_id = f"chatcmpl-{model}-{int(time.time() * 1000)}"
        try:
            self._event(_chunk(completion_id, model, {"role": "assistant", "content": ""}))
            for sent, text in enumerate(chunks):
                if kind in ("drop", "stall") and sent == owner.drop_after_chunks:
                    if kind == "stall":
                        owner._stopping.wait(owner.hang_seconds)
                    self._abort()
                    return
                if kind == "slow" and owner._stopping.wait(owner.slow_delay):
                    self._abort()
                    return
                self._event(_chunk(completion_id, model, {"content": text}))
            self._event(_chunk(completion_id, model, {}, finish_reason="stop"))
            if usage is not None:
                final = _chunk(completion_id, model, None)
                final["usage"] = usage
                self._event(final)
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")  # end of the chunked body
        except OSError:  # the client went away (timed out or cancelled)
            self.close_connection = True

    def _event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the socket mid-body: the client sees an incomplete chunked read."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- plain responses ------------------------------------------------------

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _send_error(self, status: int, *, message: str | None = None, code: str | None = None):
        error = dict(
            ERROR_BODIES.get(
                status, {"message": f"HTTP {status}", "type": "server_error", "code": None}
            )
        )
        if message is not None:
            error["message"] = message
        if code is not None:
            error["code"] = code
        error.setdefault("param", None)
        headers = dict(self.owner.error_headers)
        if status == 429:
            if self.owner.retry_after is not None:
                headers["Retry-After"] = self.owner.retry_after
            if self.owner.retry_after_ms is not None:
                headers["retry-after-ms"] = self.owner.retry_after_ms
        self._send_json(status, {"error": error}, headers)


def _chunk(
    completion_id: str, model: str, delta: dict[str, Any] | None, finish_reason: str | None = None
) -> dict[str, Any]:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }


def _completion(model: str, reply: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{model}-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def limit_client(model: Any, *, timeout: float, max_retries: int) -> Any:
    """Make an ``llm`` OpenAI model's client use ``timeout`` and ``max_retries``.

    Wraps the instance's ``get_client`` (what the product does too); returns the model.
    """
    original = model.get_client

    def get_client(key: str | None, *, async_: bool = False) -> Any:
        return original(key, async_=async_).with_options(timeout=timeout, max_retries=max_retries)

    model.get_client = get_client
    return model
