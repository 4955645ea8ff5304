"""`writeit web`: the TUI in a browser (src/writeit/web.py does the serving)."""

from __future__ import annotations

from typing import Annotated

import typer

from writeit.cli import WorkspaceOpt, app
from writeit.cli.complete import complete_model, complete_style


@app.command()
def web(
    port: Annotated[int, typer.Option(help="TCP port.")] = 8001,
    host: Annotated[
        str, typer.Option(help="Interface to bind; anything but loopback is exposed.")
    ] = "127.0.0.1",
    workspace: WorkspaceOpt = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model for every step of new runs; repeat for one candidate per model.",
            autocompletion=complete_model,
        ),
    ] = None,
    style: Annotated[
        str | None,
        typer.Option(
            "--style", "-s", help="Style primer of new runs.", autocompletion=complete_style
        ),
    ] = None,
) -> None:
    """Open the TUI in a browser: prints an address to open (it carries the server token
    once). Ctrl+C stops it and saves the streams."""
    from writeit.web import run_web

    run_web(host=host, port=port, workspace=workspace, models=model or [], style=style)
