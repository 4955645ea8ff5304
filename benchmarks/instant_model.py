"""An `llm` plugin whose models answer instantly, so benchmarks measure WriteIt, not a model.

`instant-a` and `instant-b` stream a fixed article-sized reply in word-sized chunks;
`firehose` streams `FIREHOSE_DELTAS` one-character deltas as fast as the event loop
goes (yielding to it between deltas, as a network stream would);
`paced-a` and `paced-b` take PACE seconds a chunk, so a run lasts long enough to be
killed part way (the soak); `slow-a` and `slow-b` take SLOW_PACE (about six seconds a
reply), so races and pauses land mid-stream.
"""

from __future__ import annotations

import llm

REPLY = ("Clear writing starts with knowing who will read the piece and why. " * 60).strip()
FIREHOSE_DELTAS = 200_000
BURST_DELTAS = 20_000  # the TUI figure: three panes of this many tokens each
PACE = 0.001
SLOW_PACE = 0.01


def _chunks(model_id: str) -> list[str]:
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

        for chunk in _chunks(self.model_id):
            if self.model_id.startswith("paced"):
                time.sleep(PACE)
            elif self.model_id.startswith("slow"):
                time.sleep(SLOW_PACE)
            yield chunk
        response.set_usage(input=len(prompt.prompt) // 4, output=len(REPLY) // 4)


class AsyncInstant(llm.AsyncModel):
    can_stream = True
    Options = Options

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    async def execute(self, prompt, stream, response, conversation):
        import asyncio

        for chunk in _chunks(self.model_id):
            if self.model_id.startswith("paced"):
                await asyncio.sleep(PACE)
            elif self.model_id.startswith("slow"):
                await asyncio.sleep(SLOW_PACE)
            elif self.model_id == "firehose" or self.model_id.startswith("burst"):
                await asyncio.sleep(0)  # like a network stream, let the loop breathe
            yield chunk
        response.set_usage(input=len(prompt.prompt) // 4, output=len(REPLY) // 4)


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
