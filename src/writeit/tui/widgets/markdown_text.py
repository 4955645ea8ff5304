"""Markdown as one Rich renderable in one Static: cheap to hold and to redraw.

Textual's Markdown widget builds a widget per block; three 20,000-token answers cost
hundreds of MB and fall behind a fast stream. A pane shows Rich's Markdown instead,
with headings left-aligned like the rest of the text. While a response streams, the
pane shows the last lines of its last part (`streaming`) in a widget of fixed height,
so a redraw costs the same however long the answer grows and never re-measures the
layout.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import Heading, Markdown
from rich.segment import Segment
from rich.text import Text

TAIL_CHARS = 4_000  # a streaming pane redraws at most this much text


class _Heading(Heading):
    LEVEL_ALIGN = dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6"), "left")


class _Markdown(Markdown):
    elements = {**Markdown.elements, "heading_open": _Heading}


def markdown(text: str) -> RenderableType:
    return _Markdown(text)


def tail(text: str, limit: int = TAIL_CHARS) -> tuple[str, int]:
    """The end of `text` to show while it streams, from a paragraph start if there is
    one; and how many characters come before it."""
    if len(text) <= limit:
        return text, 0
    start = len(text) - limit
    paragraph = text.find("\n\n", start)
    if 0 <= paragraph < len(text) - limit // 4:
        start = paragraph + 2
    return text[start:], start


class LastLines:
    """A renderable that keeps only the lines that fit, from the end (like `tail -f`)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options.update(height=None), pad=False)
        if options.height is not None and len(lines) > options.height:
            lines = lines[-options.height :]
        for line in lines:
            yield from line
            yield Segment.line()


def streaming(text: str, limit: int = TAIL_CHARS) -> RenderableType:
    shown, skipped = tail(text, limit)
    body = markdown(shown)
    if skipped:
        note = Text(
            f"… {skipped:,} earlier characters; all of it shows when the answer is done",
            style="dim italic",
        )
        body = Group(note, Text(""), body)
    return LastLines(body)
