"""WebSocket /api/runs/{id}/stream: the run's state, then every change as it happens.

Messages, all JSON objects with a ``type``:

- ``state`` ``{run, reason}``: the whole run (as GET /api/runs/{id} returns it). Sent
  first (reason ``initial``), after a resync (``resync``, with ``dropped``) and when the
  client sends ``{"type": "state"}`` (``requested``). A client replaces what it has.
- ``delta`` ``{response_id, step, text}``: streamed text, in order, per response.
- ``response_started``, ``response_done`` / ``response_failed`` (with the final
  ``text``, tokens, cost, seconds, quality or error), ``step_done``, ``run_status``,
  ``response_selected``, ``responses_merged``, ``feedback_given``, ``step_started``,
  ``step_skipped``, and ``forked {child}`` (watch the child's stream to follow it).

Each client has its own bounded queue, so a slow reader never slows the run or the
other readers: when its queue overflows the engine replaces the backlog with one
``resync`` and the client gets the full state again instead.

A run moved on by another process sharing the store (the TUI, a headless CLI run)
reaches clients as a ``state`` with reason ``external``: the store is looked at twice
a second, so such a run's text arrives at its checkpoints, not token by token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from writeit.models import WriteItError
from writeit.server import bodies
from writeit.server.errors import Unprocessable, classify, error_response, message_of
from writeit.server.state import ServerState, get_state, snapshot_json
from writeit.updates import Subscription, Update

router = APIRouter()
FOLLOW_INTERVAL = 0.5  # seconds between looks at the store for other writers
COALESCE_SECONDS = 0.005  # how long deltas may gather before they are sent


@router.websocket("/api/runs/{run_id}/stream")
async def stream_run(websocket: WebSocket, run_id: str) -> None:
    # Host and token were checked by the Guard before the handshake reached us.
    state = get_state(websocket)
    try:
        run_id = state.run_id(checked_run_id(run_id))
    except WriteItError as error:
        status, code = classify(error)
        response = error_response(status, code, message_of(error), error.hint)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:
            await websocket.close(code=1008)
        return
    await websocket.accept()
    await Watcher(state, websocket, run_id).run()


def checked_run_id(given: str) -> str:
    """The REST paths' rule for run ids (bodies.ID_PATTERN), for the WebSocket's path.

    A WebSocket route's path pattern would only close the socket; this refuses the
    handshake with the same 422 a REST route gives.
    """
    if not re.fullmatch(bodies.ID_PATTERN, given):
        raise Unprocessable(
            f"run id {given!r} is not a run id or a prefix of at least 4 characters",
            "use an id from GET /api/runs",
        )
    return given


class Watcher:
    """One client watching one run: a pump from its subscription, a listener for it."""

    def __init__(self, state: ServerState, websocket: WebSocket, run_id: str) -> None:
        self.engine = state.engine
        self.websocket = websocket
        self.run_id = run_id
        self.queue_size = state.stream_queue
        self.reveal = websocket.query_params.get("reveal") in ("1", "true")

    async def run(self) -> None:
        # Subscribe and take the state in one step (no await between), so every update
        # queued from here on is news to the client and none is counted twice.
        subscription = self.engine.subscribe(self.run_id, maxsize=self.queue_size)
        first = self.state_message("initial")
        tasks = {
            asyncio.create_task(self.pump(subscription, first)),
            asyncio.create_task(self.listen(subscription)),
            asyncio.create_task(self.follow_store(subscription)),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            subscription.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                    await task
            if self.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.websocket.close()

    async def pump(self, subscription: Subscription, first: dict[str, Any]) -> None:
        await self.send(first)
        while True:
            updates = [await subscription.queue.get()]
            if updates[0].kind == "delta":
                # Let a burst of tokens gather: one message per few milliseconds instead of
                # one per token (a fast stream sent token by token costs the client dearly).
                await asyncio.sleep(COALESCE_SECONDS)
            while not subscription.queue.empty():  # whatever piled up while we sent
                updates.append(subscription.queue.get_nowait())
            for message in self.messages(updates):
                await self.send(message)

    def messages(self, updates: list[Update]) -> list[dict[str, Any]]:
        """Messages for a batch of updates: consecutive deltas of one response become one
        message; a resync (or the client asking) becomes the full state, which covers all."""
        for update in reversed(updates):
            if update.kind in ("resync", "external"):
                reason = update.data.get("reason", update.kind)
                return [self.state_message(reason, dropped=update.data.get("dropped", 0))]
        messages: list[dict[str, Any]] = []
        for update in updates:
            last = messages[-1] if messages else None
            if (
                update.kind == "delta"
                and last is not None
                and last["type"] == "delta"
                and last["response_id"] == update.data["response_id"]
            ):
                last["text"] += update.data["text"]
            else:
                messages.append(self.update_message(update))
        return messages

    async def listen(self, subscription: Subscription) -> None:
        """Read the client: `{"type": "state"}` asks for the full state; the rest is ignored."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                request = json.loads(message.get("text") or "null")
            except ValueError:
                continue
            if isinstance(request, dict) and request.get("type") == "state":
                subscription.offer(Update("resync", self.run_id, {"reason": "requested"}))

    async def follow_store(self, subscription: Subscription) -> None:
        """Look for another process's changes (LMDB does not notify; a summary read costs
        microseconds). Whichever reader folds them first, the engine tells every watcher
        with an `external` update, which becomes a state message."""
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL)
            with contextlib.suppress(WriteItError):  # deleted meanwhile: nothing to follow
                if self.engine.changed_elsewhere(self.run_id):
                    await asyncio.to_thread(self.engine.load, self.run_id)

    async def send(self, message: dict[str, Any]) -> None:
        await self.websocket.send_text(json.dumps(message, default=str))

    def state_message(self, reason: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "state",
            "reason": reason,
            **extra,
            "run": snapshot_json(self.engine, self.run_id, self.reveal),
        }

    def update_message(self, update: Update) -> dict[str, Any]:
        message = {"type": update.kind, "run_id": update.run_id, **update.data}
        if update.kind in ("response_started", "response_done", "response_failed"):
            with contextlib.suppress(WriteItError):
                run = self.engine.load(update.run_id)
                step, response = run.find_response(update.data["response_id"])
                if update.kind != "response_started":
                    # The final text, so a client that missed deltas still ends up exact.
                    message["text"] = response.processed_content or response.raw_output
                if step.hidden and not self.reveal:  # blind review: no model until a choice
                    for key in BLIND_UPDATE:
                        message.pop(key, None)
        return message


BLIND_UPDATE = ("model", "provider", "tokens", "cost", "seconds", "pid", "pid_started")
