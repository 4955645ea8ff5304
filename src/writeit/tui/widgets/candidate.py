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

from writeit import quality
from writeit.models import AIResponse, ResponseStatus
from writeit.tui import format as fmt
from writeit.tui import keys
from writeit.tui.widgets.markdown_text import MarkdownView

STOPPED = (ResponseStatus.FAILED, ResponseStatus.INTERRUPTED)


class CandidatePane(Vertical):
    """Titled `n · model` (`· ⚑ 2` when the response has style flags, listed under it);
    the subtitle shows tokens, time, cost and the quality score.

    `note` is a line of provenance above the text (the guide instruction it was asked
    with, or how a merged text came about). Z maximises the pane (`Screen.maximize`)."""

    ALLOW_MAXIMIZE = True

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
        self.note = ""
        self.priced = True  # False: the model has no known price ("price unknown", not $0)
        self.hidden = False  # blind review: no model, tokens, time or cost until the choice

    @property
    def response_id(self) -> str | None:
        return self.response.response_id if self.response else None

    def compose(self) -> ComposeResult:
        yield Static("", classes="candidate-status", markup=False)
        yield MarkdownView(classes="candidate-body")

    def on_mount(self) -> None:
        self.update_meta()

    # --- state ---------------------------------------------------------------------------

    def set_response(
        self,
        response: AIResponse,
        selected: bool,
        *,
        priced: bool = True,
        note: str = "",
        hidden: bool = False,
    ) -> None:
        self.response = response
        self.selected = selected
        self.priced = priced
        self.hidden = hidden
        self.note = note
        self.update_meta()

    def update_meta(self) -> None:
        response = self.response
        name = self.label or (response.model_name if response else "")
        title = f"{self.number} · {name}" if self.number else name
        if self.hidden and self.number:
            title = f"Candidate {self.number}"
        flags = len(response.flags) if response else 0
        self.border_title = f"{title} · ⚑ {flags}" if flags else title
        failed = response is not None and response.status in STOPPED
        self._show_retry(failed)
        self.set_class(self.selected, "-selected")
        state = response.status if response else None
        self.set_class(state == ResponseStatus.STREAMING, "-streaming")
        self.set_class(failed, "-failed")
        self.border_subtitle = self._subtitle()
        lines = [self.note] if self.note else []
        lines.append(self._status())
        self.query_one(".candidate-status", Static).update("\n".join(filter(None, lines)))

    def _hint(self, text: str) -> str:
        return keys.hint(text, getattr(self.app, "keymap", {}))

    def _show_retry(self, failed: bool) -> None:
        if failed and not self.query(".retry"):  # mounted only when needed: panes are many
            label = self._hint("Retry ({retry})")
            self.mount(
                Horizontal(
                    Button(label, id="retry-same", variant="warning", compact=True),
                    Button("Another model…", id="retry-other", compact=True),
                    classes="retry",
                )
            )
        self.query(".retry").set(display=failed)

    def _subtitle(self) -> str:
        response = self.response
        if response is None:
            return ""
        if response.status == ResponseStatus.STREAMING:
            return "streaming…"
        if self.hidden:  # speed, length and price would point at the model
            return f"q {response.quality_score:.2f}" if response.quality_score is not None else ""
        about = "≈" if response.usage_stats and response.usage_stats.estimated else ""
        parts = [about + fmt.tokens(response.tokens)] if response.tokens else []
        parts.append(fmt.seconds(response.processing_time))
        if response.usage_stats is not None:  # a failure used nothing it was billed for
            parts.append(fmt.cost(response.cost) if self.priced else "price unknown")
        if response.quality_score is not None:
            parts.append(f"q {response.quality_score:.2f}")
        return " · ".join(parts)

    def _status(self) -> str:
        response = self.response
        if response is None:
            return "✓ chosen for this step" if self.selected and not self.note else ""
        state = response.status
        if state == ResponseStatus.FAILED:
            return f"✗ Failed: {response.error}\n" + self._hint(
                "{retry} asks this model again; {regenerate} regenerates the whole step."
            )
        if state == ResponseStatus.INTERRUPTED:
            return f"‖ Stopped: {response.error}. Its text is kept; " + self._hint(
                "{retry} asks again."
            )
        if state == ResponseStatus.STREAMING:
            return "● writing…"
        selected = "✓ selected  ·  " if self.selected else ""
        flagged = "; ".join(flag.label() for flag in response.flags)
        return selected + fmt.quality(response.quality) + (f"\n⚑ {flagged}" if flagged else "")

    # --- text ----------------------------------------------------------------------------

    def show_text(self, text: str, *, live: bool = False) -> None:
        """Show `text`: while `live` (streaming) the lines that fit from its end."""
        if text == self.shown and live == self._live:
            return
        view = self.query_one(MarkdownView)
        avoided = (
            tuple(f.detail for f in self.response.flags if f.kind == "avoid")
            if self.response
            else ()
        )
        view.marks = quality.avoid_pattern(avoided) if avoided else None
        view.show(text, live=live)
        self.shown, self._live = view.on_screen, live  # scrolled back: the text of then

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.response is not None:
            other = event.button.id == "retry-other"
            self.post_message(self.RetryRequested(self.response.response_id, other))
