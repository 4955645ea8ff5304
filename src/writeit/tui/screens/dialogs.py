"""Small modal dialogs: confirm, ask for one line of text, and a fatal start-up error."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes") -> None:
        super().__init__()
        self.question, self.detail, self.yes = question, detail, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, classes="dialog-detail", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (Y)", variant="error", id="yes", compact=True)
                yield Button("Cancel (Esc)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class AskDialog(ModalScreen[str | None]):
    """One line of text, e.g. the instruction for a guided regeneration. `on_change`
    hears the text as it is typed, so the caller can keep it as a draft."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        detail: str = "",
        placeholder: str = "",
        value: str = "",
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.title_text, self.detail = title, detail
        self.placeholder, self.value = placeholder, value
        self.on_change = on_change

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, classes="dialog-detail", markup=False)
            # a restored draft is added to, not replaced by the first key
            yield Input(
                self.value,
                placeholder=self.placeholder,
                id="answer",
                compact=True,
                select_on_focus=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("OK (Enter)", variant="primary", id="ok", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        answer = self.query_one("#answer", Input)
        answer.cursor_position = len(answer.value)
        answer.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._done()

    @on(Input.Changed, "#answer")
    def _typed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.query_one("#answer", Input).value)

    async def before_quit(self) -> None:
        """Quitting: the caller hears the text as it is now (a `Changed` may be queued)."""
        self._typed()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._done()
        else:
            self.dismiss(None)

    def _done(self) -> None:
        text = self.query_one("#answer", Input).value.strip()
        if not text:
            self.notify("Type an instruction, or Esc to cancel", severity="warning")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class FatalScreen(Screen[None]):
    """The engine could not open (store locked or damaged, bad preferences...)."""

    BINDINGS = [Binding("q,escape", "app.exit", "Quit")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog fatal"):
            yield Label("WriteIt cannot open this workspace", classes="dialog-title")
            yield Static(self.message, classes="dialog-detail", markup=False)
            yield Static("Press Q to quit.", classes="hint")
        yield Footer()
