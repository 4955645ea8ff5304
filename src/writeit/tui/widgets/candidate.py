"""One candidate: a model's response, streamed live and rendered as Markdown.

The pane never re-renders on every token: the step view calls `show_text()` at most
once per frame with the text so far, and the pane appends only what is new through
a MarkdownStream (which itself coalesces fragments when rendering falls behind).
"""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from writeit.models import AIResponse, ResponseStatus
from writeit.tui import format as fmt


class CandidatePane(Vertical):
    """Titled `n · model`; the subtitle shows tokens, time, cost and the quality score."""

    class RetryRequested(Message):
        """Ask again for this candidate; `other_model` asks which model to use instead."""

        def __init__(self, response_id: str, other_model: bool = False) -> None:
            super().__init__()
            self.response_id = response_id
            self.other_model = other_model

    def __init__(self, number: int | None, response: AIResponse | None, *, label: str = "") -> None:
        super().__init__(classes="candidate")
        self.number = number
        self.response = response
        self.label = label
        self.shown = ""
        self._stream: MarkdownStream | None = None
        self._lock = asyncio.Lock()  # the view's tick and a finished merge may both write
        self.selected = False

    @property
    def response_id(self) -> str | None:
        return self.response.response_id if self.response else None

    def compose(self) -> ComposeResult:
        yield Static("", classes="candidate-status", markup=False)
        with VerticalScroll(classes="candidate-body"):
            yield Markdown("", classes="candidate-text")
        with Horizontal(classes="retry"):
            yield Button("Retry (T)", id="retry-same", variant="warning", compact=True)
            yield Button("Another model…", id="retry-other", compact=True)

    def on_mount(self) -> None:
        self.update_meta()

    # --- state ---------------------------------------------------------------------------

    def set_response(self, response: AIResponse, selected: bool) -> None:
        self.response = response
        self.selected = selected
        self.update_meta()

    def update_meta(self) -> None:
        response = self.response
        name = self.label or (response.model_name if response else "")
        self.border_title = f"{self.number} · {name}" if self.number else name
        status = self.query_one(".candidate-status", Static)
        retry = self.query_one(".retry")
        self.set_class(self.selected, "-selected")
        if response is None:
            self.border_subtitle = ""
            status.update("✓ chosen for this step" if self.selected else "")
            retry.display = False
            self.set_class(False, "-streaming", "-failed")
            return
        state = response.status
        self.set_class(state == ResponseStatus.STREAMING, "-streaming")
        self.set_class(state in (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED), "-failed")
        retry.display = state in (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED)
        if state == ResponseStatus.STREAMING:
            self.border_subtitle = "streaming…"
        else:
            parts = []
            if response.tokens:
                parts.append(fmt.tokens(response.tokens))
            parts.append(fmt.seconds(response.processing_time))
            parts.append(fmt.cost(response.cost))
            if response.quality_score is not None:
                parts.append(f"q {response.quality_score:.2f}")
            self.border_subtitle = " · ".join(parts)
        if state == ResponseStatus.FAILED:
            status.update(
                f"✗ Failed: {response.error}\n"
                "Press T to ask this model again, R to regenerate the whole step, "
                "or pick another candidate."
            )
        elif state == ResponseStatus.INTERRUPTED:
            status.update(
                f"‖ Stopped: {response.error}. The text so far is kept. Press T to ask again."
            )
        elif state == ResponseStatus.STREAMING:
            status.update("● writing…")
        else:
            selected = "✓ selected  ·  " if self.selected else ""
            status.update(selected + fmt.quality(response.quality))

    # --- text ----------------------------------------------------------------------------

    async def show_text(self, text: str) -> None:
        """Bring the Markdown up to `text`: append what is new, or replace if it diverged."""
        async with self._lock:
            if text == self.shown:
                return
            markdown = self.query_one(Markdown)
            if text.startswith(self.shown) and self.shown:
                if self._stream is None:
                    self._stream = Markdown.get_stream(markdown)
                await self._stream.write(text[len(self.shown) :])
            else:
                await self._end_stream()
                await markdown.update(text)
            self.shown = text

    async def end_stream(self) -> None:
        async with self._lock:
            await self._end_stream()

    async def _end_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.response is not None:
            other = event.button.id == "retry-other"
            self.post_message(self.RetryRequested(self.response.response_id, other))
