"""Export a run: the article with its metadata, per-step history and execution stats.

Markdown gets YAML front matter and the history as an appendix; YAML and JSON carry the
same document as data.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from writeit.errors import WriteItError
from writeit.models import Flag, PipelineRun, ResponseStatus, StepState

Format = Literal["md", "yaml", "json"]
FORMATS: tuple[str, ...] = ("md", "yaml", "json")
SUFFIX = {"md": ".md", "yaml": ".yaml", "json": ".json"}


IfExists = Literal["refuse", "overwrite", "rename"]
MAX_SUFFIX = 999  # name-2 … name-999: past that, something is wrong with the folder


class ExportError(WriteItError):
    """The export cannot be written where asked: a 400 over HTTP, exit 1 in the CLI."""

    code = "bad_path"


class OutsideExports(ExportError):
    """The server was asked to write outside the workspace's exports folder."""

    code = "path_outside_exports"


class ExportExists(ExportError):
    """The target exists and the writer did not ask to overwrite it (a 409 over HTTP)."""

    code = "export_exists"


@dataclass(frozen=True)
class Saved:
    path: Path
    bytes: int


def document(run: PipelineRun, *, include_history: bool = True, branches: int = 0) -> dict:
    responses = [r for s in run.steps.values() for r in s.ai_responses]
    models = sorted({r.model_name for r in responses if r.kind == "candidate"} | set(run.models))
    doc: dict[str, Any] = {
        "metadata": {
            "run_id": run.pipeline_run_id,
            "pipeline": run.configuration_id,
            "description": run.pipeline.description,
            "style": run.style_primer,
            "models": models,
            "status": run.status.value,
            "created": run.created_at.isoformat(),
            "completed": run.completed_at.isoformat() if run.completed_at else None,
            "parent_run_id": run.parent_pipeline_run_id,
            "branch_point": run.branch_point,
            "total_tokens": run.total_tokens,
            "total_cost_usd": _rounded(run.known_cost),
        },
        "inputs": dict(run.user_inputs),
        "article": run.final_text or "",
        "stats": {
            "tokens": run.total_tokens,
            "input_tokens": sum(r.usage_stats.input_tokens for r in responses if r.usage_stats),
            "output_tokens": sum(r.usage_stats.output_tokens for r in responses if r.usage_stats),
            "cost_usd": _rounded(run.known_cost),  # None: a model's price is unknown
            "generation_seconds": round(sum(r.processing_time for r in responses), 3),
            "steps_completed": sum(
                s.status.value in ("completed", "skipped") for s in run.steps.values()
            ),
            "steps_total": len(run.steps),
            "responses": len(responses),
            "failed_responses": sum(r.status == ResponseStatus.FAILED for r in responses),
            "regenerations": sum(s.retry_count for s in run.steps.values()),
            "merges": sum(r.kind == "merge" for r in responses),
            "branches_created": branches,
        },
    }
    if include_history:
        doc["history"] = [_step_history(run, name) for name in run.pipeline.step_names]
    return doc


def _step_history(run: PipelineRun, name: str) -> dict[str, Any]:
    step = run.steps[name]
    selected = step.ai_responses[step.user_selection] if step.user_selection is not None else None
    return {
        "step": name,
        "status": step.status.value,
        "attempts": step.attempt if step.ai_responses else 0,
        "models": [r.model_name for r in step.ai_responses if r.kind == "candidate"],
        "selection": {
            "response_id": selected.response_id,
            "model": selected.model_name,
            "index": step.user_selection,
        }
        if selected
        else None,
        "merged": selected is None and step.merged_content is not None,
        "decision": _decision(step),
        "decided": decided(step),
        "guidance": step.guidance,
        "feedback": step.user_feedback,
        "prompt": step.prompt,
        "output": step.output,
        "responses": [
            {
                "response_id": r.response_id,
                "model": r.model_name,
                "provider": r.provider,
                "kind": r.kind,
                "attempt": r.attempt,
                "status": r.status.value,
                "error": r.error,
                "tokens": r.usage_stats.model_dump() if r.usage_stats else None,
                "seconds": r.processing_time,
                "quality": r.quality,
                "flags": [flag.model_dump() for flag in r.flags],
                "instruction": r.instruction,
                "text": r.processed_content or r.raw_output,
            }
            for r in step.ai_responses
        ],
    }


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 6)


def _decision(step: StepState) -> dict[str, Any] | None:
    if step.decision is None:
        return None
    return step.decision.model_dump(mode="json") | {
        "models": [_model_of(step, i) for i in step.decision.response_ids]
    }


def _model_of(step: StepState, response_id: str | None) -> str:
    found = [r.model_name for r in step.ai_responses if r.response_id == response_id]
    return found[0] if found else "?"


def decided(step: StepState) -> str | None:
    """How the step's output came to be, in a line: the provenance a reader wants."""
    decision = step.decision
    if decision is None:
        return None
    sources = ", ".join(_model_of(step, i) for i in decision.response_ids)
    if decision.how == "selected":
        return f"Selected {sources}"
    if decision.how == "skipped":
        return "Skipped"
    if decision.how == "written":
        return f"Written by hand from {sources}" if sources else "Written by hand"
    line = f"Merged by {_model_of(step, decision.merge_response_id)} from {sources}"
    if decision.instruction:
        line += f" ({decision.instruction})"
    return line + (", edited by hand" if decision.edited else "")


def render(run: PipelineRun, fmt: str, *, include_history: bool = True, branches: int = 0) -> str:
    if fmt not in FORMATS:
        raise WriteItError(f"unknown export format {fmt!r}", hint="use md, yaml or json")
    doc = document(run, include_history=include_history, branches=branches)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return _markdown(doc)


def _markdown(doc: dict[str, Any]) -> str:
    front = {**doc["metadata"], "stats": doc["stats"]}
    parts = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    parts.append(doc["article"].rstrip() + "\n")
    history = doc.get("history")
    if history:
        parts.append("\n---\n\n## Appendix: how this article was written\n")
        for step in history:
            parts.append(f"### {step['step']} ({step['status']})\n")
            if step["models"]:
                parts.append(f"- Models asked: {', '.join(step['models'])}")
            if step["guidance"]:
                parts.append(f"- Guidance: {step['guidance']}")
            if step["decided"]:
                parts.append(f"- {step['decided']}")
            if step["feedback"]:
                parts.append(f"- Feedback: {step['feedback']}")
            if flagged := _flag_line(step["responses"]):
                parts.append(f"- Style flags: {flagged}")
            if step["output"] and step is not history[-1]:
                parts.append("\n<details><summary>Output</summary>\n")
                parts.append(step["output"].rstrip())
                parts.append("\n</details>")
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _flag_line(responses: list[dict[str, Any]]) -> str:
    """`model: avoid "delve" ×2, too long…` per flagged candidate, for the appendix."""
    flagged = [
        f"{r['model']}: " + ", ".join(Flag.model_validate(f).label() for f in r["flags"])
        for r in responses
        if r["flags"]
    ]
    return "; ".join(flagged)


def default_path(exports: Path, run: PipelineRun, fmt: str) -> Path:
    stamp = run.created_at.strftime("%Y%m%d-%H%M")
    return exports / f"{run.configuration_id}-{stamp}-{run.pipeline_run_id[:8]}{SUFFIX[fmt]}"


def inside(base: Path, path: Path) -> Path:
    """`path` resolved, refusing anything outside `base` (for the server's exports).

    `save(..., within=base)` checks again while writing, folder by folder: this is the
    early refusal with a clear message, that one closes the race.
    """
    base = base.resolve()
    try:
        resolved = (base / path).resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of symlinks
        raise ExportError(f"cannot resolve {path}: {error}", hint="choose another path") from error
    if not resolved.is_relative_to(base):
        raise OutsideExports(
            f"{path} is outside the exports folder {base}", hint="give a path inside it"
        )
    return resolved


def save(
    text: str, path: Path, *, if_exists: IfExists = "refuse", within: Path | None = None
) -> Saved:
    """Write an export without ever following a planted symlink or losing a file silently.

    The one place that decides what happens to an existing file, for the CLI, the TUI and
    the server: ``refuse`` raises ExportExists, ``overwrite`` replaces it atomically and
    ``rename`` claims ``name-2``, ``name-3``… The text goes to a fresh temporary file
    (O_EXCL, never a name an attacker could have prepared) that is then linked or renamed
    into place, so a reader never sees half a file and two exports never claim one name.
    With ``within`` (the server's exports folder), every folder below it is opened
    without following symlinks, so a folder swapped for a link after the path was
    checked still cannot lead outside. Any OSError becomes an ExportError naming the
    path and the problem.
    """
    try:
        with _folder(path.parent, within) as folder:
            saved = _save_in(folder, text, path, if_exists)
            os.fsync(folder)  # the new name survives a crash too
            return saved
    except OSError as error:
        raise _os_error(path, error) from error


def _save_in(folder: int, text: str, path: Path, if_exists: IfExists) -> Saved:
    _refuse_link(folder, path)
    tmp = _write_temporary(folder, text)
    try:
        if if_exists == "overwrite":
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
            return Saved(path, len(text.encode()))
        for candidate in _candidates(path, rename=if_exists == "rename"):
            if _claim(folder, tmp, candidate.name):
                return Saved(candidate, len(text.encode()))
        raise ExportExists(
            f"{path} already exists",
            hint="choose another name, or overwrite it (--force; overwrite: true in the API)",
        )
    finally:
        _unlink_quietly(tmp, folder)


def next_free(path: Path) -> Path:
    """The name ``rename`` would claim now, for showing before saving (save decides)."""
    return next((c for c in _candidates(path, rename=True) if not os.path.lexists(c)), path)


def _candidates(path: Path, *, rename: bool) -> Iterator[Path]:
    """The path itself, then (when renaming) name-2, name-3… in the same folder."""
    yield path
    if rename:
        for n in range(2, MAX_SUFFIX + 1):
            yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def _claim(folder: int, tmp: str, name: str) -> bool:
    """Give the written temporary file `name` unless it exists: check and claim in one step.

    A hard link fails with EEXIST on any existing entry (a symlink included, which it
    does not follow); where hard links are not supported, an O_EXCL create claims the
    name and the rename fills it.
    """
    try:
        os.link(tmp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    try:
        os.close(os.open(name, _CREATE, 0o600, dir_fd=folder))
    except FileExistsError:
        return False
    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    return True


_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)


def _write_temporary(folder: int, text: str) -> str:
    """A new file of a random name next to the target, mode 0600, written and synced.

    The name is fixed-length (not the target's name plus a suffix), so a target name near
    the 255-byte limit fails on the target, with its own name in the message.
    """
    name = f".writeit-export-{secrets.token_hex(8)}.tmp"
    fd = os.open(name, _CREATE, 0o600, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(text.encode())
            file.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(name, folder)
        raise
    os.close(fd)
    return name


def _refuse_link(folder: int, path: Path) -> None:
    """A symlink at the target would send the export elsewhere, or be replaced by it."""
    try:
        info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ExportError(f"{path} is a symbolic link", hint="give the path of a regular file")
    if stat.S_ISDIR(info.st_mode):
        raise ExportError(f"{path} is a folder", hint="name a file inside it")


@contextmanager
def _folder(parent: Path, within: Path | None) -> Iterator[int]:
    """An open descriptor of the target's folder, created if missing.

    Without `within` the folder is the writer's own choice and may sit behind symlinks.
    With it, `parent` must lie inside `within` and each folder below `within` is opened
    with O_NOFOLLOW, one at a time, so none of them can be a link out of it.
    """
    if within is None:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = _open_below(within, parent)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_below(base: Path, parent: Path) -> int:
    relative = parent.relative_to(base)  # ValueError only on a caller's mistake
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(relative.parts, 1):
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = _open_folder_nofollow(part, fd, base.joinpath(*relative.parts[:depth]))
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_folder_nofollow(name: str, parent: int, shown: Path) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except NotADirectoryError:
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise ExportError(
                f"{shown} is a symbolic link", hint="export into a real folder"
            ) from None
        raise


def _unlink_quietly(name: str, folder: int) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)


_PLAIN = {
    errno.ENAMETOOLONG: "a name in it is longer than 255 bytes",
    errno.ENOTDIR: "a part of it that should be a folder is a file",
    errno.ELOOP: "it goes through a loop of symbolic links",
    errno.EISDIR: "it is a folder",
    errno.EACCES: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
}


def _os_error(path: Path, error: OSError) -> ExportError:
    """The OS's refusal as a writer's error: the path, the problem in words, the errno."""
    name = errno.errorcode.get(error.errno or 0, "OSError")
    problem = _PLAIN.get(error.errno or 0, error.strerror or str(error))
    return ExportError(f"cannot write {path}: {problem} ({name})", hint=_hint(error.errno))


def _hint(number: int | None) -> str:
    if number in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
        return "choose another path"
    return "check the folder and its permissions"
