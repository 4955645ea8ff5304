"""Cheap local quality signals shown beside each candidate, and the response's quality_score.

They are hints for the writer, not a verdict: length against what the step asked for,
readability (Flesch reading ease, syllables counted by pyphen's hyphenation
dictionaries, which work offline), and how many of the style primer's "avoid" terms
slipped in.
"""

from __future__ import annotations

import functools
import re

from writeit.models import StylePrimer

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)|\n\s*\n")


@functools.cache
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


@functools.lru_cache(maxsize=50_000)
def syllables(word: str) -> int:
    return len(_hyphenator().positions(word.lower())) + 1


def avoid_hits(text: str, avoid: list[str]) -> int:
    return len(_avoid_pattern(tuple(avoid)).findall(text)) if avoid else 0


@functools.lru_cache(maxsize=64)
def _avoid_pattern(avoid: tuple[str, ...]) -> re.Pattern[str]:
    """One pass over the text for the whole list (longest term first, so a phrase counts
    once rather than also as its shorter terms)."""
    terms = sorted({re.escape(term.lower()) for term in avoid}, key=len, reverse=True)
    return re.compile(rf"\b(?:{'|'.join(terms)})\b", re.IGNORECASE)


def readability(text: str) -> float:
    """Flesch reading ease, 0 (hard) to 100 (easy); 0 for text too short to score."""
    words = _WORD.findall(text)
    if len(words) < 3:
        return 0.0
    sentences = max(1, len([s for s in _SENTENCE_END.split(text) if _WORD.search(s or "")]))
    syllable_count = sum(syllables(w.lower()) for w in words)
    value = 206.835 - 1.015 * len(words) / sentences - 84.6 * syllable_count / len(words)
    return max(0.0, min(100.0, value))


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
