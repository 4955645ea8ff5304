"""Cheap local quality signals shown beside each candidate, and the response's quality_score.

They are hints for the writer, not a verdict: length against what the step asked for,
readability (Flesch reading ease from textstat, which works offline), and how many of
the style primer's "avoid" terms slipped in. `flags` names what is off: each avoid term
used (with where), a reading level outside the style's range, a length far from the
target. Flags inform the choice; nothing blocks on them.
"""

from __future__ import annotations

import functools
import re

from writeit.models import Flag, ReadingLevel, StylePrimer

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NOTE = re.compile(r"\s*\(.*\)\s*$")  # "journey (for anything but travel)"
POSITIONS = 5  # character offsets kept per avoid flag: enough to find them, not a log
LENGTH_BAND = (0.5, 1.5)  # words / target outside this is "far off"


def _literal(term: str) -> str:
    """The term as it would appear in text, without the style's parenthesised note."""
    return _NOTE.sub("", term).strip()


def avoid_hits(text: str, avoid: list[str]) -> int:
    return len(avoid_pattern(tuple(avoid)).findall(text)) if avoid else 0


@functools.lru_cache(maxsize=64)
def avoid_pattern(avoid: tuple[str, ...]) -> re.Pattern[str]:
    """One pass over the text for the whole list (longest term first, so a phrase counts
    once rather than also as its shorter terms)."""
    literals = {_literal(term).lower() for term in avoid} - {""}
    terms = sorted(map(re.escape, literals), key=len, reverse=True)
    if not terms:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile(rf"\b(?:{'|'.join(terms)})\b", re.IGNORECASE)


def readability(text: str) -> float:
    """Flesch reading ease, 0 (hard) to 100 (easy); 0 for text too short to score.

    textstat's formula (it replaced a hand-written one: same scale and meaning, better
    syllable and sentence counting), clamped to 0..100 as before."""
    if len(_WORD.findall(text)) < 3:
        return 0.0
    import textstat

    score = max(0.0, min(100.0, float(textstat.flesch_reading_ease(text))))
    if not _loaded:
        _loaded.append(True)
    return score


_loaded: list[bool] = []  # textstat's first call loads its dictionary (~0.4 s)


def ready() -> bool:
    """Whether scoring is cheap now (textstat loaded), so it may run on the event loop."""
    return bool(_loaded)


def flags(
    text: str,
    primer: StylePrimer | None = None,
    target_words: int = 0,
    reading: float | None = None,
) -> list[Flag]:
    """Everything worth a second look before choosing this text; `reading` saves
    recomputing the readability `measure` already has."""
    found = avoid_flags(text, primer.guidelines.get("avoid", [])) if primer else []
    if primer and primer.reading_level and len(_WORD.findall(text)) >= 3:
        level = readability(text) if reading is None else reading
        found += filter(None, [reading_flag(level, primer.reading_level)])
    found += filter(None, [length_flag(len(text.split()), target_words)])
    return found


def avoid_flags(text: str, avoid: list[str]) -> list[Flag]:
    """One flag per avoid term used: how often, and the first few character offsets."""
    if not avoid:
        return []
    names = {_literal(term).lower(): _literal(term) for term in avoid}
    uses: dict[str, list[int]] = {}
    for match in avoid_pattern(tuple(avoid)).finditer(text):
        uses.setdefault(match.group().lower(), []).append(match.start())
    return [
        Flag(kind="avoid", detail=names[key], count=len(at), positions=at[:POSITIONS])
        for key, at in uses.items()
    ]


def reading_flag(level: float, target: ReadingLevel) -> Flag | None:
    """Flesch reading ease outside the style's band (higher is easier)."""
    if target.min <= level <= target.max:
        return None
    side = "hard" if level < target.min else "easy"
    band = f"{target.min:g}–{target.max:g}"
    return Flag(kind="reading_level", detail=f"reads too {side}: ease {level:.0f}, style {band}")


def length_flag(words: int, target_words: int) -> Flag | None:
    """Words far from the step's target (only where the step sets one)."""
    if target_words <= 0:
        return None
    low, high = LENGTH_BAND
    if low * target_words <= words <= high * target_words:
        return None
    side = "short" if words < low * target_words else "long"
    return Flag(kind="length", detail=f"too {side}: {words} words, target ~{target_words}")


def measure(
    text: str, primer: StylePrimer | None = None, target_words: int = 0
) -> dict[str, float]:
    words = len(text.split())
    metrics = {
        "words": float(words),
        "readability": round(readability(text), 1),
        "avoid_hits": float(avoid_hits(text, primer.guidelines.get("avoid", [])) if primer else 0),
    }
    metrics["score"] = score(metrics, target_words)
    return metrics


def score(metrics: dict[str, float], target_words: int = 0) -> float:
    """0..1: half readability, half length fit, minus a tenth per avoided term used."""
    words = metrics["words"]
    if words == 0:
        return 0.0
    length_fit = min(words / target_words, target_words / words) if target_words else 1.0
    value = 0.5 * min(metrics["readability"] / 70.0, 1.0) + 0.5 * length_fit
    return round(max(0.0, min(1.0, value - 0.1 * metrics["avoid_hits"])), 3)
