"""One candidate: a model's response, streamed live and rendered as Markdown.

The pane never re-renders on every token: the board calls `show_text()` at most once
per frame with the text so far. While the response streams, the pane shows its last
part and follows the end; once it is done, the whole text (see `MarkdownView`).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from writeit.models import AIResponse, ResponseStatus
from writeit.tui import format as fmt
from writeit.tui.widgets.markdown_text import MarkdownView


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
        self._live = False
        self.selected = False

    @property
    def response_id(self) -> str | None:
        return self.response.response_id if self.response else None

    def compose(self) -> ComposeResult:
        yield Static("", classes="candidate-status", markup=False)
        yield MarkdownView(classes="candidate-body")

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
        failed = response is not None and response.status in (
            ResponseStatus.FAILED,
            ResponseStatus.INTERRUPTED,
        )
        if failed and not self.query(".retry"):  # mounted only when needed: panes are many
            self.mount(
                Horizontal(
                    Button("Retry (T)", id="retry-same", variant="warning", compact=True),
                    Button("Another model…", id="retry-other", compact=True),
                    classes="retry",
                )
            )
        retry = self.query(".retry")
        self.set_class(self.selected, "-selected")
        if response is None:
            self.border_subtitle = ""
            status.update("✓ chosen for this step" if self.selected else "")
            retry.set(display=False)
            self.set_class(False, "-streaming", "-failed")
            return
        state = response.status
        self.set_class(state == ResponseStatus.STREAMING, "-streaming")
        self.set_class(state in (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED), "-failed")
        retry.set(display=failed)
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

    def show_text(self, text: str, *, live: bool = False) -> None:
        """Show `text`: while `live` (streaming) the lines that fit from its end."""
        if text == self.shown and live == self._live:
            return
        view = self.query_one(MarkdownView)
        view.show(text, live=live)
        self.shown, self._live = view.on_screen, live  # scrolled back: the text of then

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.response is not None:
            other = event.button.id == "retry-other"
            self.post_message(self.RetryRequested(self.response.response_id, other))
