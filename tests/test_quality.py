"""The quality hints shown beside each candidate."""

from writeit import quality


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
