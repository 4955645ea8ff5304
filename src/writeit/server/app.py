"""The FastAPI app over one engine, and `writeit serve`.

Local by default: it binds to 127.0.0.1, every /api request needs the workspace's
bearer token, the Host header must be a loopback name (or configured), a browser page
from another site is refused (Origin), there is no CORS, bodies are bounded, the token
never appears in a log line and every error is JSON with a stable code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from writeit import __version__
from writeit.errors import WriteItError
from writeit.server import errors, routes, stream
from writeit.server.security import MAX_BODY, Guard, exposed, redact_tokens
from writeit.server.state import STREAM_QUEUE, ServerState
from writeit.workspaces import Workspace

if TYPE_CHECKING:
    from writeit.engine import Engine

ALLOWED_HOSTS_ENV = "WRITEIT_ALLOWED_HOSTS"  # comma-separated extra Host names

DESCRIPTION = """\
WriteIt's engine over HTTP. Every `/api` route needs `Authorization: Bearer <token>`
(`writeit serve --show-token`). Errors are `{"error": {"code", "message", "hint"}}`.

Tokens stream over the WebSocket `/api/runs/{id}/stream` (the token may be passed as
`?token=` there, and only there; pages from other sites are refused): first `{"type": "state", "run": ...}`, then one message per update
(`delta`, `response_done`, `step_done`, `run_status`, ...). A `state` message at any
time replaces what the client has (after a resync or on `{"type": "state"}`).

Actions answer with the run as it now stands (`"texts": "latest"`): each step lists its
responses from its latest attempt on (from the chosen one, if older), `responses_from`
giving the index in the run's own list where a step's list starts (`user_selection`
keeps the run's index), and no response repeats its step's prompt: an answer does not
grow with history. `GET /api/runs/{id}` has every response (`?texts=latest`: the
short form).
"""


def create_app(
    workspace: Workspace | None = None,
    *,
    token: str | None = None,
    engine: Engine | None = None,
    allowed_hosts: list[str] | None = None,
    max_body: int = MAX_BODY,
    stream_queue: int = STREAM_QUEUE,
) -> FastAPI:
    """An app over `engine` (or one made for `workspace` on startup), closed on shutdown.

    `token` defaults to the workspace token (`writeit init`); `allowed_hosts` adds Host
    names to the loopback ones; `stream_queue` bounds each WebSocket client's backlog.
    """
    state = ServerState(workspace, token=token, engine=engine, stream_queue=stream_queue)
    _redact_server_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.token  # noqa: B018 - create token and engine now, not on the first request
        state.engine  # noqa: B018
        _quiet_denial_noise()
        _redact_server_logs()  # again: a logging set-up after create_app may replace ours
        yield
        await state.close()

    app = FastAPI(
        title="WriteIt",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.writeit = state
    app.add_middleware(
        Guard, token=lambda: state.token, allowed_hosts=allowed_hosts or [], max_body=max_body
    )
    app.add_exception_handler(WriteItError, errors.on_writeit_error)
    app.add_exception_handler(RequestValidationError, errors.on_validation_error)
    app.add_exception_handler(HTTPException, errors.on_http_error)
    app.add_exception_handler(Exception, errors.on_unexpected)

    @app.get("/health", summary="Liveness and version; needs no token")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(routes.router)
    app.include_router(stream.router)
    return app


class _DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio logs an error after every WebSocket refused with an
    HTTP response (a 401 or 404 we meant to send); every route of ours either accepts or
    answers, so that line is only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def _quiet_denial_noise() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialNoise) for f in logger.filters):
        logger.addFilter(_DenialNoise())


class _RedactTokens(logging.Filter):
    """Masks ``token=`` query values in uvicorn's log lines. The guard already strips the
    token from the request before anything logs it; this keeps a request that never got
    that far (or a later change) from writing the token to a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact_tokens(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def _redact_server_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def configured_hosts(extra: list[str] | None = None) -> list[str]:
    """Host names accepted beside loopback: --allow-host, preferences, then the variable."""
    from writeit.workspaces import load_preferences

    names = [*(extra or []), *load_preferences().allowed_hosts]
    names += os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    return [h.strip() for h in names if h.strip()]


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    workspace: str | None = None,
    allow_hosts: list[str] | None = None,
) -> None:
    """`writeit serve`: say where it listens and where the token is, then serve."""
    import uvicorn

    from writeit.workspaces import ensure_token, get_workspace, token_path

    chosen = get_workspace(workspace)
    ensure_token()
    allowed = configured_hosts(allow_hosts)
    exposed(host, allowed)
    if host in ("0.0.0.0", "::") and not allowed:  # a wildcard names no host
        print(
            "note: only loopback Host names are accepted; add others with "
            "--allow-host NAME (or `writeit config set allowed_hosts [name1, name2]`)",
            file=sys.stderr,
        )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    print(f"WriteIt {__version__} serving workspace {chosen.name!r} on {url} (docs: {url}/docs)")
    print(f"Bearer token: in {token_path()}; print it with `writeit serve --show-token`")
    app = create_app(chosen, allowed_hosts=allowed)
    uvicorn.run(app, host=host, port=port, log_level="info", ws_max_size=1 << 16)
