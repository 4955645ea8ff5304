"""An `llm` plugin whose models answer instantly, so benchmarks measure WriteIt, not a model.

`instant-a` and `instant-b` stream a fixed article-sized reply in word-sized chunks;
`firehose` streams `FIREHOSE_DELTAS` one-character deltas as fast as the event loop
goes (yielding to it between deltas, as a network stream would);
`paced-a` and `paced-b` take PACE seconds a chunk, so a run lasts long enough to be
killed part way (the soak); `slow-a` and `slow-b` take SLOW_PACE (about six seconds a
reply), so races and pauses land mid-stream;
`prose-a` and `prose-b` stream realistic English prose (see `prose()`), different text
for every call, so stored runs compress as real ones do (one sentence repeated compresses
tenfold; English about 2.4x).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict

import llm

REPLY = ("Clear writing starts with knowing who will read the piece and why. " * 60).strip()
FIREHOSE_DELTAS = 200_000
BURST_DELTAS = 20_000  # the TUI figure: three panes of this many tokens each
PACE = 0.001
SLOW_PACE = 0.01
# Characters each burst model has yielded in this process: what the TUI bench compares
# with what the panes show (read from another thread; one int store per chunk).
PRODUCED: dict[str, int] = {}


# --- realistic prose -------------------------------------------------------------------
# A seeded generator over about 300 distinct English words, rank-weighted (a few words
# come up often, most rarely, as in real text), in varied clauses, sentences, paragraphs
# and headings. zlib shrinks 4 KB of it to 0.40 of its size; Python's own LICENSE.txt and
# docs (pydoc_data) shrink to 0.38-0.42: it stores as real articles do. Self-contained, so
# every interpreter generates the same text.


def _words(text: str) -> list[str]:
    return text.split()


_NOUNS = _words("""writer reader article draft outline angle argument story example source claim
evidence section paragraph sentence headline summary audience editor team product feature
release user customer developer engineer manager service system database server client
request response latency cache index query schema migration deployment pipeline test
failure error incident budget cost risk decision trade-off design pattern library
framework language compiler runtime memory disk network protocol message queue event log
metric dashboard alert page report problem solution question answer detail context
history version change review feedback process habit workflow tool method model prompt
token score benchmark result figure table chart trend market company startup platform
community project issue bug fix patch branch commit merge conflict schedule deadline week
month year morning hour minute moment reason idea point view approach strategy goal plan
step stage phase level layer boundary interface contract promise guarantee limit
threshold signal noise surprise lesson mistake rule principle default option setting
value field record document file folder""")
_VERBS = _words("""write read explain describe show prove test measure build ship deploy run break
fix change improve reduce increase keep lose find miss ignore follow lead support replace
remove add move split join sort store load save send receive handle check compare choose
decide expect assume suggest argue claim notice learn teach ask answer help make take give
use need want try start stop finish begin grow shrink slow cover hide reveal question
doubt trust review rewrite edit""")
_PAST = {
    "write": "wrote",
    "read": "read",
    "run": "ran",
    "break": "broke",
    "keep": "kept",
    "lose": "lost",
    "find": "found",
    "lead": "led",
    "send": "sent",
    "teach": "taught",
    "make": "made",
    "take": "took",
    "give": "gave",
    "begin": "began",
    "grow": "grew",
    "hide": "hid",
    "build": "built",
    "choose": "chose",
    "split": "split",
    "ship": "shipped",
    "stop": "stopped",
    "rewrite": "rewrote",
    "shrink": "shrank",
}
_ADJS = _words("""clear simple small large fast slow early late new old careful quick rough final
first second last real honest useful hard easy common rare obvious subtle strong weak good
bad better worse short long wide narrow deep shallow quiet loud expensive cheap reliable
fragile modern legacy public private local remote shared single multiple certain likely
unlikely open closed busy idle stable noisy""")
_ADVS = _words("""often rarely usually quickly slowly carefully clearly simply really mostly almost
always never sometimes already still again soon later finally only even""")
_PREPS = _words("""in on at with without for from into over under after before during about
across behind between through""")
_DETS = _words("the the the a a this that every each one our your their its no some most")
_CONJS = _words("and but so because while although when if since unless until whereas")
_PLURAL = ["we", "you", "they", "most teams", "the best writers", "good editors"]
_OPENERS = [
    "However,",
    "In practice,",
    "For example,",
    "Still,",
    "Then",
    "Later,",
    "At first,",
    "In the end,",
    "Of course,",
    "Even so,",
    "That is why",
    "On the other hand,",
]
_MODALS = ["will", "can", "should", "might", "must", "would"]


def _ranked(rng: random.Random, words: list[str]) -> str:
    """A word by log-uniform rank: roughly Zipf, as word frequencies in English are."""
    return words[min(int(len(words) ** rng.random()) - 1, len(words) - 1)]


def _noun_phrase(rng: random.Random) -> str:
    words = [rng.choice(_DETS)]
    if rng.random() < 0.45:
        words.append(_ranked(rng, _ADJS))
    words.append(_ranked(rng, _NOUNS))
    if rng.random() < 0.2:
        words += ["of", rng.choice(_DETS), _ranked(rng, _NOUNS)]
    phrase = " ".join(words)
    return phrase.replace("a a", "an a").replace("a e", "an e").replace("a o", "an o")


def _verb(rng: random.Random, plural: bool) -> str:
    verb, form = _ranked(rng, _VERBS), rng.random()
    if form < 0.3:
        return verb if plural else verb + ("es" if verb.endswith(("s", "sh", "ch", "x")) else "s")
    if form < 0.5:
        return f"{rng.choice(_MODALS)} {verb}"
    if form < 0.65:
        return f"{'do' if plural else 'does'} not {verb}"
    return _PAST.get(verb) or verb + ("d" if verb.endswith("e") else "ed")


def _clause(rng: random.Random) -> str:
    plural = rng.random() < 0.35
    words = [rng.choice(_PLURAL) if plural else _noun_phrase(rng)]
    if rng.random() < 0.2:
        words.append(_ranked(rng, _ADVS))
    words += [_verb(rng, plural), _noun_phrase(rng)]
    if rng.random() < 0.5:
        words += [rng.choice(_PREPS), _noun_phrase(rng)]
    return " ".join(words)


def _sentence(rng: random.Random) -> str:
    text = _clause(rng)
    if rng.random() < 0.4:
        text += f", {rng.choice(_CONJS)} {_clause(rng)}"
    if rng.random() < 0.15:
        text = f"{rng.choice(_OPENERS)} {text}"
    return text[0].upper() + text[1:] + ("?" if rng.random() < 0.04 else ".")


def prose(seed: int | str, words: int) -> str:
    """About `words` words of English prose in paragraphs, some under `##` headings; the
    same seed always gives the same text."""
    rng = random.Random(seed if isinstance(seed, int) else _digest(seed))
    out: list[str] = []
    count = 0
    while count < words:
        if out and rng.random() < 0.12:
            out.append(f"## {_ranked(rng, _ADJS).capitalize()} {_ranked(rng, _NOUNS)}")
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        count += paragraph.count(" ") + 1
        out.append(paragraph)
    return "\n\n".join(out)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


_calls: defaultdict[str, itertools.count] = defaultdict(itertools.count)


def prose_reply(model_id: str, prompt: str) -> str:
    """A new reply on every call (350-800 words, a step's candidate): seeded by the model,
    the prompt and how many times this process has asked the model, so a run replays
    the same and a regeneration differs."""
    seed = _digest(f"{model_id}|{next(_calls[model_id])}|{prompt}")
    return prose(seed, random.Random(seed).randint(350, 800))


def _chunks(model_id: str, prompt: str = "") -> list[str]:
    if model_id.startswith("prose"):
        words = prose_reply(model_id, prompt).split(" ")
        return [w + " " for w in words[:-1]] + words[-1:]
    if model_id == "firehose":
        return ["x"] * FIREHOSE_DELTAS
    if model_id.startswith("burst"):
        return [f"word{i % 97} " if i % 60 else "\n\n" for i in range(BURST_DELTAS)]
    words = REPLY.split(" ")
    return [w + " " for w in words]


class Options(llm.Options):
    temperature: float | None = None
    max_tokens: int | None = None


class Instant(llm.Model):
    can_stream = True
    Options = Options

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def execute(self, prompt, stream, response, conversation):
        import time

        chunks = _chunks(self.model_id, prompt.prompt or "")
        for chunk in chunks:
            if self.model_id.startswith("paced"):
                time.sleep(PACE)
            elif self.model_id.startswith("slow"):
                time.sleep(SLOW_PACE)
            yield chunk
        output = sum(len(c) for c in chunks)
        response.set_usage(input=len(prompt.prompt or "") // 4, output=output // 4)


class AsyncInstant(llm.AsyncModel):
    can_stream = True
    Options = Options

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    async def execute(self, prompt, stream, response, conversation):
        import asyncio

        chunks = _chunks(self.model_id, prompt.prompt or "")
        for chunk in chunks:
            if self.model_id.startswith("paced"):
                await asyncio.sleep(PACE)
            elif self.model_id.startswith("slow"):
                await asyncio.sleep(SLOW_PACE)
            elif self.model_id == "firehose":
                await asyncio.sleep(0)  # like a network stream, let the loop breathe
            elif self.model_id.startswith("burst"):
                await asyncio.sleep(0)
                PRODUCED[self.model_id] = PRODUCED.get(self.model_id, 0) + len(chunk)
            yield chunk
        output = sum(len(c) for c in chunks)
        response.set_usage(input=len(prompt.prompt or "") // 4, output=output // 4)


@llm.hookimpl
def register_models(register):
    for model_id in (
        "instant-a",
        "instant-b",
        "firehose",
        "paced-a",
        "paced-b",
        "burst-a",
        "burst-b",
        "burst-c",
        "slow-a",
        "slow-b",
        "prose-a",
        "prose-b",
    ):
        register(Instant(model_id), AsyncInstant(model_id))


def main() -> None:
    """`python instant_model.py ARGS`: the real `writeit` command with these models."""
    import sys

    install()
    from writeit.cli import main as writeit

    sys.argv = ["writeit", *sys.argv[1:]]
    writeit()


def install() -> None:
    import sys

    from llm.plugins import pm

    if not pm.has_plugin("writeit-instant"):
        pm.register(sys.modules[__name__], name="writeit-instant")


if __name__ == "__main__":
    main()
