"""Text the writer is typing (feedback, a guide instruction, a hand merge), kept beside
the run until it is given, so Ctrl+Q, a closed terminal or a crash loses at most the
last second of typing.

Keys call `typed()` on every change; the text is written once the writer has paused
for `delay` seconds (a write per key press would be an LMDB transaction per key), and
at once by `keep()` when they leave the input and by `flush()` when the app quits.
`given()` drops a draft once its text has reached the run. With the preference
`auto_save_enabled` false nothing is kept or restored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from textual.timer import Timer

from writeit.models import WriteItError

if TYPE_CHECKING:
    from writeit.tui.app import WriteItApp

log = logging.getLogger(__name__)

DELAY = 1.0  # seconds of idle typing before a draft is written

Key = tuple[str, str]  # (run id, draft name such as "feedback:outline")

WHAT = {"feedback": "feedback", "guide": "a guide instruction", "merge": "a merge text"}


def name(kind: str, step: str) -> str:
    return f"{kind}:{step}"


def describe(draft_name: str) -> str:
    """ "feedback:outline" -> "feedback for outline", as the writer reads it."""
    kind, _, step = draft_name.partition(":")
    return f"{WHAT.get(kind, kind)} for {step}"


class Drafts:
    def __init__(self, app: WriteItApp, delay: float = DELAY) -> None:
        self.app = app
        self.delay = delay
        self._pending: dict[Key, str] = {}
        self._stored: dict[Key, str] = {}  # what the store holds, as far as we wrote it
        self._timer: Timer | None = None
        self._lock = asyncio.Lock()  # writes land in the order they were asked for
        self.touched: set[str] = set()  # runs with drafts written this session

    @property
    def enabled(self) -> bool:
        return self.app.engine.preferences.auto_save_enabled

    def typed(self, run_id: str, draft_name: str, text: str) -> None:
        """The writer changed the text; it is written after `delay` seconds of quiet."""
        if not self.enabled:
            return
        key = (run_id, draft_name)
        if key not in self._pending and self._stored.get(key) == text:
            return  # an input filled with what is kept already (or with nothing)
        self._pending[key] = text
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.app.set_timer(self.delay, self.flush, name="drafts")

    def get(self, run_id: str, draft_name: str) -> str:
        """The unsent text, if any: typed a moment ago, or kept from an earlier session."""
        if not self.enabled:
            return ""
        key = (run_id, draft_name)
        if key in self._pending:
            return self._pending[key]
        if key in self._stored:  # read or written already: the view asks on every refresh
            return self._stored[key]
        try:
            text = self.app.engine.drafts(run_id).get(draft_name, "")
        except WriteItError:
            return ""
        self._stored[key] = text
        return text

    async def keep(self, run_id: str, draft_name: str) -> None:
        """The writer left the input: write its text now rather than after the delay."""
        key = (run_id, draft_name)
        if key in self._pending:
            await self._write(key, self._pending.pop(key))

    async def given(self, run_id: str, draft_name: str) -> None:
        """The text reached the run (feedback sent, guide used, merge done): drop it."""
        self._pending.pop((run_id, draft_name), None)
        if self.enabled:
            await self._write((run_id, draft_name), "")

    async def flush(self) -> None:
        """Write every pending draft (the idle timer, and quitting)."""
        while self._pending:
            key, text = self._pending.popitem()
            await self._write(key, text)

    def kept(self, run_ids: set[str]) -> list[tuple[str, str]]:
        """(run id, draft name) of the unsent drafts these runs hold now."""
        found = []
        for run_id in sorted(run_ids):
            try:
                found += [(run_id, n) for n in sorted(self.app.engine.drafts(run_id))]
            except WriteItError:
                continue
        return found

    async def _write(self, key: Key, text: str) -> None:
        async with self._lock:
            if key in self._stored and self._stored[key] == text:
                return  # unchanged: no write transaction for nothing
            try:
                await self.app.engine.save_draft(*key, text)
            except WriteItError as error:  # typing goes on; the next change tries again
                log.warning("draft %s of run %s not saved: %s", key[1], key[0][:8], error)
                return
            self._stored[key] = text
            if text:
                self.touched.add(key[0])
