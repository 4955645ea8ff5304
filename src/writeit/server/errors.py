"""JSON errors with a stable code: a client's mistake is a 4xx, never a 500.

Every error the server sends has the shape ``{"error": {"code", "message", "hint"}}``
(plus ``details`` for a body that failed validation), whether it comes from the guard
middleware, FastAPI's own validation, an unknown route or the engine.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from writeit.errors import (
    AlreadyRun,
    BudgetReached,
    InvalidAction,
    InvalidInput,
    InvalidTransition,
    StepRunning,
    TooManyRuns,
    UnknownResponse,
    WriteItError,
)

log = logging.getLogger("writeit.server")


class ApiError(WriteItError):
    """An error the server raises itself, with its HTTP status and stable code."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, hint: str = "", *, code: str | None = None) -> None:
        super().__init__(message, hint)
        if code:
            self.code = code


class NotFound(ApiError):
    status, code = 404, "not_found"


class InvalidState(ApiError):
    """The request is well formed but the run's state does not allow it now."""

    status, code = 409, "invalid_state"


class Unprocessable(ApiError):
    """The body is well formed but names something that does not exist or fit."""

    status, code = 422, "invalid_request"


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str = ""
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """What every 4xx (and the rare 5xx) carries; documented in the OpenAPI schema."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Bad request (malformed JSON, Host refused, an export path outside the exports "
        "folder or one the file system refuses)",
        401: "Missing or wrong bearer token",
        404: "Unknown run, step, pipeline or response",
        409: "The run's state forbids this now (a step is streaming, a forbidden transition), "
        "or the export file exists (code export_exists)",
        413: "Body larger than the limit",
        422: "Body or parameters invalid",
    }.items()
}


def error_response(
    status: int,
    code: str,
    message: str,
    hint: str = "",
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def classify(error: WriteItError) -> tuple[int, str]:
    """HTTP status and stable code for an engine, store or config error."""
    from writeit.config import ConfigError
    from writeit.events import CorruptHistory
    from writeit.export import ExportError, ExportExists
    from writeit.providers import ProviderError
    from writeit.store import Conflict, StoreError, UnknownRun

    if isinstance(error, ApiError):
        return error.status, error.code
    if isinstance(error, ExportExists):
        return 409, error.code
    if isinstance(error, ExportError):
        return 400, error.code
    if isinstance(error, UnknownRun):
        return 404, "unknown_run"
    if isinstance(error, TooManyRuns):
        return 409, "too_many_runs"
    if isinstance(error, BudgetReached):
        return 409, "budget_reached"
    if isinstance(error, StepRunning):
        return 409, "step_running"
    if isinstance(error, AlreadyRun):
        return 409, "already_executed"
    if isinstance(error, UnknownResponse):
        return 422, "unknown_response"
    if isinstance(error, Conflict):
        return 409, "conflict"
    if isinstance(error, InvalidTransition):
        return 409, "invalid_transition"
    if isinstance(error, ConfigError):
        return 422, "invalid_config"
    if isinstance(error, ProviderError):
        return 422, error.code if error.code != "error" else "model_error"
    if isinstance(error, InvalidAction):
        return 409, "invalid_state"
    if isinstance(error, InvalidInput):
        return 422, "invalid_request"
    if isinstance(error, CorruptHistory):
        return 500, "corrupt_history"
    if isinstance(error, StoreError):
        return 503, "store_unavailable"
    return 400, "bad_request"


def message_of(error: BaseException) -> str:
    """The message without the hint line that WriteItError.__str__ appends."""
    return str(error.args[0]) if error.args else str(error)


@contextlib.contextmanager
def plain_errors_as(kind: type[ApiError]) -> Iterator[None]:
    """Give the engine's plain WriteItErrors a status that fits the route.

    The engine raises the base class for many refusals ("no choice yet", "cannot be
    skipped", "is required"); which status fits depends on what was asked, so each
    route says: 409 for acting on a run, 422 for starting one.
    """
    try:
        yield
    except WriteItError as error:
        if type(error) is not WriteItError:
            raise
        raise kind(message_of(error), error.hint) from error


# --- handlers ----------------------------------------------------------------------------


async def on_writeit_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, WriteItError)
    status, code = classify(error)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error)
    details = None
    problems = getattr(error, "problems", None)
    if problems:
        details = [{"message": str(p)} for p in problems]
    return error_response(status, code, message_of(error), error.hint, details=details)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(
            400, "invalid_json", "the body is not valid JSON", "send a JSON object"
        )
    details = [
        {"loc": [str(part) for part in p.get("loc", ())], "message": str(p.get("msg", ""))}
        for p in problems
    ]
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(first["loc"])
    message = f"{where}: {first['message']}" if where else first["message"]
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(
        422, "invalid_request", message, "see /docs for the expected shape", details=details
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    message = error.detail if isinstance(error.detail, str) else "request refused"
    if error.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    return error_response(error.status_code, code, message, headers=getattr(error, "headers", None))


async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return error_response(
        500, "internal_error", "the server failed unexpectedly", "see the server's log"
    )
