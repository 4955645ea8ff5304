"""Word-level diffs (`writeit.diffs`): faithful to both texts, exact about what changed."""

import io
import random
from itertools import pairwise

import pytest
from rich.console import Console

from writeit import diffs

DRAFT = """## 1. Six weeks from cron to Temporal

**Hook:** 140 nightly jobs moved in six weeks, and failures fell from 12 a month to 2.

**Core claim:** a small team can move a whole batch estate if it ports the retries first.

## 2. What the failures were really about

**Hook:** most of our 12 monthly failures were retries nobody could see.

Strongest: angle 1, because the numbers carry it.
"""

# the same draft with three words changed, one removed and one added
REVISED = (
    DRAFT.replace("Six weeks", "Seven weeks")
    .replace("a small team", "a tiny team")
    .replace("really about", "about")
    .replace("nobody could see", "nobody could ever see")
    .replace("numbers carry", "figures carry")
)


def changed(changes: list[diffs.Change]) -> list[tuple[str, str]]:
    return [(c.op, c.text) for c in changes if c.op != "equal"]


def test_only_the_changed_words_are_inserted_or_deleted():
    changes = diffs.diff(DRAFT, REVISED)
    assert changed(changes) == [
        ("delete", "Six"),
        ("insert", "Seven"),
        ("delete", "small"),
        ("insert", "tiny"),
        ("delete", "really "),
        ("insert", "ever "),
        ("delete", "numbers"),
        ("insert", "figures"),
    ]
    assert diffs.summary(changes) == "4 words added, 4 removed"


@pytest.mark.parametrize(
    "old,new",
    [
        (DRAFT, REVISED),
        ("", "Only new text.\n"),
        ("Only old text.", ""),
        ("  leading and trailing spaces  \n\n", "leading\tand trailing spaces\n"),
        ("Hello.\r\n\r\nWorld!", "Hello!\r\nWorld?"),
        ("same", "same"),
        ("émigré café, naïve — «quoted»", "émigrée café; naïve — «quoted» 😀"),
    ],
)
def test_the_changes_give_back_both_texts(old, new):
    changes = diffs.diff(old, new)
    assert diffs.old_text(changes) == old
    assert diffs.new_text(changes) == new
    assert all(c.text for c in changes)  # no empty changes
    assert all(a.op != b.op for a, b in pairwise(changes))  # runs are joined


def test_long_unrelated_texts_give_back_both_texts():
    rnd = random.Random(7)
    words = [f"w{n}" for n in range(300)] + ["the", "a", "of", ".", ",", "\n\n"]
    old = " ".join(rnd.choice(words) for _ in range(3000))
    new = " ".join(rnd.choice(words) for _ in range(3000))
    changes = diffs.diff(old, new)
    assert (diffs.old_text(changes), diffs.new_text(changes)) == (old, new)
    assert {"equal", "insert", "delete"} == {c.op for c in changes}


def test_punctuation_only_changes_say_so():
    changes = diffs.diff("It works.", "It works!")
    assert changed(changes) == [("delete", "."), ("insert", "!")]
    assert diffs.summary(changes) == "only punctuation or spacing differs"
    assert diffs.summary(diffs.diff("same", "same")) == "no differences"


def test_the_rendering_marks_changes_without_colour():
    text = diffs.render(diffs.diff("a very fast dog", "a fast brown dog"))
    assert text.plain == "a [-very-] fast {+brown+} dog"
    console = Console(file=io.StringIO(), no_color=True, width=80)
    console.print(text)
    assert console.file.getvalue().strip() == "a [-very-] fast {+brown+} dog"
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert "strike" in styles["[-very-]"] and "underline" in styles["{+brown+}"]
