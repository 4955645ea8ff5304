"""Screens that open while the writer is already typing keep the keys typed too early.

At start-up (`writeit`, `writeit run PIPELINE`) the first screen is pushed before it is
composed, and its data (the run list, the model list) arrives a moment later. The app
hands a key to the screen itself only when nothing in it has focus, and a screen drops
such keys: a writer who starts typing at once loses the first words. These screens hold
those keys and replay them, in order, once they are ready.
"""

from __future__ import annotations

from typing import TypeVar

from textual import events
from textual.screen import Screen

ResultType = TypeVar("ResultType")


class HoldsEarlyKeys(Screen[ResultType]):
    """Call `release_keys()` once the screen is ready (focus set, data in)."""

    def __init__(self) -> None:
        super().__init__()
        self._held_keys: list[events.Key] | None = []  # None once released

    @property
    def holding_keys(self) -> bool:
        return self._held_keys is not None

    def _forward_event(self, event: events.Event) -> None:
        """Keys reach the screen itself only while nothing in it has focus: hold them."""
        if isinstance(event, events.Key) and self._held_keys is not None:
            self._held_keys.append(event)
            return
        super()._forward_event(event)

    def release_keys(self) -> None:
        """Replay the held keys, in order, where the app would have sent them had the
        screen been ready: to the focused widget, from which unhandled keys bubble up to
        the screen's and the app's bindings as usual."""
        held, self._held_keys = self._held_keys or [], None
        for key in held:
            target = self.focused or self
            target._forward_event(events.Key(key.key, key.character))
