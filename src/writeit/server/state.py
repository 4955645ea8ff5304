"""What one app holds: its workspace, token and engine, plus how runs are shown as JSON.

The engine is created lazily (on startup, or on the first request when an ASGI test
client runs no lifespan) and closed on shutdown; it is the only thing that changes runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from starlette.requests import HTTPConnection

from writeit.models import BLIND_FIELDS, PipelineRun, WriteItError, blind_view
from writeit.server.errors import message_of
from writeit.store import UnknownRun
from writeit.workspaces import Workspace, ensure_token, get_workspace

if TYPE_CHECKING:
    from writeit.engine import Engine

log = logging.getLogger("writeit.server")

STREAM_QUEUE = 1024  # updates buffered per WebSocket client before it gets a resync
SHUTDOWN_GRACE = 5.0  # seconds background work may take to wind down after engine.close()


class ServerState:
    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        token: str | None = None,
        engine: Engine | None = None,
        stream_queue: int = STREAM_QUEUE,
    ) -> None:
        self._workspace = workspace or (engine.workspace if engine else None)
        self._token = token
        self._engine = engine
        self.stream_queue = stream_queue
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = get_workspace()
        return self._workspace

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = ensure_token()
        return self._token

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from writeit.engine import Engine

            self._engine = Engine(self.workspace, front_end="server")
        return self._engine

    async def close(self) -> None:
        """Stop streams with their text saved (runs paused), then let background work end."""
        if self._engine is not None:
            await self._engine.close()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=SHUTDOWN_GRACE)

    # --- runs --------------------------------------------------------------------------

    def run_id(self, given: str) -> str:
        """The full id of a live run from an id or unambiguous prefix; deleted ones are gone."""
        engine = self.engine
        run_id = engine.resolve(given.lower())
        if engine.store.summary(run_id).deleted:
            raise UnknownRun(f"run {run_id[:8]} was deleted", hint="see GET /api/runs")
        return run_id

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a background task until it ends; its failure is logged, not lost."""
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, WriteItError):
            log.warning("background work ended: %s", message_of(error))
        elif error is not None:
            log.error("background work failed", exc_info=error)

    async def launch(
        self, run_id: str, work: Coroutine[Any, Any, PipelineRun]
    ) -> tuple[PipelineRun, bool]:
        """Start `work` (which asks models) and answer as soon as its first response is out.

        Returns the run and whether it is still generating. An error before anything
        started (a busy run, a bad choice) is raised here, so the client gets its 4xx;
        a model failing later shows up as a failed response on the stream, not as an
        HTTP error. When the work branches, the run returned is the new branch.
        """
        engine = self.engine
        watcher = engine.subscribe(None, maxsize=256)
        older = set(engine.store.children(run_id))
        task = asyncio.create_task(work)
        started = asyncio.create_task(_first_start(engine, watcher, run_id, older))
        try:
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.close()
            started.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await started
            if not task.done():
                self.keep(task)  # it goes on (even if this request was cancelled)
        if task.done():
            return task.result(), False
        return await engine.fetch(started.result() if _ok(started) else run_id), True


def _ok(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _first_start(engine: Engine, watcher: Any, run_id: str, older: set[str]) -> str:
    """The run (this one or a branch of it) once one of its responses is streaming."""
    runs = {run_id}
    async for update in watcher:
        if update.kind == "forked" and update.run_id in runs:
            runs.add(update.data["child"])
        elif update.kind == "response_started" and update.run_id in runs:
            return update.run_id
        elif update.kind == "resync":  # missed updates: ask the store for new branches
            runs.update(set(engine.store.children(run_id)) - older)
        for candidate in runs:
            if engine.streaming(candidate):
                return candidate
    raise AssertionError("a subscription never ends")  # pragma: no cover


def get_state(connection: HTTPConnection) -> ServerState:
    """FastAPI dependency: the app's state (works for requests and WebSockets)."""
    return connection.app.state.writeit


def request_state(request: Request) -> ServerState:
    return get_state(request)


# --- runs as JSON --------------------------------------------------------------------------


def run_json(
    engine: Engine,
    run: PipelineRun,
    *,
    branched_from: str | None = None,
    reveal: bool = False,
) -> dict[str, Any]:
    """The run as docs/data-model.md models it, plus what a client needs to act on it next.

    Extras: ``candidates`` (the current step's latest candidates with the 0-based
    ``index`` that select/merge take), ``streaming`` (responses generating now in this
    server), ``hidden`` (blind review: the current step's models are left out until the
    writer decides, unless `reveal`) and ``branched_from`` when the request created a new
    branch.
    """
    exclude = _excluded(run, latest=False, reveal=reveal)
    shown = run if reveal else blind_view(run)
    return shown.model_dump(mode="json", exclude=exclude) | _extras(
        engine, run, branched_from, reveal
    )


def run_response(
    engine: Engine,
    run: PipelineRun,
    *,
    branched_from: str | None = None,
    status_code: int = 200,
    texts: str = "all",
    reveal: bool = False,
) -> Response:
    """`run_json` as a response, written by pydantic's own serialiser: a long run is
    megabytes of text, which FastAPI's generic encoder would walk value by value.

    With `texts="latest"` (what actions answer), each step lists its responses from its
    latest attempt on (and the chosen one, if older), `responses_from` saying at which
    index of the run's own list each step's starts, and no response repeats its step's
    prompt or the run's style prompt: an answer costs what the steps hold now, not what
    the run's history holds (GET /api/runs/{id} has every response)."""
    extras = _extras(engine, run, branched_from, reveal)
    if texts == "latest":
        run, extras["responses_from"] = _latest_attempts(run)
        extras["texts"] = "latest"
    exclude = _excluded(run, latest=texts == "latest", reveal=reveal)
    if not reveal:
        run = blind_view(run)
    body = run.model_dump_json(exclude=exclude)[:-1] + "," + json.dumps(extras, default=str)[1:]
    return Response(body, status_code=status_code, media_type="application/json")


_REPEATED = {"prompt_used", "system_prompt"}


def _latest_attempts(run: PipelineRun) -> tuple[PipelineRun, dict[str, int]]:
    """A shallow copy of the run whose steps list their responses from the latest
    attempt's first on (from the chosen one when it is older), and where each list
    starts in the run's own (steps that lost none are left out)."""
    steps, starts = dict(run.steps), {}
    for name, step in run.steps.items():
        responses = step.ai_responses
        start = len(responses)
        while start and responses[start - 1].attempt == step.attempt:
            start -= 1
        if step.user_selection is not None:
            start = min(start, step.user_selection)
        if start:
            starts[name] = start
            steps[name] = step.model_copy(update={"ai_responses": responses[start:]})
    return run.model_copy(update={"steps": steps}), starts


def _excluded(run: PipelineRun, *, latest: bool, reveal: bool) -> dict[str, Any] | None:
    """Fields left out of every response: with `latest`, the prompts each repeats;
    unless `reveal`, a blind step's models."""
    steps: dict[str, Any] = {}
    for name, step in run.steps.items():
        fields = (BLIND_FIELDS if step.hidden and not reveal else set()) | (
            _REPEATED if latest else set()
        )
        if step.ai_responses and fields:
            steps[name] = {"ai_responses": {"__all__": fields}}
    return {"steps": steps} if steps else None


def _extras(
    engine: Engine, run: PipelineRun, branched_from: str | None, reveal: bool = False
) -> dict[str, Any]:
    run_id = run.pipeline_run_id
    hidden = run.current.hidden and not reveal
    extras: dict[str, Any] = {
        "candidates": [
            {
                "index": index,
                "response_id": response.response_id,
                **({} if hidden else {"model": response.model_name}),
                "status": response.status.value,
                "error": response.error,
            }
            for index, response in enumerate(run.current.candidates)
        ],
        "streaming": engine.streaming(run_id),
        "hidden": hidden,
        **_money(engine, run),
    }
    if branched_from and branched_from != run_id:
        extras["branched_from"] = branched_from
    return extras


def _money(engine: Engine, run: PipelineRun) -> dict[str, Any]:
    """Cost (null when a model's price is unknown, never 0) and the budget's spend."""
    from writeit import pricing

    known = run.known_cost
    found: dict[str, Any] = {
        "cost_usd": None if known is None else round(known, 6),
        "priced": known is not None,
    }
    if run.budget_usd is not None:
        spent = pricing.spent(run, engine.preferences.pricing)
        found["budget"] = {
            "budget_usd": run.budget_usd,
            "spent_usd": round(spent, 6),
            "remaining_usd": round(max(run.budget_usd - spent, 0.0), 6),
        }
    return found


def snapshot_json(engine: Engine, run_id: str, reveal: bool = False) -> dict[str, Any]:
    """`run_json` of the live state (text streamed but not yet checkpointed included);
    synchronous, so it is consistent with the deltas sent after it."""
    return run_json(engine, engine.snapshot(run_id), reveal=reveal)
