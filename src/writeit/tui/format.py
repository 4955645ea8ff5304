"""Small text helpers shared by the screens (and masked by the snapshot tests)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from writeit import export
from writeit.models import AIResponse, PipelineRun

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


def priced(response: AIResponse, prices: Prices | None = None) -> bool:
    """Whether the response's cost is known: the engine stores None for a model with no
    known price ("price unknown", never $0); free models store 0."""
    return response.usage_stats is not None and response.usage_stats.cost_usd is not None


def response_cost(response: AIResponse, prices: Prices | None = None) -> str:
    return cost(response.cost) if priced(response) else "price unknown"


def run_cost(run: PipelineRun, prices: Prices | None = None) -> str:
    """The run's cost so far; "+ unknown" when some of its models have no price."""
    done = [r for s in run.steps.values() for r in s.ai_responses if r.usage_stats]
    known = [r for r in done if priced(r)]
    if len(known) == len(done):
        return cost(run.total_cost)
    if not known:
        return "price unknown"
    return f"{cost(sum(r.cost for r in known))} + unknown"


def budget(run: PipelineRun, spent: float | None, wide: bool = True) -> str:
    """ "budget $0.0120 of $0.0500 left" (narrow: "$0.0120 left") for a run with a
    budget, else ""."""
    if run.budget_usd is None or spent is None:
        return ""
    left = max(run.budget_usd - spent, 0.0)
    return f"budget {cost(left)} of {cost(run.budget_usd)} left" if wide else f"{cost(left)} left"


def forecast(total: float | None, low: float | None, high: float | None, estimated: bool) -> str:
    """ "next ≈ $0.0031 ($0.0020–$0.0052)", or "next: price unknown"."""
    if total is None or low is None or high is None:
        return "price unknown"
    mark = "≈ " if estimated else ""
    return f"{mark}{cost(total)} ({cost(low)}–{cost(high)})"


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


# --- provenance: how a step's output was decided, worded once in export.py -------------

candidate_label = export.candidate_label  # "2 scripted-b"
provenance = export.provenance  # "candidate 2 (scripted-b)", "merged by m from candidates 1 and 3"
