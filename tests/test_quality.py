"""The quality hints shown beside each candidate."""

from writeit import quality
from writeit.models import ReadingLevel, StylePrimer


def test_avoid_hits_count_whole_terms_in_any_case_and_phrases_once():
    avoid = ["delve", "seamless", "in conclusion", "conclusion"]
    text = "We Delve into seamless things; it delved. In conclusion, the conclusion holds."
    # "Delve" (not "delved"), "seamless", "In conclusion" as one hit, then "conclusion".
    assert quality.avoid_hits(text, avoid) == 4
    assert quality.avoid_hits(text, []) == 0


def test_measure_scores_plain_prose_of_the_asked_length_high():
    text = "The team cut the build time. It now takes two minutes. " * 10
    metrics = quality.measure(text, target_words=len(text.split()))
    assert metrics["words"] == 110
    assert metrics["readability"] > 80
    assert metrics["score"] == 1.0
    rambling = quality.measure(text, target_words=1000)
    assert rambling["score"] < metrics["score"]


def _primer(**extra) -> StylePrimer:
    return StylePrimer(
        primer_id="s",
        name="S",
        guidelines={"avoid": ["delve", "journey (for anything but travel)"]},
        **extra,
    )


def test_flags_name_each_avoid_term_used_with_count_and_positions():
    text = "Let us delve in. Our journey: we Delve deeper, delve again. No delving."
    found = quality.flags(text, _primer())
    avoid = {flag.detail: flag for flag in found if flag.kind == "avoid"}
    assert set(avoid) == {"delve", "journey"}  # the style's note in brackets is not the term
    assert avoid["delve"].count == 3
    assert avoid["delve"].positions == [7, 33, 47]
    assert avoid["journey"].count == 1
    assert avoid["journey"].positions == [text.index("journey")]
    assert avoid["delve"].label() == 'avoid "delve" ×3'


def test_flags_reading_level_outside_the_styles_range():
    plain = "The team cut the build time. It now takes two minutes. " * 5
    hard = "Notwithstanding considerable organisational complexity, interoperability improved. " * 5
    band = ReadingLevel(min=50, max=70)
    assert quality.reading_flag(90, band).detail.startswith("reads too easy")
    assert quality.reading_flag(20, band).detail.startswith("reads too hard")
    assert quality.reading_flag(60, band) is None
    kinds = [f.kind for f in quality.flags(plain, _primer(reading_level=band))]
    assert kinds == ["reading_level"]
    assert [f.kind for f in quality.flags(hard, _primer(reading_level=band))] == ["reading_level"]
    assert quality.flags(plain, _primer()) == []  # no range set, no reading flag


def test_flags_length_far_from_the_target_only():
    text = "word " * 100
    assert quality.flags(text, None, target_words=100) == []
    assert quality.flags(text, None, target_words=0) == []  # the step sets no target
    (short,) = quality.flags(text, None, target_words=300)
    assert (short.kind, short.detail) == ("length", "too short: 100 words, target ~300")
    (long,) = quality.flags(text, None, target_words=50)
    assert long.detail.startswith("too long")


def test_readability_is_textstats_flesch_reading_ease_clamped():
    import textstat

    text = "The quick brown fox jumps over the lazy dog. It was not amused by this at all."
    assert quality.readability(text) == max(0.0, min(100.0, textstat.flesch_reading_ease(text)))
    assert quality.readability("Too short") == 0.0


def test_style_reading_level_is_validated_with_a_clear_error():
    from writeit import config

    base = "name: x\ncontent: y\n"
    style, problems = config.parse_style(base + "reading_level: {min: 50, max: 70}")
    assert style.reading_level == ReadingLevel(min=50, max=70)
    for bad, message in [
        ("{min: 80, max: 20}", "min 80 is above max 20"),
        ("50", "must have only 'min' and 'max'"),
        ("{min: 120}", "min 120 is not 0..100"),
        ("{low: 1}", "must have only 'min' and 'max'"),
    ]:
        style, problems = config.parse_style(base + f"reading_level: {bad}")
        assert style is None
        assert len(problems) == 1 and message in problems[0].message, problems


def test_builtin_styles_set_a_reading_level():
    from writeit import config

    for entry in config.list_styles():
        if entry.path.parent.name == "styles" and "builtins" in entry.path.parts:
            assert entry.item.reading_level is not None, entry.path
