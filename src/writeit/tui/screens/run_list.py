"""The run list: recent runs of the workspace; new, open, resume, delete.

It is the first screen of `writeit`: keys typed before the list is in wait for it
(Down, Enter opens the second run, as the writer meant) instead of being lost or
answered with "No run selected".
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Static

from writeit.store import RunSummary
from writeit.tui import format as fmt
from writeit.tui import keys
from writeit.tui.messages import EngineUpdated
from writeit.tui.screens.early_keys import HoldsEarlyKeys

FOLLOW_SECONDS = 2.0  # how often the list looks for runs other processes changed
STATUS_STYLE = {
    "completed": "green",
    "running": "yellow",
    "paused": "magenta",
    "error": "red",
    "initializing": "dim",
}


NEEDS_THE_LIST = frozenset({"open", "resume", "delete", "history", "export"})


class RunListScreen(HoldsEarlyKeys[None]):
    ACTION_IDS = ("new_run", "open", "resume", "delete", "history", "export", "refresh")
    BINDINGS = keys.bindings(*ACTION_IDS)
    AUTO_FOCUS = ""  # none: the table takes focus once it has runs; before, keys are held

    def __init__(self) -> None:
        super().__init__()
        self.summaries: dict[str, RunSummary] = {}
        self._reload_pending = False
        self._shown: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="list-title", classes="screen-title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(
            "No runs yet. Press N to start one: pick a pipeline, give it your source "
            "material, and watch several models write side by side.",
            id="empty",
            classes="hint",
        )
        yield Footer(compact=True)

    COLUMNS = (
        ("Run", 10),
        ("Pipeline", 14),
        ("Status", 11),
        ("Step", 12),
        ("Updated", 11),
        ("Cost", 7),
    )
    NARROW = ("Pipeline", "Cost")  # left out below 100 columns; the source line names the pipeline

    def on_mount(self) -> None:
        self.run_worker(self.reload, exclusive=True, group="reload", exit_on_error=False)
        # Other processes (a CLI run, the server) change runs too; a reload that finds
        # nothing new costs one small read and draws nothing.
        self.set_interval(FOLLOW_SECONDS, self._reload_later)

    def on_resize(self) -> None:
        self.run_worker(self.reload, exclusive=True, group="reload", exit_on_error=False)

    def _columns(self) -> list[tuple[str, int]]:
        if (self.size.width or 80) >= 100:
            return list(self.COLUMNS)
        return [c for c in self.COLUMNS if c[0] not in self.NARROW]

    def _source_width(self) -> int:
        used = sum(width + 2 for _, width in self._columns())  # cell padding
        return max(16, (self.size.width or 80) - used - 4)

    def on_screen_resume(self) -> None:
        self.run_worker(self.reload, exclusive=True, group="reload", exit_on_error=False)

    @on(EngineUpdated)
    def _changed(self, message: EngineUpdated) -> None:
        if message.kind in ("run_status", "forked", "step_done") and not self._reload_pending:
            self._reload_pending = True
            self.set_timer(0.5, self._reload_later)

    def _reload_later(self) -> None:
        self._reload_pending = False
        if self.is_current:
            self.run_worker(self.reload, exclusive=True, group="reload", exit_on_error=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions on the highlighted run wait (greyed) for the first list: until then a
        key for them is held with the others, not answered with "No run selected"."""
        if action in NEEDS_THE_LIST and self.holding_keys:
            return None
        return True

    async def reload(self) -> None:
        """Show the runs; the first time, let the held keys and the run actions through."""
        try:
            await self._fill()
        except Exception:  # a store error: the keys still go somewhere
            self._list_ready()
            raise
        self._list_ready()  # not after a cancel: the newer reload that replaced it does

    def _list_ready(self) -> None:
        if self.holding_keys:
            self.release_keys()
            self.refresh_bindings()

    async def _fill(self) -> None:
        engine = self.app.engine
        summaries = await asyncio.to_thread(engine.store.recent, limit=500)
        if not self.is_attached or not self.query(DataTable):
            return  # the app is closing
        shape = (self.size.width, [(r.run_id, r.last_seq, r.deleted) for r in summaries])
        if shape == self._shown:
            return  # nothing changed: no flicker
        self._shown = shape
        table = self.query_one(DataTable)
        selected = self.selected_id()
        table.clear(columns=True)
        columns = self._columns()
        narrow = len(columns) < len(self.COLUMNS)
        for label, width in columns:
            table.add_column(label, width=width, key=label)
        source_width = self._source_width()
        table.add_column("Source / branch", width=source_width, key="source")
        self.summaries = {s.run_id: s for s in summaries}
        for s in summaries:
            status = Text(
                f"{fmt.STATUS_MARK.get(s.status, '')} {s.status}", STATUS_STYLE.get(s.status, "")
            )
            run_label = ("↳ " if s.parent else "") + fmt.short(s.run_id)
            source = (
                f"branch of {fmt.short(s.parent)} at {s.branch_point}: {s.title}"
                if s.parent
                else s.title
            )
            cells = {
                "Run": run_label,
                "Pipeline": s.pipeline,
                "Status": status,
                "Step": f"{s.step_index + 1}/{s.steps_total} {s.current_step}",
                "Updated": fmt.when(s.updated_at),
                "Cost": fmt.cost(s.cost) if s.priced else "unknown",
            }
            if narrow:
                source = f"{s.pipeline}: {source}"
            table.add_row(
                *(cells[label] for label, _ in columns),
                fmt.one_line(source, source_width),
                key=s.run_id,
            )
        if selected in self.summaries:
            table.move_cursor(row=table.get_row_index(selected))
        workspace = engine.workspace.name
        count = len(summaries)
        self.query_one("#list-title", Static).update(
            f"[b]WriteIt[/b]  ·  workspace [b]{workspace}[/b]  ·  {count} run{'s' if count != 1 else ''}"
        )
        self.query_one("#empty").display = not summaries
        table.display = bool(summaries)
        if summaries:
            self.set_focus(table)  # now, not after a refresh: held keys go to the table

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def _need_selection(self) -> str | None:
        run_id = self.selected_id()
        if run_id is None:
            self.app.say("No run selected. Press N to start one.", severity="warning")
        return run_id

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    # --- actions ---------------------------------------------------------------------------

    def action_new_run(self) -> None:
        self.app.action_new_run()

    def action_refresh(self) -> None:
        self.run_worker(self.reload, exclusive=True, group="reload", exit_on_error=False)

    def action_open(self) -> None:
        run_id = self._need_selection()
        if run_id:
            status = self.summaries[run_id].status
            self.app.open_run(run_id, resume="auto" if status == "paused" else False)

    def action_resume(self) -> None:
        run_id = self._need_selection()
        if run_id:
            if self.summaries[run_id].status == "completed":
                self.app.say("That run is completed: open it, or fork it from the history (H).")
            self.app.open_run(run_id, resume="force")

    def action_history(self) -> None:
        from writeit.tui.screens.history import HistoryScreen

        run_id = self._need_selection()
        if run_id:

            def done(result: str | None) -> None:
                if result:
                    self.app.open_run(result)

            self.app.push_screen(HistoryScreen(run_id), done)

    def action_export(self) -> None:
        from writeit.tui.screens.export import ExportDialog

        run_id = self._need_selection()
        if run_id:
            self.app.push_screen(ExportDialog(run_id))

    def action_delete(self) -> None:
        from writeit.tui.screens.dialogs import ConfirmDialog

        run_id = self._need_selection()
        if not run_id:
            return
        summary = self.summaries[run_id]

        async def confirmed(yes: bool | None) -> None:
            if yes:
                done = await self.app.attempt(self.app.engine.delete(run_id), title="Delete")
                if done is not None:
                    self.app.say(f"Deleted run {fmt.short(run_id)}")
                    await self.reload()

        self.app.push_screen(
            ConfirmDialog(
                f"Delete run {fmt.short(run_id)} ({summary.pipeline}, {summary.status})?",
                "It leaves this list. Its history stays in the store, since branches may share it.",
                yes="Delete",
            ),
            confirmed,
        )
