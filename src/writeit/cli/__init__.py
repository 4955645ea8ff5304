"""The `writeit` command: Typer + Rich over the engine.

Heavy modules (llm, textual, fastapi, uvicorn, the engine) are imported inside the
commands that need them, so `writeit --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from writeit import __version__
from writeit.errors import WriteItError

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(
    help="Write an article with several LLMs while staying in charge of it.",
    no_args_is_help=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion; callbacks below stay lazy
)
workspace_app = typer.Typer(help="Create, list, switch and remove workspaces.")
config_app = typer.Typer(help="Show and change preferences (config.yaml).")
app.add_typer(workspace_app, name="workspace")
app.add_typer(config_app, name="config")

PRIVATE_UMASK = 0o077  # files and folders WriteIt creates are readable by their owner only

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _ws():
    """The workspaces module, imported on first use (it pulls in pydantic and yaml)."""
    from writeit import workspaces

    return workspaces


from writeit.cli.complete import complete_model, complete_run, complete_workspace  # noqa: E402

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace to use (default: the active one).",
        autocompletion=complete_workspace,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunArg = Annotated[str, typer.Argument(metavar="RUN", autocompletion=complete_run)]
WorkspaceName = Annotated[str, typer.Argument(autocompletion=complete_workspace)]
JudgeOpt = Annotated[
    str | None,
    typer.Option(
        "--judge",
        help="A model that scores candidates for --pick best.",
        autocompletion=complete_model,
    ),
]
PickOpt = Annotated[str, typer.Option(help="Headless choice: first, best or N.")]
ExportOpt = Annotated[
    str | None, typer.Option("--export", help="Export when done: md, yaml or json.")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Export path (default: the workspace's exports).")
]


def _table(*columns: str, **kwargs: Any) -> Table:
    from rich.table import Table

    return Table(*columns, **kwargs)


def _run_async(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _engine(workspace: str | None):
    from writeit.engine import Engine

    return Engine(_ws().get_workspace(workspace), front_end="cli")


def _version(value: bool) -> None:
    if value:
        console.print(f"writeit {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run `writeit` alone to open the TUI on your recent runs."""
    if ctx.invoked_subcommand is None:
        _open_tui(workspace, reopen=True)


def _open_tui(workspace: str | None, **kwargs: Any) -> None:
    try:
        from writeit.tui.app import WriteItApp
    except ImportError:
        err.print(
            "[yellow]The TUI is not available in this build.[/] "
            "Use [bold]writeit run PIPELINE --headless[/] or [bold]writeit --help[/]."
        )
        raise typer.Exit(1) from None
    WriteItApp(workspace=workspace, **kwargs).run()


# --- entry point ----------------------------------------------------------------------------


def main() -> None:
    """Run the CLI; a user's mistake prints its message and hint, never a traceback.

    Everything WriteIt writes (store, exports, logs of the run) holds the writer's
    prompts and articles, so the process creates files for its owner only."""
    os.umask(PRIVATE_UMASK)
    try:
        code = app(standalone_mode=False)
    except WriteItError as error:
        err.print(f"[red]error:[/] {error}", highlight=False)
        sys.exit(getattr(error, "exit_code", 1))  # 3: a budget stopped the run
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted; the run is saved: writeit runs, then writeit resume RUN.")
        sys.exit(130)
    except Exception as error:
        if not _is_click_error(error):
            raise
        _show_click_error(error)
    if isinstance(code, int) and code:
        sys.exit(code)


def _is_click_error(error: Exception) -> bool:
    """A usage error or the like from the command-line parser. Typer raises its own
    copy of click's exceptions (all `typer.TyperException`); click itself is checked
    too, but only when something imported it, so the check costs no import."""
    click = sys.modules.get("click")
    return isinstance(error, typer.TyperException) or (
        click is not None and isinstance(error, click.ClickException)
    )


def _show_click_error(error: Exception) -> None:
    """Let the error print itself as click does (a usage error: the usage line, "Try
    'writeit X --help' for help." and "Error: ..."), then exit with its code: 2 for
    usage errors, 1 for the rest."""
    show = getattr(error, "show", None)
    if callable(show):
        show()
    else:
        err.print(f"[red]error:[/] {error}", highlight=False)
    sys.exit(getattr(error, "exit_code", 1))


# The commands register themselves on `app` when their modules are imported.
from writeit.cli import setup, runs, diff, replay, stats, web  # noqa: E402, F401, I001 - this order is --help's


def _place(name: str, after: str) -> None:
    """Move a command in --help's list: a command module of its own (diff) still reads
    best beside the commands it goes with (show, tree)."""
    commands = app.registered_commands
    found = next(c for c in commands if (c.name or c.callback.__name__) == name)
    commands.remove(found)
    index = next(i for i, c in enumerate(commands) if (c.name or c.callback.__name__) == after)
    commands.insert(index + 1, found)


_place("diff", after="tree")
_place("replay", after="fork")
_place("web", after="serve")
