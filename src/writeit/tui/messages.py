"""Messages that travel up (widgets to screens) or from the app to its screens."""

from __future__ import annotations

from textual.message import Message

from writeit.updates import Update


class EngineUpdated(Message, bubble=False):
    """Something happened to a run (any kind but token deltas, which the app buffers)."""

    def __init__(self, update: Update) -> None:
        super().__init__()
        self.update = update

    @property
    def run_id(self) -> str:
        return self.update.run_id

    @property
    def kind(self) -> str:
        return self.update.kind
