"""Headless runs: the autopilot with live progress, stopped cleanly by Ctrl+C or SIGTERM
(the run is paused with its text, never decided for the writer)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from writeit.cli import _table, err
from writeit.errors import WriteItError

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


async def _drive(
    engine,
    run_id: str,
    pick: str,
    quiet: bool,
    judge: str | None = None,
    instead: str | None = None,
):
    """Autopilot with progress: in a terminal, a live table with one row per response,
    counting characters; otherwise (a log, a pipe) a line as each response starts and
    ends. With `instead`, the current step's failed and interrupted candidates are first
    asked of that model (the engine's resume), so its stream shows here too.

    Ctrl+C or SIGTERM stops the streams with their text and leaves the run paused, as S
    does in the TUI; the resume line is printed and the exit code is 130 (143 for TERM).
    A second one exits at once."""
    import asyncio

    from writeit import autopilot

    stop = _Stop(asyncio.get_running_loop())
    progress = _Progress(live=err.is_terminal and not quiet, quiet=quiet)
    subscription = engine.subscribe(run_id)

    async def watch() -> None:
        async for update in subscription:
            progress.update(update.kind, update.data)

    try:
        with progress:
            watcher = asyncio.create_task(watch())
            try:
                if instead:
                    await _resume_with(engine, run_id, instead)
                return await autopilot.drive(
                    engine,
                    run_id,
                    pick,
                    judge=judge,
                    stop=stop.event,
                    say=None if quiet else _say,
                )
            except autopilot.Stopped as stopped:
                progress.stopped()
                stop.stopped = stopped.run
            finally:
                watcher.cancel()
                subscription.close()
                await engine.logged()  # llm logs get every call before the process ends
    finally:
        stop.remove()
    raise typer.Exit(stop.report())


def _say(text: str) -> None:
    err.print(f"[yellow]{text}[/]", highlight=False)


class _Stop:
    """Ctrl+C and SIGTERM during a headless run: the first sets `event` (the autopilot
    pauses the run and stops); a second exits at once, whatever is still in flight."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, loop) -> None:
        import asyncio
        import signal

        self.loop, self.event = loop, asyncio.Event()
        self.signum: int | None = None
        self.stopped = None  # the paused run, once stopped
        self.installed: list[int] = []
        for name in self.SIGNALS:
            number = getattr(signal, name)
            try:
                loop.add_signal_handler(number, self._on_signal, number)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            self.installed.append(number)

    def _on_signal(self, number: int, frame: object = None) -> None:
        if self.signum is not None:
            err.print("Stopped at once; the text streamed so far was checkpointed.")
            sys.stderr.flush()
            import os

            os._exit(128 + number)  # a hung call or thread must not keep the process
        self.signum = number
        self.event.set()
        err.print("Stopping: keeping the text so far… (again to quit at once)")

    def remove(self) -> None:
        """Give the signals back; once a stop is under way, a second one still quits at
        once while the process ends (its threads are joined then, and one may hang)."""
        import signal

        for number in self.installed:
            self.loop.remove_signal_handler(number)
            if self.signum is not None:
                signal.signal(number, self._on_signal)

    def report(self) -> int:
        """Say how to go on with the stopped run; the exit code: 128 + the signal, or 1
        when the run was paused elsewhere (the TUI, the server)."""
        run = self.stopped
        short = run.pipeline_run_id[:8]
        why = "Interrupted" if self.signum is not None else "Paused in another WriteIt process"
        if run.status.value == "paused":
            err.print(
                f"{why}; run {short} is paused with its text so far. Go on with: "
                f"writeit resume {short} --headless (or writeit resume {short} in the TUI)",
                highlight=False,
            )
        else:
            err.print(f"{why}; run {short} is {run.status.value}: writeit show {short}")
        return 128 + self.signum if self.signum is not None else 1


class _Progress:
    """What the headless run shows while models write: a live table in a terminal, a
    line per response start and end otherwise, nothing with --json (`quiet`)."""

    def __init__(self, live: bool, quiet: bool) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.quiet, self.live = quiet, None
        if live:
            from rich.live import Live

            self.live = Live(self._table(), console=err, refresh_per_second=8)

    def __enter__(self) -> _Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            if self.rows:
                err.print()  # the table ends its line, also before an error (a budget)

    def _table(self) -> Table | Text:
        if not self.rows:
            from rich.text import Text

            return Text()  # nothing ran (a budget refused the first step): no header
        grid = _table("Step", "Model", "Chars", "Status", box=None)
        for row in self.rows.values():
            grid.add_row(row["step"], row["model"], str(row["chars"]), row["status"])
        return grid

    def _line(self, row: dict[str, Any], what: str) -> None:
        if self.live is None and not self.quiet:
            err.print(f"{row['step']} · {row['model']}: {what}", highlight=False)

    def update(self, kind: str, data: dict[str, Any]) -> None:
        row = self.rows.get(data.get("response_id", ""))
        if kind == "response_started":
            row = {"step": data["step"], "model": data["model"], "chars": 0, "status": "streaming"}
            self.rows[data["response_id"]] = row
            self._line(row, "started" if data.get("kind") != "judge" else "judging")
        elif kind == "delta" and row is not None:
            row["chars"] += len(data["text"])
            if self.live is None:
                return
        elif kind == "response_done" and row is not None:
            row["status"] = f"[green]done[/] {data['tokens']} tok {data['seconds']:.1f}s"
            self._line(
                row, f"done, {row['chars']} chars, {data['tokens']} tok, {data['seconds']:.1f}s"
            )
        elif kind == "response_failed" and row is not None:
            row["status"] = f"[red]failed[/] {data['error']}"
            self._line(row, f"failed: {data['error']}")
        elif kind == "response_selected" and not self.quiet:
            if self.live is not None:
                self.live.console.print(f"[bold]{data['step']}[/]: selected")
            else:
                err.print(f"{data['step']}: selected", highlight=False)
        if self.live is not None:
            self.live.update(self._table())

    def stopped(self) -> None:
        """The streams still going were stopped with their text."""
        for row in self.rows.values():
            if row["status"] == "streaming":
                row["status"] = "[yellow]stopped[/]"
                self._line(row, f"stopped, {row['chars']} chars kept")
        if self.live is not None:
            self.live.update(self._table())


async def _resume_with(engine, run_id: str, model: str) -> None:
    """Ask `model` in place of the failed and interrupted candidates. If it fails as well,
    stop here: the autopilot would otherwise ask the step's original models again."""
    from writeit.models import PipelineStatus

    resumed = await engine.resume(run_id, model=model)
    if resumed.status == PipelineStatus.ERROR:
        raise WriteItError(
            f"step {resumed.current_step!r} failed with {model}: {resumed.error}",
            hint=f"try another model: writeit resume {run_id[:8]} --headless --model MODEL",
        )
