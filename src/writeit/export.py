"""Export a run: the article with its metadata, per-step history and execution stats.

Markdown gets YAML front matter and the history as an appendix; YAML and JSON carry the
same document as data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml

from writeit.models import PipelineRun, ResponseStatus, WriteItError

Format = Literal["md", "yaml", "json"]
FORMATS: tuple[str, ...] = ("md", "yaml", "json")
SUFFIX = {"md": ".md", "yaml": ".yaml", "json": ".json"}


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
            "total_cost_usd": round(run.total_cost, 6),
        },
        "inputs": dict(run.user_inputs),
        "article": run.final_text or "",
        "stats": {
            "tokens": run.total_tokens,
            "input_tokens": sum(r.usage_stats.input_tokens for r in responses if r.usage_stats),
            "output_tokens": sum(r.usage_stats.output_tokens for r in responses if r.usage_stats),
            "cost_usd": round(run.total_cost, 6),
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
        "feedback": step.user_feedback,
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
                "instruction": r.instruction,
                "text": r.processed_content or r.raw_output,
            }
            for r in step.ai_responses
        ],
    }


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
            if step["selection"]:
                parts.append(f"- Selected: {step['selection']['model']}")
            elif step["merged"]:
                parts.append("- Merged from several candidates")
            if step["feedback"]:
                parts.append(f"- Feedback: {step['feedback']}")
            if step["output"] and step is not history[-1]:
                parts.append("\n<details><summary>Output</summary>\n")
                parts.append(step["output"].rstrip())
                parts.append("\n</details>")
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def default_path(exports: Path, run: PipelineRun, fmt: str) -> Path:
    stamp = run.created_at.strftime("%Y%m%d-%H%M")
    return exports / f"{run.configuration_id}-{stamp}-{run.pipeline_run_id[:8]}{SUFFIX[fmt]}"


def inside(base: Path, path: Path) -> Path:
    """`path` resolved, refusing anything outside `base` (for the server's exports)."""
    base = base.resolve()
    resolved = (base / path).resolve() if not path.is_absolute() else path.resolve()
    if not resolved.is_relative_to(base):
        raise WriteItError(
            f"{path} is outside the exports folder {base}", hint="give a path inside it"
        )
    return resolved


def write(text: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path.stat().st_size
