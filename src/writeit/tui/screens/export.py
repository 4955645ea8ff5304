"""The export dialog: format, what to include (history, candidates, every branch), a path
(default in the workspace's exports folder), then a confirmation with the saved path and size.

Keyboard first: focus starts on the format (the writer's `export_format` preference, else
Markdown), M/Y/J or 1/2/3 (or ←/→) choose it, Enter exports. The chosen format is marked
with "(•)" and bold type, so it reads without colour.

Three ticks say what to include: the step history, the candidates (unticked: the
article, its prompts and decisions only) and every branch of the run. The dialog opens with
the choices of the last export in this session (a writer's `export_candidates` or
`export_all_branches` preference, where set, wins), as it opens on the format.

When the path names an existing file the dialog says so: saving then picks a new name
(name-2…) unless the writer ticks "Overwrite it", so an export is never lost by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from weakref import WeakKeyDictionary

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from writeit import export
from writeit.models import PipelineRun, PipelineStatus, UserPreferences
from writeit.tui import format as fmt
from writeit.tui import keys

FORMATS = {"md": "Markdown", "yaml": "YAML", "json": "JSON"}
FORMAT_KEYS = {"md": ("m", "1"), "yaml": ("y", "2"), "json": ("j", "3")}

# What to include, on one line after "Include": checkbox id -> (label, default, the
# export_run option it sets).
TICKS = {
    "export-history": ("step history", True, "history"),
    "export-candidates": ("candidates", True, "candidates"),
    "export-branches": ("every branch of the run", False, "all_branches"),
}
# The last export's ticks per app (a TUI session): the next dialog opens with them.
_LAST_TICKS: WeakKeyDictionary[App, dict[str, bool]] = WeakKeyDictionary()


def _opening_ticks(app: App, preferences: UserPreferences) -> dict[str, bool]:
    """The ticks a new dialog shows: a preference the writer set, else the session's
    last export, else the defaults."""
    ticks = {key: default for key, (_, default, _) in TICKS.items()}
    ticks |= _LAST_TICKS.get(app, {})
    chosen = preferences.model_fields_set
    for key, (_, _, option) in TICKS.items():
        if f"export_{option}" in chosen:
            ticks[key] = bool(getattr(preferences, f"export_{option}"))
    return ticks


def _write(
    engine, run: PipelineRun, fmt_name: str, ticks: dict[str, bool], path: Path, overwrite: bool
) -> export.Saved:
    options = {TICKS[key][2]: value for key, value in ticks.items()}
    text = export.export_run(engine, run, fmt_name, **options)
    return export.save(text, path, if_exists="overwrite" if overwrite else "rename")


class FormatChoice(Widget, can_focus=True):
    """The formats on one line, "(•) Markdown   ( ) YAML   ( ) JSON": the choice is marked
    by the dot and bold type (reversed while focused), not by colour alone. ←/→ move it,
    Enter asks to export, a click picks a format."""

    BINDINGS = [
        Binding("left", "step(-1)", "Previous format", show=False),
        Binding("right", "step(1)", "Next format", show=False),
        Binding("enter", "submit", "Export", show=False),
    ]
    value: reactive[str] = reactive("md")

    class Changed(Message):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    class Submitted(Message):
        """Enter on the format: export with it."""

    def render(self) -> Text:
        text = Text()
        for key, name in FORMATS.items():
            click = Style(meta={"@click": f"choose({key!r})"})
            if key == self.value:
                look = Style(bold=True, reverse=self.has_focus) + click
                text.append(f"(•) {name}", look)
            else:
                text.append(f"( ) {name}", click)
            text.append("   ")
        return text

    def watch_value(self, value: str) -> None:
        self.post_message(self.Changed(value))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_choose(self, value: str) -> None:
        self.value = value

    def action_step(self, delta: int) -> None:
        names = list(FORMATS)
        self.value = names[(names.index(self.value) + delta) % len(names)]

    def action_submit(self) -> None:
        self.post_message(self.Submitted())


class ExportDialog(ModalScreen[Path | None]):
    ACTION_IDS = ("save_export", "close")
    BINDINGS = [
        *keys.bindings(*ACTION_IDS),
        # Format keys: a focused path field types these letters instead.
        *(
            Binding(key, f"choose_format({name!r})", FORMATS[name], show=False)
            for name, pair in FORMAT_KEYS.items()
            for key in pair
        ),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: PipelineRun | None = None
        self.format = "md"
        self._auto_path = ""
        self.saved: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="export-dialog"):
            yield Label("Export", classes="dialog-title", id="export-title")
            yield Static("", id="export-note", classes="hint")
            with Horizontal(classes="row"):
                yield Label("Format ", classes="row-label")
                yield FormatChoice(id="format")
            with Horizontal(classes="row", id="export-ticks"):
                yield Label("Include ", classes="row-label")
                for key, (label, default, _) in TICKS.items():
                    yield Checkbox(label, default, id=key, compact=True)
            yield Label("Save to", classes="field-label")
            yield Input("", id="path", compact=True)
            exists_note = Static("", id="path-exists", classes="hint")
            overwrite = Checkbox("Overwrite it", False, id="overwrite", compact=True)
            exists_note.display = overwrite.display = False  # shown when the file exists
            yield exists_note
            yield overwrite
            yield Static("", id="export-result")
            with Horizontal(classes="buttons"):
                yield Button("Export (Ctrl+S)", variant="primary", id="save", compact=True)
                yield Button("Close (Esc)", id="close", compact=True)
            yield Static(
                "M, Y, J or ←/→: format · Enter: export · Tab: next field · Esc: close",
                id="export-keys",
                classes="hint",
            )

    async def on_mount(self) -> None:
        engine = self.app.engine
        self.run = await asyncio.to_thread(engine.load, self.run_id)
        run = self.run
        preferences = engine.preferences
        # The writer's saved preference wins; otherwise the article as Markdown.
        if "export_format" in preferences.model_fields_set:
            self.format = preferences.export_format
        self.query_one(FormatChoice).value = self.format
        for key, value in _opening_ticks(self.app, preferences).items():
            self.query_one(f"#{key}", Checkbox).value = value
        self.query_one("#export-title", Label).update(
            f"Export run {fmt.short(run.pipeline_run_id)} · {run.pipeline.name} · {run.status.value}"
        )
        note = (
            "The article is complete."
            if run.status == PipelineStatus.COMPLETED
            else f"The run is at {run.current_step}, not complete: the article is its latest "
            "chosen text."
        )
        self.query_one("#export-note", Static).update(note)
        self._set_default_path()
        self._show_existing()
        self.query_one(FormatChoice).focus()

    def _set_default_path(self) -> None:
        assert self.run is not None
        path_input = self.query_one("#path", Input)
        default = fmt.path(
            export.default_path(self.app.engine.workspace.exports, self.run, self.format)
        )
        if path_input.value in ("", self._auto_path):
            path_input.value = default
        self._auto_path = default

    @on(FormatChoice.Changed)
    def _format_changed(self, event: FormatChoice.Changed) -> None:
        self.format = event.value
        if self.run is not None:
            self._set_default_path()
            self._show_existing()

    def action_choose_format(self, name: str) -> None:
        self.query_one(FormatChoice).value = name

    @on(FormatChoice.Submitted)
    def _format_submitted(self) -> None:
        self.action_save_export()

    def _target(self) -> Path | None:
        raw = self.query_one("#path", Input).value.strip()
        if not raw:
            return None
        path = Path(raw)
        with contextlib.suppress(RuntimeError):  # ~someone who does not exist: kept as typed
            path = path.expanduser()
        return path if path.is_absolute() else self.app.engine.workspace.exports / path

    @on(Input.Changed, "#path")
    @on(Checkbox.Changed, "#overwrite")
    def _show_existing(self) -> None:
        """Say when the target exists and what Ctrl+S will do about it."""
        path = self._target()
        exists = path is not None and os.path.lexists(path) and not path.is_dir()
        note = self.query_one("#path-exists", Static)
        overwrite = self.query_one("#overwrite", Checkbox)
        note.display = overwrite.display = exists
        if not exists or path is None:
            return
        if overwrite.value:
            note.update(Text(f"{path.name} exists and will be replaced.", "yellow"))
        else:
            new = export.next_free(path).name
            note.update(Text(f"{path.name} exists: it is kept and this export saves as {new}."))

    @on(Input.Submitted, "#path")
    def _path_submitted(self) -> None:
        self.action_save_export()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save_export()

    @on(Button.Pressed, "#close")
    def _close_pressed(self) -> None:
        self.action_close()

    def action_save_export(self) -> None:
        if self.run is None:
            return
        path = self._target()
        if path is None:
            self.query_one("#export-result", Static).update(Text("Give a path to save to.", "red"))
            return
        ticks = {key: self.query_one(f"#{key}", Checkbox).value for key in TICKS}
        _LAST_TICKS[self.app] = ticks
        overwrite = self.query_one("#overwrite", Checkbox).value

        async def save() -> None:
            result = self.query_one("#export-result", Static)
            try:
                saved = await asyncio.to_thread(
                    _write, self.app.engine, self.run, self.format, ticks, path, overwrite
                )
            except Exception as error:
                result.update(Text(str(error), "red"))
                return
            where, size = saved.path, saved.bytes
            self.saved = where
            self._show_existing()
            message = Text()
            message.append("✓ Saved ", "bold green")
            message.append(f"{FORMATS[self.format]} to\n")
            message.append(fmt.path(where), "bold")
            message.append(f"\n{fmt.size(size)}")
            result.update(message)
            self.app.say(f"Exported to {fmt.path(where)} ({fmt.size(size)})", title="Export")
            self.query_one("#close", Button).focus()

        self.run_worker(save(), group="export", exit_on_error=False)

    def action_close(self) -> None:
        self.dismiss(self.saved)
