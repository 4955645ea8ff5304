"""Commands on runs: run, resume, rewind, fork, export, show, runs, tree, serve.

A headless run is driven by `headless._drive`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    _print_json,
    _run_async,
    _table,
    _ws,
    app,
    console,
    err,
)
from writeit.cli.complete import complete_model, complete_pipeline, complete_style
from writeit.cli.headless import _drive
from writeit.errors import WriteItError

if TYPE_CHECKING:
    pass

BudgetOpt = Annotated[
    float | None,
    typer.Option("--budget", min=0, help="The most the run may spend, in USD."),
]

# --- runs --------------------------------------------------------------------------------


def _parse_inputs(values: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise WriteItError(
                f"--input {item!r} is not NAME=VALUE",
                hint="e.g. --input target_audience='SRE teams' or --input source_material=@notes.md",
            )
        if value.startswith("@"):
            source = value[1:]
            if source == "-":
                value = sys.stdin.read()
            else:
                file = Path(source).expanduser()
                if not file.is_file():
                    raise WriteItError(
                        f"--input {name}: no file at {file}", hint="check the path after @"
                    )
                value = file.read_text(encoding="utf-8", errors="replace")
        inputs[name.strip()] = value
    return inputs


@app.command()
def run(
    pipeline: Annotated[
        str,
        typer.Argument(
            help="Pipeline name (see `writeit pipelines`) or a .yaml path.",
            autocompletion=complete_pipeline,
        ),
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="NAME=VALUE or NAME=@FILE (repeatable)."),
    ] = None,
    style: Annotated[
        str | None,
        typer.Option(
            "--style",
            "-s",
            help="Style primer (see `writeit styles`).",
            autocompletion=complete_style,
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model for every step; repeat for one candidate per model.",
            autocompletion=complete_model,
        ),
    ] = None,
    headless: Annotated[
        bool, typer.Option("--headless", help="Run to the end without the TUI.")
    ] = False,
    pick: PickOpt = "best",
    judge: JudgeOpt = None,
    workspace: WorkspaceOpt = None,
    export: ExportOpt = None,
    out: OutOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    blind: Annotated[
        bool | None,
        typer.Option(
            "--blind/--no-blind",
            help="Blind review: shuffle each step's candidates and hide their models until "
            "you choose (default: the blind_review preference).",
        ),
    ] = None,
    budget: BudgetOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Forecast the cost per step and model; call no model."),
    ] = False,
) -> None:
    """Start a run: in the TUI, or headless with a pick policy.

    With --budget USD the run pauses before a step that would take it past the budget
    (headless: exit code 3); `writeit resume RUN --budget MORE` goes on."""
    values = _parse_inputs(inputs or [])
    if dry_run:
        engine = _engine(workspace)
        step_models = _announce_models(engine, pipeline, model or [], quiet=True)
        ahead = engine.forecast(
            pipeline=pipeline, inputs=values, style=style, models=model, step_models=step_models
        )
        _print_forecast(ahead, as_json, budget or engine.preferences.default_budget_usd)
        return
    if not headless:
        _open_tui(
            workspace,
            pipeline=pipeline,
            inputs=values,
            style=style,
            models=model or [],
            blind=blind,
            budget=budget,
        )
        return
    _refuse_existing_out(export, out)
    engine = _engine(workspace)
    step_models = _announce_models(engine, pipeline, model or [], quiet=as_json)

    async def go():
        started = await engine.start_run(
            pipeline,
            values,
            style=style,
            models=model or [],
            step_models=step_models,
            blind=blind,
            budget_usd=budget,
        )
        return await _drive(engine, started.pipeline_run_id, pick, quiet=as_json, judge=judge)

    finished = _run_async(go())
    _finish(engine, finished, export, out, as_json)


def _print_forecast(ahead, as_json: bool, budget: float | None) -> None:
    """The forecast per step and model, and the total (a dry run)."""
    if as_json:
        _print_json({**ahead.to_json(), "budget_usd": budget})
        return
    table = _table("Step", "Model", "In tok", "Out tok (range)", "Cost (range)")
    for item in ahead.items:
        table.add_row(
            item.step,
            item.model,
            f"{'≈' if item.estimated else ''}{item.input_tokens}",
            f"{item.output_tokens} ({item.output_low}-{item.output_high})",
            _span(item.cost, item.low, item.high),
        )
    console.print(table)
    prices = {i.model: i.price for i in ahead.items}
    console.print(
        "Prices, USD per million tokens in · out: "
        + "; ".join(
            f"{model} {price.input:g} · {price.output:g}" if price else f"{model} unknown"
            for model, price in prices.items()
        ),
        highlight=False,
    )
    console.print(f"Total: [bold]{_span(ahead.cost, ahead.low, ahead.high)}[/]", highlight=False)
    if ahead.unpriced:
        console.print(
            f"[yellow]No known price for {', '.join(ahead.unpriced)}[/]: set one with "
            f"writeit config set pricing.{ahead.unpriced[0]}.input USD_PER_MILLION (and .output)",
            highlight=False,
        )
    if ahead.estimated:
        console.print("≈ input tokens estimated (no tokenizer for that model here)", style="dim")
    if budget is not None and ahead.cost is not None and ahead.cost > budget:
        console.print(f"[yellow]Over the budget of ${budget:.4f}[/]: the run would pause.")


def _span(cost: float | None, low: float | None, high: float | None) -> str:
    if cost is None or low is None or high is None:
        return "price unknown"
    return f"${cost:.4f} ({low:.4f}-{high:.4f})"


def _announce_models(engine, pipeline: str, models: list[str], quiet: bool) -> dict[str, list[str]]:
    """Say plainly which models run; use the preferences' models only when they can run."""
    from writeit import config, providers

    spec = config.get_pipeline(pipeline, engine.pipeline_dirs())
    step_models: dict[str, list[str]] = {}
    if not models:
        usable = {m.model_id for m in providers.list_models() if m.usable and m.needs_key}
        aliases = {
            a for m in providers.list_models() if m.usable and m.needs_key for a in m.aliases
        }
        for step in spec.steps:
            wanted = engine.preferences.default_models.get(step.name)
            if not step.models and wanted and wanted in usable | aliases:
                step_models[step.name] = [wanted]
    if quiet:
        return step_models
    chosen = {s.name: models or step_models.get(s.name) or spec.models_for(s) for s in spec.steps}
    err.print(
        "Models: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in chosen.items()), highlight=False
    )
    if (
        any(providers.OFFLINE_MODEL in v for v in chosen.values())
        and not providers.has_real_provider()
    ):
        err.print(
            f"[yellow]Using the offline model {providers.OFFLINE_MODEL!r}[/] (no provider key is configured): "
            "its text is random words from your prompt. For real articles: "
            "[bold]llm keys set openai[/] then [bold]--model gpt-4o-mini[/] (see `writeit models`)."
        )
    return step_models


def _finish(
    engine,
    run_state,
    export: str | None,
    out: Path | None,
    as_json: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """The finished run in a line (or JSON, with `extra`), and its export if asked."""
    result: dict[str, Any] = {
        "run_id": run_state.pipeline_run_id,
        "status": run_state.status.value,
        "tokens": run_state.total_tokens,
        "cost_usd": None if run_state.known_cost is None else round(run_state.known_cost, 6),
        **_inherited_json(engine, run_state),
        **(extra or {}),
    }
    if export:
        path, size = _export(engine, run_state, export, out, include_history=True)
        result.update(export=str(path), bytes=size)
    if as_json:
        _print_json(result)
        return
    console.print(
        f"Run [bold]{run_state.pipeline_run_id}[/] {run_state.status.value} ({_spend_text(engine, run_state)})",
        highlight=False,
    )
    if export:
        console.print(f"Exported to [bold]{result['export']}[/] ({result['bytes']} bytes)")


def _export(
    engine,
    run_state,
    fmt: str,
    out: Path | None,
    include_history: bool,
    force: bool = False,
    candidates: bool = True,
    all_branches: bool = False,
) -> tuple[Path, int]:
    """Write the export: --out is refused if it exists (unless --force); a default name
    that is taken gets -2, -3… so an earlier export, maybe edited since, is never lost."""
    from writeit import export as exporter

    text = exporter.export_run(
        engine,
        run_state,
        fmt,
        history=include_history,
        candidates=candidates,
        all_branches=all_branches,
    )
    if out is None:
        path = exporter.default_path(engine.workspace.exports, run_state, fmt)
        if_exists: exporter.IfExists = "rename"
    else:
        path, if_exists = out, "overwrite" if force else "refuse"
    try:
        saved = exporter.save(text, path, if_exists=if_exists)
    except exporter.ExportExists as error:
        error.hint = "add --force to overwrite it, or choose another --out"
        raise
    return saved.path, saved.bytes


def _refuse_existing_out(export: str | None, out: Path | None) -> None:
    """Before a headless run spends tokens: its export at the end would be refused."""
    if export and out is not None and (out.exists() or out.is_symlink()):
        raise WriteItError(
            f"--out {out} already exists",
            hint="choose another --out, or export afterwards: writeit export RUN --out PATH --force",
        )


RUN_COLUMNS = ("Run", "Pipeline", "Status", "Step", "Updated", "Cost")


@app.command()
def runs(
    workspace: WorkspaceOpt = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    style: Annotated[str | None, typer.Option(help="Only runs in this style.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs that asked this model.")] = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs of the workspace, newest first."""
    store = _ws().get_workspace(workspace).open_store()
    found = store.recent(limit=limit, status=status, pipeline=pipeline, style=style, model=model)
    if as_json:
        _print_json([r.__dict__ for r in found])
        return
    if not found:
        console.print("No runs yet. Start one: [bold]writeit run tech-article[/]")
        return
    from rich import box

    rows = [
        (
            r.run_id[:8] + (" ⑂" if r.parent else ""),
            r.pipeline,
            r.status,
            f"{r.step_index + 1}/{r.steps_total} {r.current_step}",
            r.updated_at[5:16].replace("T", " "),
            f"${r.cost:.4f}" if r.priced else "unknown",
            r.title.lstrip("# "),
        )
        for r in found
    ]
    table = _table(box=box.SIMPLE_HEAD, pad_edge=False)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(RUN_COLUMNS)]
    for column in RUN_COLUMNS:
        table.add_column(column, no_wrap=True)
    room = console.width - sum(widths) - 3 * (len(widths) + 1)  # the source takes what is left
    table.add_column("Source", no_wrap=True, overflow="ellipsis", max_width=max(room, 6))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _show_blind(step) -> None:
    """A blind step before its choice: the candidates in the writer's order, no models."""
    console.print("    blind review: models hidden until you choose (--reveal shows them)")
    for number, response in enumerate(step.candidates, 1):
        quality = f", quality {response.quality_score:.2f}" if response.quality_score else ""
        console.print(
            f"    candidate {number} [{response.status.value}]{quality}",
            highlight=False,
            markup=False,
        )


@app.command()
def show(
    run_id: RunArg,
    at: Annotated[
        int | None, typer.Option("--at", help="The state right after event SEQ (time travel).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
    reveal: Annotated[
        bool,
        typer.Option("--reveal", help="Blind review: show the models before the choice."),
    ] = False,
) -> None:
    """Show a run: its steps, candidates and choices (optionally as it was at an event)."""
    from writeit import export, llmlog
    from writeit.models import blind_exclude, blind_view

    engine = _engine(workspace)
    full_id = engine.resolve(run_id)
    state = engine.store.state_at(full_id, at) if at is not None else engine.load(full_id)
    if as_json:
        if reveal:
            _print_json(state.model_dump(mode="json"))
        else:
            hidden = {"hidden": state.current.hidden}
            _print_json(
                blind_view(state).model_dump(mode="json", exclude=blind_exclude(state)) | hidden
            )
        return
    console.print(
        f"[bold]{state.pipeline_run_id}[/]  {state.configuration_id}  [bold]{state.status.value}[/]  event {state.last_seq}"
        + (
            f"  (forked from {state.parent_pipeline_run_id[:8]} at {state.branch_point})"
            if state.parent_pipeline_run_id
            else ""
        )
    )
    if state.error:
        console.print(f"[red]{state.error}[/]")
    console.print(
        f"cost {_spend_text(engine, state, tokens=False)}" + _budget_line(engine, state),
        highlight=False,
    )
    if state.paused_because:
        console.print(f"[yellow]paused: {state.paused_because}[/]", highlight=False)
    calls = llmlog.conversations(state)
    for name in state.pipeline.step_names:
        step = state.steps[name]
        marker = "▶" if name == state.current_step else " "
        console.print(
            f"{marker} [bold]{name}[/] {step.status.value}"
            + (f" (attempt {step.attempt})" if step.retry_count else "")
        )
        if step.hidden and not reveal:
            _show_blind(step)
            continue
        numbers = export.candidate_numbers(step)
        chosen_id = (
            step.ai_responses[step.user_selection].response_id
            if step.user_selection is not None
            else None
        )
        for response in export.in_number_order(step, numbers):
            chosen = " ✓" if response.response_id == chosen_id else ""
            number = numbers.get(response.response_id)
            about = "≈" if response.usage_stats and response.usage_stats.estimated else ""
            info = f"{about}{response.tokens} tok, {response.processing_time:.1f}s"
            if response.usage_stats is not None:
                info += f", {_cost(response.usage_stats.cost_usd)}"
            if response.quality_score is not None:
                info += f", quality {response.quality_score:.2f}"
            via = f" via {response.provider}" if response.provider else ""
            line = f"    {f'{number}.' if number else '·':>2} {response.kind} {response.model_name}{via} [{response.status.value}] {info}{chosen}"
            console.print(line, highlight=False, markup=False)
            if response.instruction:
                console.print(
                    f"      instruction: {response.instruction}", highlight=False, markup=False
                )
            if response.error:
                console.print(f"      {response.error}", style="red", highlight=False, markup=False)
            if response.flags:
                flagged = "; ".join(flag.label() for flag in response.flags)
                console.print(f"      ⚑ {flagged}", style="yellow", highlight=False, markup=False)
        for cid in calls.get(name, []):
            console.print(f"    llm logs --cid {cid}", style="dim", highlight=False, markup=False)
        if step.decision:
            console.print(f"    {export.decided(step)}", highlight=False, markup=False)
        if step.user_feedback:
            console.print(f"    feedback: {step.user_feedback}", highlight=False, markup=False)
    final = state.final_text
    if final:
        console.print("\n[bold]Latest output[/]")
        console.print(
            final[:1200] + ("…" if len(final) > 1200 else ""), highlight=False, markup=False
        )


@app.command()
def tree(run_id: RunArg, workspace: WorkspaceOpt = None) -> None:
    """Show a run's family: its root, every fork and where each branched off."""
    store = _ws().get_workspace(workspace).open_store()
    full_id = store.resolve(run_id)
    root_id = store.ancestors(full_id)[0]

    def label(rid: str) -> str:
        s = store.summary(rid)
        where = f" from {s.branch_point} (event {s.branch_seq})" if s.parent else ""
        if s.replayed:  # a replay asks its branch point again, maybe of other models
            note = s.replay_note(store.summary(s.parent) if s.parent else None)
            where = f" · {note} (event {s.branch_seq})"
        here = " [bold cyan]← this run[/]" if rid == full_id else ""
        return f"{rid[:8]} {s.status} at {s.current_step}{where}{here}"

    # Walked with a stack, not recursion: a family can be thousands of forks deep. A fork
    # that is its parent's only child stays at its parent's indent, so a long chain reads
    # as a list and only real branching indents.
    stack = [(root_id, 0)]
    while stack:
        rid, depth = stack.pop()
        shown = min(depth, 30)
        prefix = "  " * shown + ("" if rid == root_id else "└ ") + ("… " if depth > shown else "")
        console.print(prefix + label(rid), highlight=False)
        children = store.children(rid)
        indent = 0 if len(children) == 1 else 1
        stack.extend((child, depth + indent) for child in reversed(children))


@app.command()
def resume(
    ctx: typer.Context,
    run_id: RunArg,
    headless: Annotated[
        bool, typer.Option("--headless", help="Finish the run without the TUI.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Ask this model instead for the current step's failed and interrupted "
            "candidates (with --headless).",
            autocompletion=complete_model,
        ),
    ] = None,
    pick: PickOpt = "best",
    judge: JudgeOpt = None,
    workspace: WorkspaceOpt = None,
    export: ExportOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    budget: BudgetOpt = None,
) -> None:
    """Continue an interrupted or paused run where it stopped.

    With --model, the candidates that failed or were cut off at the current step are
    asked of that model instead, in their place (say the provider was down). With
    --budget, the run's budget is that from now on (raise it to go on past a pause).
    """
    if model and not headless:
        raise typer.BadParameter(
            "works with --headless only: the TUI cannot switch models on resume yet. "
            f"Use: writeit resume {run_id} --headless --model {model}",
            ctx=ctx,
            param_hint="'--model'",
        )
    engine = _engine(workspace)
    full_id = engine.resolve(run_id)
    if budget is not None:
        _run_async(engine.set_budget(full_id, budget))
    if not headless:
        _open_tui(workspace, run_id=full_id)
        return
    _refuse_existing_out(export, out)
    from writeit.models import PipelineStatus

    if engine.load(full_id).status == PipelineStatus.COMPLETED and not as_json:
        console.print(f"Run {full_id[:8]} was already complete; nothing to resume.")
        if export is None:
            return
    finished = _run_async(_drive(engine, full_id, pick, quiet=as_json, judge=judge, instead=model))
    _finish(engine, finished, export, out, as_json)


@app.command()
def rewind(
    run_id: RunArg,
    step: Annotated[
        str | None,
        typer.Option("--step", help="The step to go back to (default: the previous one)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Go back to an earlier step; nothing is lost.

    The later steps stay in the run's history, and choosing differently from there
    starts a branch, so you can always compare or go back.
    """
    engine = _engine(workspace)
    state = _run_async(engine.rewind(engine.resolve(run_id), step))
    short = state.pipeline_run_id[:8]
    where = {
        "run_id": state.pipeline_run_id,
        "step": state.current_step,
        "step_number": state.step_index + 1,
        "steps": len(state.pipeline.step_names),
        "status": state.status.value,
    }
    if as_json:
        _print_json(where)
        return
    console.print(
        f"Run [bold]{short}[/] is back at [bold]{state.current_step}[/] "
        f"(step {where['step_number']} of {where['steps']}); the later steps stay in its history."
    )
    console.print(_after_rewind(short, state.status.value))


def _after_rewind(short: str, status: str) -> str:
    """What the writer can do next. A completed run stays completed (its article is
    kept), so a headless resume has nothing to do there: only the TUI choice applies."""
    next_steps = (
        f"Next: choose again in the TUI with [bold]writeit resume {short}[/] "
        f"(a different choice starts a branch), or look first: [bold]writeit show {short}[/]"
    )
    if status == "completed":
        return next_steps + "."
    return next_steps + f"; or go on headless: [bold]writeit resume {short} --headless[/]."


@app.command()
def fork(
    run_id: RunArg,
    step: Annotated[str, typer.Option("--step", help="The completed step to branch from.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a new branch from a completed step; the original run stays as it is."""
    engine = _engine(workspace)
    child = _run_async(engine.fork(engine.resolve(run_id), step))
    if as_json:
        _print_json(
            {
                "run_id": child.pipeline_run_id,
                "parent": child.parent_pipeline_run_id,
                "branch_point": step,
            }
        )
        return
    parent = child.parent_pipeline_run_id or engine.resolve(run_id)
    console.print(f"Forked [bold]{child.pipeline_run_id}[/] from {parent[:8]} at {step}")
    console.print(f"Continue it: writeit resume {child.pipeline_run_id[:8]}")


@app.command("export")
def export_cmd(
    run_id: RunArg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, yaml or json.")] = "md",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write (default: the workspace's exports)."),
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Only the article and its metadata.")
    ] = False,
    no_candidates: Annotated[
        bool,
        typer.Option("--no-candidates", help="Leave out every candidate's text and figures."),
    ] = False,
    all_branches: Annotated[
        bool,
        typer.Option("--all-branches", help="Also every fork of the run, with its branch point."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the --out file if it exists.")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Export a run's article with its metadata and provenance: every step's prompt,
    models, candidates and how its output was decided (schema: docs/export-schema.md).

    An existing --out file is never replaced without --force; the default name gets
    -2, -3… when it is taken.
    """
    engine = _engine(workspace)
    state = engine.load(engine.resolve(run_id))
    path, size = _export(
        engine,
        state,
        fmt,
        out,
        include_history=not no_history,
        force=force,
        candidates=not no_candidates,
        all_branches=all_branches,
    )
    console.print(f"Exported to [bold]{path}[/] ({size} bytes)")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Interface to bind; anything but loopback is exposed.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workspace: WorkspaceOpt = None,
    show_token: Annotated[
        bool, typer.Option("--show-token", help="Print the bearer token and exit.")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Also accept this Host header name (repeatable)."),
    ] = None,
) -> None:
    """Serve the engine over HTTP and WebSocket (token-protected, local by default)."""
    if show_token:
        console.print(_ws().ensure_token())
        return
    from writeit.server import run_server

    run_server(host=host, port=port, workspace=workspace, allow_hosts=allow_host or [])


def _budget_line(engine, run) -> str:
    """ ", budget $0.0500 ($0.0380 left)" for a run with a budget: what it spent is the
    cost just before it (one figure, `pricing.spend`)."""
    if run.budget_usd is None:
        return ""
    from writeit import pricing

    spent = pricing.spent(run, engine.preferences.pricing)
    left = max(run.budget_usd - spent, 0.0)
    return f", budget ${run.budget_usd:.4f} (${left:.4f} left)"


def _spend_text(engine, run, *, tokens: bool = True) -> str:
    """What the run spent, the one figure the budget counts: "2100 tokens, $0.0124 (≈
    $0.0075 of it estimated)"; a fork says what it spent and what it inherited apart."""
    from writeit import pricing

    spend = pricing.spend(run, engine.preferences.pricing)

    def money(value: float, unpriced: bool) -> str:
        if unpriced and not value:
            return "price unknown"
        return f"${value:.4f}" + (f" + unknown ({', '.join(spend.unpriced)})" if unpriced else "")

    unknown = bool(spend.unpriced)
    own = f"{spend.tokens - spend.inherited_tokens} tokens, " if tokens else ""
    text = own + money(spend.own, unknown)
    if spend.estimated:
        text += f" (≈${spend.estimated:.4f} of it estimated: calls stopped before their end)"
    if run.parent_pipeline_run_id:
        came = f"{spend.inherited_tokens} tokens, " if tokens else ""
        text += (
            f" on this branch; inherited from {run.parent_pipeline_run_id[:8]}: "
            f"{came}${spend.inherited:.4f}"
        )
    return text


def _inherited_json(engine, run) -> dict[str, Any]:
    """A fork's finish in JSON: what the branch spent, apart from what it inherited."""
    if not run.parent_pipeline_run_id:
        return {}
    from writeit import pricing

    spend = pricing.spend(run, engine.preferences.pricing)
    return {
        "branch_tokens": spend.tokens - spend.inherited_tokens,
        "branch_cost_usd": round(spend.own, 6),
        "inherited_tokens": spend.inherited_tokens,
        "inherited_cost_usd": round(spend.inherited, 6),
    }


def _cost(cost: float | None) -> str:
    """Dollars, or "price unknown" when a model has no known price (never $0)."""
    return "price unknown" if cost is None else f"${cost:.4f}"
