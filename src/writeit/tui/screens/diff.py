"""The diff view: two texts word by word (two candidates, two attempts, a merge's
sources, two branches' articles), deletions `[-struck-]`, insertions `{+underlined+}`.

The screen that opens it chooses the texts from the run it already shows; this view only
compares and renders them (`writeit.diffs`, the same as `writeit diff`). Esc closes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from writeit import diffs
from writeit.tui import keys


@dataclass(frozen=True)
class Compared:
    """One side of a diff: what it is ("candidate 1 (gpt-4o)") and its text."""

    label: str
    text: str


class DiffScreen(Screen[None]):
    ACTION_IDS = ("close",)
    BINDINGS = keys.bindings(*ACTION_IDS)

    def __init__(self, old: Compared, new: Compared, where: str = "") -> None:
        super().__init__()
        self.old, self.new, self.where = old, new, where
        self.changes: list[diffs.Change] | None = None  # once compared

    def compose(self) -> ComposeResult:
        yield Static("", id="diff-title", classes="screen-title")
        yield Static(self._legend(), id="diff-legend")
        with VerticalScroll(id="diff-scroll"):
            yield Static("Comparing…", id="diff-text")
        yield Footer(compact=True, show_command_palette=False)

    def _legend(self) -> Text:
        """Which text is which, marked as their words are below."""
        legend = Text()
        for (start, end, style), side in (
            (diffs.MARKS["delete"], self.old),
            (diffs.MARKS["insert"], self.new),
        ):
            legend.append(f"{start}{side.label}{end}", style)
            legend.append("   ")
        return legend

    async def on_mount(self) -> None:
        self.query_one("#diff-scroll").focus()
        # two long unrelated drafts take tens of milliseconds: off the event loop
        changes = await asyncio.to_thread(diffs.diff, self.old.text, self.new.text)
        self.changes = changes
        title = Text.assemble(
            ("Diff", "bold"), f"  ·  {self.where}  ·  " if self.where else "  ·  "
        )
        title.append(diffs.summary(changes))
        title.append(keys.hint("  ·  {close} closes", self.app.keymap), "dim")
        self.query_one("#diff-title", Static).update(title)
        self.query_one("#diff-text", Static).update(diffs.render(changes))

    def action_close(self) -> None:
        self.dismiss(None)
