"""Small text helpers shared by the screens (and masked by the snapshot tests)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from writeit.models import AIResponse, PipelineRun, StepState, WriteItError

Prices = Mapping[str, Mapping[str, float]]

STATUS_MARK = {
    "pending": "○",
    "running": "●",
    "completed": "✓",
    "skipped": "↷",
    "paused": "‖",
    "error": "✗",
    "initializing": "○",
}


def short(run_id: str | None) -> str:
    return (run_id or "")[:8]


def when(iso: str | datetime) -> str:
    """A timestamp as the writer reads it: time today, else the date."""
    moment = datetime.fromisoformat(iso) if isinstance(iso, str) else iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone()
    now = datetime.now(local.tzinfo)
    if local.date() == now.date():
        return local.strftime("today %H:%M")
    if local.year == now.year:
        return local.strftime("%d %b %H:%M")
    return local.strftime("%Y-%m-%d")


def seconds(value: float) -> str:
    return f"{value:.1f}s"


def cost(value: float) -> str:
    return f"${value:.4f}"


def model(step: StepState, response: AIResponse) -> str:
    """Who wrote a candidate, as the writer may see it: on a blind step, until the
    choice, nobody (the model is revealed with the decision)."""
    return "model hidden" if step.hidden else response.model_name


def priced(response: AIResponse, prices: Prices) -> bool:
    """Whether the response's cost is known. The engine records $0 for a model with no
    price; that is "free" only when the table names the model (markov), else unknown."""
    return response.cost > 0 or response.model_name in prices


def response_cost(response: AIResponse, prices: Prices) -> str:
    return cost(response.cost) if priced(response, prices) else "price unknown"


def run_cost(run: PipelineRun, prices: Prices) -> str:
    """The run's cost so far; "+ unknown" when some of its models have no price."""
    done = [r for s in run.steps.values() for r in s.ai_responses if r.usage_stats]
    known = [r for r in done if priced(r, prices)]
    if len(known) == len(done):
        return cost(run.total_cost)
    if not known:
        return "price unknown"
    return f"{cost(sum(r.cost for r in known))} + unknown"


def tokens(value: int) -> str:
    return f"{value / 1000:.1f}k tok" if value >= 10_000 else f"{value} tok"


def path(value: Path) -> str:
    """A path with the home folder shown as ~ (what the writer would type)."""
    try:
        return "~/" + str(value.relative_to(Path.home()))
    except ValueError:
        return str(value)


def size(value: int) -> str:
    if value < 1024:
        return f"{value} bytes"
    return f"{value / 1024:.1f} KB ({value:,} bytes)"


def quality(metrics: dict[str, float]) -> str:
    if not metrics:
        return ""
    parts = [f"{int(metrics.get('words', 0))} words"]
    if "readability" in metrics:
        parts.append(f"readability {metrics['readability']:.0f}")
    if metrics.get("avoid_hits"):
        parts.append(f"{int(metrics['avoid_hits'])} avoid-list words")
    return " · ".join(parts)


def one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# --- provenance: how a step's output was decided ----------------------------------------


def candidate_label(step: StepState, response_id: str) -> str:
    """ "2 scripted-b": the number the writer chose it by, and its model."""
    try:
        model = step.response(response_id).model_name
    except WriteItError:
        return "a response no longer in this step"
    number = next(
        (n for n, r in enumerate(step.candidates, 1) if r.response_id == response_id), None
    )
    return f"{number} {model}" if number else f"an earlier {model} candidate"


def provenance(step: StepState) -> str:
    """ "candidate 2 scripted-b", "merged by X from 1 a, 2 b (edited by hand)",
    "written by hand from 1 a, 2 b" or "skipped"; "" while nothing is decided."""
    decision = step.decision
    if decision is None:
        return "the merged text" if step.merged_content is not None else ""
    sources = ", ".join(candidate_label(step, i) for i in decision.response_ids)
    if decision.how == "selected":
        return f"candidate {sources}"
    if decision.how == "skipped":
        return "skipped"
    if decision.how == "written":
        return f"written by hand from {sources}" if sources else "written by hand"
    merger = _model_of(step, decision.merge_response_id)
    edited = " (edited by hand)" if decision.edited else ""
    return f"merged by {merger} from {sources}{edited}"


def _model_of(step: StepState, response_id: str | None) -> str:
    try:
        return step.response(response_id).model_name if response_id else "a model"
    except WriteItError:
        return "a model"
