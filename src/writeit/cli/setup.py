"""Set-up commands: init, workspaces, preferences, and the catalogue (pipelines, styles,
models, validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from writeit.cli import (
    JsonOpt,
    WorkspaceName,
    WorkspaceOpt,
    _print_json,
    _table,
    _ws,
    app,
    config_app,
    console,
    err,
    workspace_app,
)
from writeit.cli.complete import complete_workspace

# --- set-up ------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the home folder, the default workspace and the server token."""
    root_dir, workspace, _ = _ws().init()
    console.print(f"WriteIt home: [bold]{root_dir}[/]")
    console.print(f"Workspace:    [bold]{workspace.name}[/] ({workspace.path})")
    console.print(f"Server token: {_ws().token_path()} (mode 0600)")
    console.print("Next: [bold]writeit run tech-article[/] or [bold]writeit pipelines[/]")


@workspace_app.command("create")
def workspace_create(name: str) -> None:
    """Create a workspace (its own store, exports, pipelines and styles)."""
    created = _ws().create_workspace(name)
    console.print(f"Created workspace [bold]{created.name}[/] at {created.path}")
    console.print(f"Switch to it with: writeit workspace use {created.name}")


@workspace_app.command("list")
def workspace_list(as_json: JsonOpt = False) -> None:
    """List workspaces; the active one is marked."""
    active = _ws().load_preferences().workspace
    found = _ws().list_workspaces()
    if as_json:
        _print_json(
            [{"name": w.name, "path": str(w.path), "active": w.name == active} for w in found]
        )
        return
    table = _table("", "Workspace", "Path")
    for w in found:
        table.add_row("*" if w.name == active else "", w.name, str(w.path))
    console.print(table if found else "No workspaces yet: run [bold]writeit init[/].")


@workspace_app.command("use")
def workspace_use(name: WorkspaceName) -> None:
    """Make a workspace the active one."""
    chosen = _ws().use_workspace(name)
    console.print(f"Active workspace: [bold]{chosen.name}[/]")


@workspace_app.command("info")
def workspace_info(
    name: Annotated[str | None, typer.Argument(autocompletion=complete_workspace)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a workspace's folders and how many runs it holds."""
    chosen = _ws().get_workspace(name)
    counts = chosen.open_store().counts()  # counters kept with every write: no scan
    info = {
        "name": chosen.name,
        "path": str(chosen.path),
        "store": str(chosen.store_path),
        "exports": str(chosen.exports),
        "runs": sum(counts.values()),
        "completed": counts.get("completed", 0),
        "by_status": counts,
    }
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key:>9}[/]  {value}")


@workspace_app.command("remove")
def workspace_remove(
    name: WorkspaceName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a workspace with all its runs and exports."""
    chosen = _ws().get_workspace(name)
    if not yes:
        typer.confirm(f"Delete workspace {name!r} and everything in {chosen.path}?", abort=True)
    _ws().remove_workspace(name)
    console.print(f"Removed workspace [bold]{name}[/]")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Show every preference with its current value."""
    prefs = _ws().load_preferences().model_dump(mode="json")
    if as_json:
        _print_json(prefs)
        return
    import yaml

    console.print(f"[dim]{_ws().config_path()}[/]")
    console.print(yaml.safe_dump(prefs, sort_keys=True).rstrip(), highlight=False)


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Set a preference, e.g. `max_concurrent_pipelines 4` or `keyboard_shortcuts.merge m`."""
    _ws().set_preference(key, value)
    console.print(f"Set [bold]{key}[/] = {value}")


# --- pipelines, styles, models ------------------------------------------------------------


@app.command()
def pipelines(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the pipelines you can run (built-in, home and workspace ones)."""
    from writeit import config

    entries = config.list_pipelines(_ws().get_workspace(workspace).config_dirs("pipelines"))
    if as_json:
        _print_json(
            [
                {
                    "name": e.name,
                    "description": e.item.description if e.item else None,
                    "steps": e.item.step_names if e.item else None,
                    "path": str(e.path),
                    "builtin": e.builtin,
                    "problems": [str(p) for p in e.problems],
                }
                for e in entries
            ]
        )
        return
    table = _table("Pipeline", "Steps", "Description", "Source")
    for e in entries:
        if e.item is None:
            table.add_row(
                e.name,
                "[red]invalid[/]",
                f"{len(e.problems)} problem(s): writeit validate {e.path}",
                str(e.path),
            )
        else:
            source = "built-in" if e.builtin else str(e.path)
            table.add_row(e.name, " → ".join(e.item.step_names), e.item.description, source)
    console.print(table)


@app.command()
def styles(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the style primers (sent as the system prompt of every step)."""
    from writeit import config

    entries = config.list_styles(_ws().get_workspace(workspace).config_dirs("styles"))
    if as_json:
        _print_json(
            [
                {
                    "name": e.name,
                    "title": e.item.name if e.item else None,
                    "description": e.item.description if e.item else None,
                    "path": str(e.path),
                    "builtin": e.builtin,
                    "problems": [str(p) for p in e.problems],
                }
                for e in entries
            ]
        )
        return
    table = _table("Style", "Name", "Description")
    for e in entries:
        if e.item is None:
            table.add_row(e.name, "[red]invalid[/]", f"writeit validate {e.path}")
        else:
            table.add_row(e.name, e.item.name, e.item.description)
    console.print(table)


@app.command()
def validate(path: Path) -> None:
    """Check a pipeline or style file; exit 0 when valid, 2 with every problem listed."""
    from writeit import config

    if not path.is_file():
        err.print(f"[red]error:[/] no file at {path}")
        raise typer.Exit(2)
    problems = config.validate_pipeline_file(path)
    kind = "pipeline"
    if problems and _looks_like_style(path):
        kind, problems = "style", config.validate_style_file(path)
    if not problems:
        console.print(f"[green]✓[/] {path} is a valid {kind}")
        return
    err.print(f"[red]✗[/] {path}: {len(problems)} problem(s)")
    for problem in problems:
        err.print(f"  {problem}", highlight=False, markup=False)
    raise typer.Exit(2)


def _looks_like_style(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()[:262_144])
    except Exception:
        return False
    return (
        isinstance(data, dict)
        and "steps" not in data
        and ("content" in data or "guidelines" in data)
    )


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """List the models `llm` knows, and which need a key (`llm keys set ...`)."""
    from writeit import pricing, providers, workspaces

    found = providers.list_models()
    overrides = workspaces.load_preferences().pricing
    prices = {m.model_id: pricing.price_of(m.model_id, overrides) for m in found}
    if as_json:
        _print_json(
            [
                {
                    **m.__dict__,
                    "usable": m.usable,
                    # USD per million tokens; null: unknown (set pricing.MODEL.input/output)
                    "input_price": p.input if (p := prices[m.model_id]) else None,
                    "output_price": p.output if p else None,
                    "price_source": p.source if p else None,
                }
                for m in found
            ]
        )
        return
    table = _table("Model", "Aliases", "Provider", "Ready", "$/M in · out")
    for m in found:
        ready = (
            "[green]yes[/]" if m.usable else f"[yellow]needs a key: llm keys set {m.needs_key}[/]"
        )
        price = prices[m.model_id]
        shown = f"{price.input:g} · {price.output:g}" if price else "[dim]unknown[/]"
        table.add_row(m.model_id, ", ".join(m.aliases), m.provider, ready, shown)
    console.print(table)
    if not providers.has_real_provider():
        console.print(
            f"No provider key is set: runs use the offline model [bold]{providers.OFFLINE_MODEL}[/]. "
            "Add one with [bold]llm keys set openai[/] (or install a plugin: llm install llm-anthropic)."
        )
