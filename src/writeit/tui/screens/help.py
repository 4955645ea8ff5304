"""The help screen: every key of every screen, as remapped by the writer's preferences.
The section of the screen it was opened from comes first."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from writeit.tui import keys

INTRO = (
    "WriteIt writes an article in steps. At each step several models write candidates side "
    "by side; you pick one (or merge), leave feedback for the next step, and go on. Going "
    "back and choosing differently starts a new branch: nothing is ever lost."
)

OUTRO = (
    "Ctrl+P opens the command palette with the same actions.\n"
    "Remap a key: writeit config set keyboard_shortcuts.ACTION KEY "
    "(for example keyboard_shortcuts.merge x); ACTION is the name in the right column. "
    "A key another action of the same screen already has is refused, and WriteIt says which."
)

SCREEN_SECTION = {
    "RunListScreen": "Run list",
    "InputFormScreen": "Input form",
    "StepScreen": "Step view",
    "MergeScreen": "Merge view",
    "HistoryScreen": "History tree",
    "DiffScreen": "Diff view",
    "ExportDialog": "Export dialog",
}


def help_renderable(keymap: dict[str, str], first: str | None = None) -> Group:
    sections = list(keys.SECTIONS)
    if first in sections:
        sections.remove(first)
        sections.insert(0, first)
    parts: list = [Text(INTRO), Text("")]
    for section in sections:
        table = Table(
            title=section,
            title_justify="left",
            title_style="bold",
            box=None,
            show_header=False,
            padding=(0, 2, 0, 0),
            expand=True,
        )
        table.add_column("Key", style="bold", width=8, no_wrap=True)
        table.add_column("Does", ratio=1)
        table.add_column("Action", style="dim", no_wrap=True, width=18)
        for action_id in keys.SECTIONS[section]:
            action = keys.ACTIONS[action_id]
            key = keys.key_for(action_id, keymap)
            does = "Select candidate 1 to 9" if action_id == "select_1" else action.help
            name = "select_1…select_9" if action_id == "select_1" else action_id
            table.add_row(key, does, name)
        parts += [table, Text("")]
    parts.append(Text(OUTRO, style="italic"))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, opened_from: str | None = None) -> None:
        super().__init__()
        self.opened_from = opened_from

    def compose(self) -> ComposeResult:
        first = SCREEN_SECTION.get(self.opened_from or "")
        with VerticalScroll(id="help-box", classes="dialog wide"):
            yield Static("[b]WriteIt keys[/b]  ·  Esc closes", classes="dialog-title")
            yield Static(help_renderable(getattr(self.app, "keymap", {}), first), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()

    def action_close(self) -> None:
        self.dismiss(None)
