"""`writeit replay`: ask a past step again, of other models or in another style, on a
new branch that keeps every choice made before it."""

from __future__ import annotations

from typing import Annotated

import typer

from writeit.cli import (
    ExportOpt,
    JsonOpt,
    JudgeOpt,
    OutOpt,
    PickOpt,
    RunArg,
    WorkspaceOpt,
    _engine,
    _open_tui,
    _run_async,
    app,
    console,
)
from writeit.cli.complete import complete_model, complete_style
from writeit.cli.headless import _drive
from writeit.cli.runs import _finish, _refuse_existing_out


@app.command()
def replay(
    run_id: RunArg,
    from_step: Annotated[
        str,
        typer.Option("--from", help="The step to ask again; the steps before it are kept."),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Ask this model from the step on (repeat for several; default: the run's).",
            autocompletion=complete_model,
        ),
    ] = None,
    style: Annotated[
        str | None,
        typer.Option(
            "--style",
            "-s",
            help='Write in this style from the step on ("" for none; default: the run\'s).',
            autocompletion=complete_style,
        ),
    ] = None,
    headless: Annotated[
        bool, typer.Option("--headless", help="Finish the branch without the TUI.")
    ] = False,
    pick: PickOpt = "best",
    judge: JudgeOpt = None,
    workspace: WorkspaceOpt = None,
    export: ExportOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a run from a step on a new branch: the earlier steps' choices are kept
    (no model is asked for them), the step and those after it are asked again.

    The run itself stays as it was; `writeit tree RUN` shows the replay as a branch.
    """
    if headless:
        _refuse_existing_out(export, out)
    engine = _engine(workspace)
    full_id = engine.resolve(run_id)
    child = _run_async(engine.replay(full_id, from_step, models=model or None, style=style))
    child_id = child.pipeline_run_id
    if not headless:
        _open_tui(workspace, run_id=child_id, start=True)
        return
    if not as_json:
        asked = ", ".join(child.models_for(from_step))
        console.print(
            f"Replaying run {full_id[:8]} from [bold]{from_step}[/] on branch "
            f"[bold]{child_id[:8]}[/] with {asked}",
            highlight=False,
        )
    finished = _run_async(_drive(engine, child_id, pick, quiet=as_json, judge=judge))
    _finish(
        engine,
        finished,
        export,
        out,
        as_json,
        extra={"parent": full_id, "from_step": from_step, "models": child.models_for(from_step)},
    )
