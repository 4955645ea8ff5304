"""Small text helpers shared by the screens (and masked by the snapshot tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
