"""The export dialog: format, history or not, a path (default in the workspace's exports
folder), then a confirmation with the saved path and size.

When the path names an existing file the dialog says so: saving then picks a new name
(name-2…) unless the writer ticks "Overwrite it", so an export is never lost by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from writeit import export
from writeit.models import PipelineRun, PipelineStatus
from writeit.tui import format as fmt
from writeit.tui import keys

FORMATS = {"md": "Markdown", "yaml": "YAML", "json": "JSON"}


def _write(
    engine, run: PipelineRun, fmt_name: str, history: bool, path: Path, overwrite: bool
) -> export.Saved:
    text = export.render(
        run,
        fmt_name,
        include_history=history,
        branches=len(engine.store.children(run.pipeline_run_id)),
    )
    return export.save(text, path, if_exists="overwrite" if overwrite else "rename")


class ExportDialog(ModalScreen[Path | None]):
    ACTION_IDS = ("save_export", "close")
    BINDINGS = keys.bindings(*ACTION_IDS)

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
                with RadioSet(id="format", compact=True):
                    for key, name in FORMATS.items():
                        yield RadioButton(name, id=f"fmt-{key}", compact=True)
            yield Checkbox("Include the history of every step", True, id="history", compact=True)
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

    async def on_mount(self) -> None:
        engine = self.app.engine
        self.run = await asyncio.to_thread(engine.load, self.run_id)
        run = self.run
        preferences = engine.preferences
        # The writer's saved preference wins; otherwise the article as Markdown.
        if "export_format" in preferences.model_fields_set:
            self.format = preferences.export_format
        self.query_one(f"#fmt-{self.format}", RadioButton).value = True
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
        self.query_one("#save", Button).focus()

    def _set_default_path(self) -> None:
        assert self.run is not None
        path_input = self.query_one("#path", Input)
        default = fmt.path(
            export.default_path(self.app.engine.workspace.exports, self.run, self.format)
        )
        if path_input.value in ("", self._auto_path):
            path_input.value = default
        self._auto_path = default

    @on(RadioSet.Changed, "#format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        self.format = (event.pressed.id or "fmt-md").removeprefix("fmt-")
        if self.run is not None:
            self._set_default_path()

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
        history = self.query_one("#history", Checkbox).value
        overwrite = self.query_one("#overwrite", Checkbox).value

        async def save() -> None:
            result = self.query_one("#export-result", Static)
            try:
                saved = await asyncio.to_thread(
                    _write, self.app.engine, self.run, self.format, history, path, overwrite
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
