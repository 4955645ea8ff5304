"""`writeit stats`: which models the writer chooses, per model, from the outcome index."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from writeit.cli import JsonOpt, WorkspaceOpt, _print_json, _table, _ws, app, console, err

COLUMNS = ("Model", "Win rate", "Chosen", "Blind", "Quality", "Cost", "Time")


@app.command()
def stats(
    workspace: WorkspaceOpt = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Only decisions in runs of this pipeline.")
    ] = None,
    step: Annotated[str | None, typer.Option(help="Only decisions at this step.")] = None,
    style: Annotated[str | None, typer.Option(help="Only decisions in runs of this style.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only decisions made on or after this ISO date (2026-11-01, UTC)."),
    ] = None,
    autopilot: Annotated[
        bool,
        typer.Option(
            "--autopilot", help="Count the autopilot's picks too (headless --pick), not only yours."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Win rates: how often each model's candidate was offered at a decided step, and chosen.

    Chosen means selected, or a source of a merge or of a text written by hand; a skipped step chooses nothing. Blind: the same for decisions made with the models hidden. Quality, cost (USD) and time are means per response.
    """
    from writeit import stats as outcomes

    store = _ws().get_workspace(workspace).open_store()
    found = outcomes.win_rates(
        store,
        pipeline=pipeline,
        step=step,
        style=style,
        since=since,
        announce=_announce,
        autopilot=autopilot,
    )
    if as_json:
        _print_json(found)
        return
    filters = {"pipeline": pipeline, "step": step, "style": style, "since": since}
    console.print(_counted(found, filters, autopilot), highlight=False)
    if not found["models"]:
        _unknown_names(outcomes.known(store), filters)
        return
    from rich import box

    table = _table(box=box.SIMPLE_HEAD, pad_edge=False)
    longest = max(len(m["model"]) for m in found["models"])
    table.add_column(COLUMNS[0], no_wrap=True, min_width=min(longest, 40))
    for column in COLUMNS[1:]:
        table.add_column(column, justify="right", no_wrap=True)
    for model in found["models"]:
        table.add_row(*_row(model))
    console.print(table)


def _unknown_names(known: dict[str, list[str]], filters: dict[str, str | None]) -> None:
    """A filter naming what no decision was made in is likely a typo: say what exists."""
    for name in ("pipeline", "step", "style"):
        value = filters[name]
        if value and value not in known[name]:
            names = ", ".join(known[name]) or "none yet"
            err.print(
                f"no decision was made in a {name} {value!r}; known: {names}", highlight=False
            )


def _announce(runs: int) -> None:
    err.print(f"indexing {runs:,} runs for stats (once)", highlight=False)


def _counted(found: dict[str, Any], filters: dict[str, str | None], autopilot: bool) -> str:
    """What the figures cover: decisions, runs and the filters, in one line."""
    from rich.markup import escape

    given = ", ".join(f"{name} {escape(value)}" for name, value in filters.items() if value)
    whose = "yours and the autopilot's" if autopilot else "yours; --autopilot adds its picks"
    where = f" ({given or 'all pipelines, steps and styles'}; {whose})"
    decisions, runs = found["decisions"], found["runs"]
    if not decisions:
        return f"No decisions yet{where}: choose, merge or skip at a step, then ask again."
    return (
        f"{decisions:,} decision{'s' * (decisions != 1)} in {runs:,} run{'s' * (runs != 1)}"
        f"{where}.\n[dim]Offered: a finished candidate at a decided step. Chosen: selected, or "
        "a source of a merge or of a text written by hand; a skip chooses nothing.[/]"
    )


def _row(model: dict[str, Any]) -> tuple[str, ...]:
    blind = model["blind_offered"] and (
        f"{_percent(model['blind_win_rate'])}, {model['blind_chosen']} of {model['blind_offered']}"
    )
    quality, cost, seconds = model["mean_quality"], model["mean_cost_usd"], model["mean_seconds"]
    from rich.markup import escape

    return (
        escape(model["model"]),
        _percent(model["win_rate"]),
        f"{model['chosen']} of {model['offered']}",
        blind or "-",
        "-" if quality is None else f"{quality:.2f}",
        "unknown" if cost is None else f"${cost:.4f}",
        "-" if seconds is None else f"{seconds:.2f}s",
    )


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"
