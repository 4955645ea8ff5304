"""The feedback box of the step view: a TextArea that Esc leaves (and the view saves)."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class FeedbackArea(TextArea):
    """Single keys type text here; Esc posts `Done` so the step view saves and moves on."""

    BINDINGS = [Binding("escape", "done", "Done (saves)", id="leave")]

    class Done(Message):
        pass

    def action_done(self) -> None:
        self.post_message(self.Done())
