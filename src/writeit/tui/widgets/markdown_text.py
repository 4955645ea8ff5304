"""Markdown in a candidate pane, drawn line by line (Textual's line API).

Textual's Markdown widget builds a widget per block, and a Static holding a Rich
Markdown keeps a `Strip` (with six small caches) for every line of the document:
three 20,000-token answers cost tens of MB and long stalls of the event loop.

`MarkdownView` instead keeps its text and, once the answer is done, the lines of
the rendered Markdown in a compact form (text and a style number per segment);
a Strip is made only for a line on screen. While an answer streams, the view
renders only the last part of it (`tail`) and shows the lines that fit from its end,
like `tail -f`: a redraw costs the same however long the answer grows, and since the
view never changes size it never asks for a new layout of the screen. Scrolling up
in a streaming answer draws all of it so far and holds still while the writer reads;
End (or scrolling down past the end) follows the stream again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from itertools import pairwise

from rich.console import Group, RenderableType
from rich.markdown import Heading, Markdown
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.actions import SkipAction
from textual.cache import LRUCache
from textual.events import MouseScrollDown, MouseScrollUp, Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

TAIL_CHARS = 4_000  # a streaming pane renders at most this much text a frame
REVIEW_NOTE = " Scrolled back: still writing. End follows it again. "


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


def streaming(text: str, limit: int = TAIL_CHARS) -> RenderableType:
    """The renderable of a streaming answer: the Markdown of its tail, after a note of
    how much comes before it."""
    shown, skipped = tail(text, limit)
    body = markdown(shown)
    if skipped:
        note = Text(
            f"… {skipped:,} earlier characters; all of it shows when the answer is done",
            style="dim italic",
        )
        return Group(note, Text(""), body)
    return body


Line = tuple[tuple[str, int], ...]  # (text, style number) per segment
MARK = Style(color="black", bgcolor="yellow")  # a style's avoid-list term in the text


def marked(line: list[Segment], pattern: re.Pattern[str]) -> list[Segment]:
    """The line with what `pattern` matches in MARK (a match cannot span two lines:
    a term the wrapping splits stays plain)."""
    spans = [m.span() for m in pattern.finditer("".join(s.text for s in line))]
    if not spans:
        return line
    out: list[Segment] = []
    start = 0
    for segment in line:
        end = start + len(segment.text)
        cuts = sorted({start, end, *(c for span in spans for c in span if start < c < end)})
        for a, b in pairwise(cuts):
            inside = any(s <= a and b <= e for s, e in spans)
            style = (segment.style + MARK if segment.style else MARK) if inside else segment.style
            out.append(Segment(segment.text[a - start : b - start], style))
        start = end
    return out


class MarkdownView(ScrollView, can_focus=True):
    """A scrollable Markdown text; `show(text, live=True)` follows a streaming answer."""

    DEFAULT_CSS = """
    MarkdownView {
        overflow-x: hidden;
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.text = ""
        self.live = False
        self.following = True  # while live: False when scrolled back (`reviewing`)
        self._tail: list[list[Segment]] = []  # live: the lines on screen
        self._lines: list[Line] = []  # done: every line of the document
        self._styles: list[Style | None] = []
        self._drawn: tuple[str, int, re.Pattern | None] | None = None  # what _lines hold
        self.marks: re.Pattern[str] | None = None  # terms to highlight once the text is done
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(256)

    def show(self, text: str, *, live: bool = False) -> None:
        reviewing = self.reviewing
        self.text = text
        if live:
            if reviewing:
                return  # the writer reads what came before: the view holds still
            was_live, self.live = self.live, True
            self._lines, self._styles, self._drawn = [], [], None
            self._draw_tail()
            if not was_live:
                self.scroll_to(y=0, animate=False, immediate=True)
            self.refresh()  # the size is fixed: a repaint, no layout
        else:
            self.live, self.following = False, True
            self._tail = []
            self._draw_document()
            if not reviewing:  # done: from the top, unless the writer is reading
                self.scroll_to(y=0, animate=False, immediate=True)

    @property
    def reviewing(self) -> bool:
        """Scrolled back in a streaming answer: the view shows the text of that moment."""
        return self.live and not self.following

    @property
    def on_screen(self) -> str:
        """The text the view shows now."""
        if self.reviewing:
            return self._drawn[0] if self._drawn else ""
        return self.text

    # --- scrolling back while it streams ------------------------------------------------

    def _review_then(self, scroll: Callable[[], object]) -> None:
        """Scroll; in a streaming answer that follows its end, first stop following:
        draw all of it so far and start from its end (once the new size is laid out)."""
        if not self.live or self.reviewing or not self.text:
            scroll()
            return
        self.following = False
        self._tail = []
        self._draw_document()

        def from_the_end() -> None:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
            with suppress(SkipAction):
                scroll()

        self.call_after_refresh(from_the_end)

    def _follow(self) -> bool:
        """Back to following the stream's end; False when it was following already."""
        if not self.reviewing:
            return False
        self.following = True
        self._lines, self._styles, self._drawn = [], [], None
        self.virtual_size = Size(0, 0)
        self.scroll_to(y=0, animate=False, immediate=True)
        self._draw_tail()
        self.refresh()
        return True

    def action_scroll_up(self) -> None:
        self._review_then(super().action_scroll_up)

    def action_page_up(self) -> None:
        self._review_then(super().action_page_up)

    def action_scroll_home(self) -> None:
        self._review_then(super().action_scroll_home)

    def action_scroll_down(self) -> None:
        if not (self.reviewing and self.is_vertical_scroll_end and self._follow()):
            super().action_scroll_down()

    def action_page_down(self) -> None:
        if not (self.reviewing and self.is_vertical_scroll_end and self._follow()):
            super().action_page_down()

    def action_scroll_end(self) -> None:
        if not self._follow():
            super().action_scroll_end()

    def _on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        if self.live and not self.reviewing and not (event.ctrl or event.shift):
            event.stop()
            self._review_then(lambda: self.scroll_relative(y=-3, animate=False, immediate=True))
            return
        super()._on_mouse_scroll_up(event)

    def _on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        if self.reviewing and self.is_vertical_scroll_end and self._follow():
            event.stop()
            return
        super()._on_mouse_scroll_down(event)

    # --- drawing ------------------------------------------------------------------------

    def _width(self) -> int:
        return self.scrollable_content_region.width

    def _render(self, renderable: RenderableType, width: int) -> list[list[Segment]]:
        options = self.app.console_options.update(highlight=False, width=width, height=None)
        return self.app.console.render_lines(renderable, options, pad=False)

    def _draw_tail(self) -> None:
        region = self.scrollable_content_region
        if region.width <= 0 or region.height <= 0:
            self._tail = []  # drawn when the view gets a size
            return
        # about two screenfuls of the view: enough to fill it, little to render
        limit = min(TAIL_CHARS, max(1_200, region.width * region.height * 2))
        lines = self._render(streaming(self.text, limit), region.width)
        self._tail = lines[-region.height :]

    def _draw_document(self) -> None:
        """Render the whole Markdown once per text and width; hidden views wait."""
        width = self._width()
        if width <= 0 or self._drawn == (self.text, width, self.marks):
            return
        styles: dict[Style | None, int] = {}
        lines = self._render(markdown(self.text), width)
        if self.marks is not None:
            lines = [marked([s for s in line if not s.control], self.marks) for line in lines]
        self._lines = [
            tuple(
                (segment.text, styles.setdefault(segment.style, len(styles)))
                for segment in line
                if not segment.control
            )
            for line in lines
        ]
        self._styles = list(styles)
        self._drawn = (self.text, width, self.marks)
        self._strips.clear()
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def on_resize(self, event: Resize) -> None:
        if self.live and self.following:
            self._draw_tail()
            self.refresh()
        else:
            self._draw_document()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self._width()
        style = self.rich_style
        if self.live and self.following:
            segments = self._tail[y] if y < len(self._tail) else []
            return Strip(Segment.apply_style(segments, style)).crop_extend(0, width, style)
        if self.reviewing and y == self.scrollable_content_region.height - 1:
            note = [Segment(REVIEW_NOTE, Style(dim=True, italic=True, reverse=True))]
            return Strip(Segment.apply_style(note, style)).crop_extend(0, width, style)
        index = y + self.scroll_offset.y
        if index >= len(self._lines):
            return Strip.blank(width, style)
        key = (index, width)
        strip = self._strips.get(key)
        if strip is None:
            styles = self._styles
            segments = [Segment(text, styles[number]) for text, number in self._lines[index]]
            strip = Strip(Segment.apply_style(segments, style)).crop_extend(0, width, style)
            self._strips[key] = strip
        return strip
