"""What front ends hear from the engine, through bounded per-watcher queues."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Update:
    """What front ends hear: token deltas, responses done or failed, steps and runs."""

    kind: str
    run_id: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """A bounded queue of updates; a slow reader gets one `resync` instead of a backlog."""

    def __init__(self, watchers: list[Subscription], run_id: str | None, maxsize: int) -> None:
        self.watchers, self.run_id = watchers, run_id
        self.queue: asyncio.Queue[Update] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, update: Update) -> None:
        if self.run_id is not None and update.run_id != self.run_id:
            return
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:
            self.dropped += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Update("resync", update.run_id, {"dropped": self.dropped}))

    def __aiter__(self) -> AsyncIterator[Update]:
        return self

    async def __anext__(self) -> Update:
        return await self.queue.get()

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.watchers.remove(self)
