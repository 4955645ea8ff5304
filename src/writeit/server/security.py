"""The guard in front of every route: Host and Origin headers, bearer token, body size.

It is plain ASGI middleware rather than per-route dependencies so that nothing added
later can forget it: every HTTP request and WebSocket handshake passes through it, and
everything but liveness and the API docs needs the token (deny by default).

- Host: a browser page on evil.example can point its own DNS name at 127.0.0.1 (DNS
  rebinding) and then talk to us as a "same-origin" site; refusing any Host header that
  is not a loopback name (or one the user configured) defeats that.
- Origin: a page on another site that learnt the token could still open a WebSocket
  (browsers let any page do that, with ``?token=``); a browser always says which page
  is asking, so any Origin but our own loopback ones (or configured hosts) is refused.
  Clients that are not browsers send no Origin and are not affected.
- Token: compared in constant time; WebSocket clients in browsers cannot set headers,
  so they may pass it as ``?token=``. Plain HTTP must use the header (a token in a URL
  ends up in histories and logs). A query token is removed from the scope before any
  check, so no log line, refused or not, ever holds it; `redact_tokens` is the second
  line of defence for log records.
- Body: a declared Content-Length over the limit is refused before a byte of the body
  is read; a body without one is counted while reading and refused as soon as it
  passes the limit (uvicorn discards the rest); then it is replayed to the app, so no
  route ever sees more than the limit.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from writeit.server.errors import error_response

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
MAX_BODY = 1 << 20  # 1 MiB: a whole source document fits; a runaway upload does not
_QUERY_TOKEN = re.compile(r"(?i)([?&;](?:token|access_token)=)[^&;\s\"']*")


def redact_tokens(text: str) -> str:
    """`text` with every ``token=`` query value masked (for log lines)."""
    return _QUERY_TOKEN.sub(r"\1***", text) if "token=" in text.lower() else text


def exposed(host: str, allowed: list[str]) -> None:
    """Warn on stderr when a server listens beyond this machine, and accept its own
    name as a Host (a wildcard address names no host)."""
    if is_loopback(host):
        return
    print(
        f"warning: listening on {host} exposes WriteIt to other machines; anyone who "
        "can reach it and has the token can read and drive your runs",
        file=sys.stderr,
    )
    if host not in ("0.0.0.0", "::", ""):
        allowed.append(host)


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str | None:
    """The name part of a Host header ("[::1]:8000" -> "[::1]"); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, _, port = value.partition(":")
        rest = f":{port}" if port or value.endswith(":") else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return name or None


def normalise_host(host: str) -> str:
    """A configured host as Host headers spell it (IPv6 literals in brackets)."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint


class Guard:
    """ASGI middleware checking Host, token and body size before any route runs."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Callable[[], str],
        allowed_hosts: Iterable[str] = (),
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = LOOPBACK_NAMES | {normalise_host(h) for h in allowed_hosts if h}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query_token = self._pop_query_token(scope)  # first: no log line may carry it
        try:
            self.check_host(headers)
            self.check_origin(headers)
            if scope["path"] not in PUBLIC_PATHS:
                self.check_token(scope, headers, query_token)
            if scope["type"] == "http":
                receive = await self.read_body(headers, receive)
        except Refusal as refusal:
            await self.refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)

    def check_host(self, headers: Headers) -> None:
        raw = headers.get("host")
        name = host_name(raw) if raw else None
        if name is None or name not in self.allowed_hosts:
            raise Refusal(
                400,
                "host_not_allowed",
                f"Host {raw!r} is not allowed" if raw else "the request has no Host header",
                "use http://127.0.0.1 or http://localhost; other names must be configured "
                "(writeit serve --allow-host NAME)",
            )

    def check_origin(self, headers: Headers) -> None:
        """Browsers name the page behind every WebSocket (and cross-site request): only
        pages served from this machine or a configured host may talk to us."""
        origin = headers.get("origin")
        if origin is None:
            return
        parts = urlsplit(origin.strip().lower())
        name = host_name(parts.netloc) if parts.scheme in ("http", "https") else None
        if name is None or name not in self.allowed_hosts:
            raise Refusal(
                403,
                "origin_not_allowed",
                f"requests from pages at {origin!r} are not allowed",
                "only pages served from this machine (http://localhost, http://127.0.0.1) "
                "or a configured host may use WriteIt (writeit serve --allow-host NAME)",
            )

    def check_token(self, scope: Scope, headers: Headers, query_token: str = "") -> None:
        given = ""
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = credentials.strip()
        elif scope["type"] == "websocket":
            given = query_token
        elif query_token:
            raise Refusal(
                401,
                "unauthorized",
                "the token must not be sent in the URL of an HTTP request",
                "send `Authorization: Bearer <token>`; `?token=` is only for WebSockets",
            )
        if not given:
            raise Refusal(
                401,
                "unauthorized",
                "this endpoint needs the bearer token",
                "send `Authorization: Bearer <token>`; print it with `writeit serve --show-token`",
            )
        if not secrets.compare_digest(given.encode(), self.token().encode()):
            raise Refusal(
                401,
                "unauthorized",
                "the bearer token is wrong",
                "print the right one with `writeit serve --show-token`",
            )

    @staticmethod
    def _pop_query_token(scope: Scope) -> str:
        """The ``token`` query parameter, removed from the scope so it is never logged."""
        query = scope.get("query_string", b"").decode("latin-1")
        if "token" not in query:
            return ""
        pairs = parse_qsl(query, keep_blank_values=True)
        tokens = [value for key, value in pairs if key == "token"]
        if tokens:
            kept = [(key, value) for key, value in pairs if key != "token"]
            scope["query_string"] = urlencode(kept).encode("latin-1")
        return tokens[-1] if tokens else ""

    async def read_body(self, headers: Headers, receive: Receive) -> Receive:
        """Read the whole body (at most `max_body` bytes) and hand it on in one message.
        Too large is refused at once: before reading when Content-Length says so (a client
        waiting for `100 Continue` then never sends it), else as soon as the count passes."""
        declared = headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            raise Refusal(400, "bad_request", "Content-Length is not a number")
        if declared is not None and int(declared) > self.max_body:
            raise self._too_large()
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see the disconnect
            body += message.get("body", b"")
            if len(body) > self.max_body:
                raise self._too_large()  # uvicorn reads and drops whatever still comes
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return replay

    def _too_large(self) -> Refusal:
        return Refusal(
            413,
            "body_too_large",
            f"the body is larger than {self.max_body} bytes",
            f"requests are limited to {self.max_body // 1024} KiB; send less",
        )

    @staticmethod
    async def refuse(scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        response = error_response(
            refusal.status, refusal.code, refusal.message, refusal.hint, headers=headers
        )
        denials = scope.get("extensions", {}).get("websocket.http.response") is not None
        if scope["type"] == "websocket" and not denials:
            await send({"type": "websocket.close", "code": 1008})  # no way to say more
            return
        await response(scope, receive, send)
