"""Waiting in Textual pilot tests: let the app run until something holds, bounded, never
a fixed sleep. Import it as ``pilot`` helpers (tests/ is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def until(pilot: Any, condition: Callable[[], Any], what: str, tries: int = 3000) -> None:
    """Let the app run until `condition()` holds (bounded; no fixed sleeps)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause()
    notes = [n.message for n in pilot.app._notifications]
    raise AssertionError(f"timed out waiting for {what}; notifications: {notes}")


def notified(app: Any, text: str) -> bool:
    """Whether a notification on screen says `text`."""
    return any(text in n.message for n in app._notifications)
