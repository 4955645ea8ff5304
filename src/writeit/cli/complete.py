"""Shell completion for `writeit` (`--install-completion`): pipeline, style, model and
workspace names and run-id prefixes.

These run on every TAB press, so each imports what it needs inside itself: defining
them costs `writeit --help` nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import typer


def _ws():
    from writeit import workspaces

    return workspaces


Completions = list[str] | list[tuple[str, str]]
_C = TypeVar("_C", bound=Callable[..., Completions])

RUN_COMPLETIONS = 50  # recent runs offered; older ones can still be typed by prefix


def _never_fails(callback: _C) -> _C:
    """A completion that fails (no home yet, a broken store) offers nothing rather than
    printing a traceback into the writer's shell prompt."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Completions:
        try:
            return callback(*args, **kwargs)
        except Exception:
            return []

    return wrapper  # type: ignore[return-value]


def _typed_workspace(ctx: typer.Context | None) -> str | None:
    """The --workspace already typed on this command line (the command's or the root's)."""
    while ctx is not None:
        if ctx.params.get("workspace"):
            return ctx.params["workspace"]
        ctx = ctx.parent
    return None


def _starting(names: Iterable[str], incomplete: str) -> list[str]:
    return [name for name in names if name.startswith(incomplete)]


@_never_fails
def complete_workspace(incomplete: str) -> list[str]:
    """Workspace names: folders under the home's workspaces/."""
    return _starting((w.name for w in _ws().list_workspaces()), incomplete)


@_never_fails
def complete_pipeline(ctx: typer.Context, incomplete: str) -> list[str]:
    """Pipeline names (built-in, home, workspace) from file names, without parsing them."""
    from writeit import config

    dirs = _ws().get_workspace(_typed_workspace(ctx)).config_dirs("pipelines")
    return _starting(config.pipeline_paths(dirs), incomplete)


@_never_fails
def complete_style(ctx: typer.Context, incomplete: str) -> list[str]:
    """Style primer names, from file names like pipelines."""
    from writeit import config

    dirs = _ws().get_workspace(_typed_workspace(ctx)).config_dirs("styles")
    return _starting(config.style_paths(dirs), incomplete)


@_never_fails
def complete_model(incomplete: str) -> list[tuple[str, str]]:
    """Model ids and aliases `llm` knows, with their provider. Importing llm and its
    plugins takes about a second: paid on TAB only, never by `writeit --help`."""
    from writeit import providers

    found: dict[str, str] = {}
    for model in providers.list_models():
        note = model.provider + ("" if model.usable else f" (needs llm keys set {model.needs_key})")
        for name in (model.model_id, *model.aliases):
            found.setdefault(name, note)
    return [(name, note) for name, note in found.items() if name.startswith(incomplete)]


@_never_fails
def complete_run(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Id prefixes of the workspace's recent runs (8 characters, the full id once more is
    typed), with pipeline, status and step. A workspace with no store yet offers none."""
    workspace = _ws().get_workspace(_typed_workspace(ctx))
    if not (workspace.store_path / "data.mdb").is_file():
        return []
    width = max(8, len(incomplete))
    return [
        (r.run_id[:width], f"{r.pipeline} {r.status} at {r.current_step}")
        for r in workspace.open_store().recent(limit=RUN_COMPLETIONS)
        if r.run_id.startswith(incomplete)
    ]
