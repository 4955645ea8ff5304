"""What a step will cost before it starts, and the budget that holds a run to a limit.

Input tokens are counted in the prompt as it will be sent: with OpenAI's tokenizer
(`tiktoken`) for OpenAI models when its vocabulary is already on this machine (tiktoken
downloads it on first use; a forecast never touches the network), else from what this
model's provider reported for earlier prompts in the workspace (characters per token),
else characters / 4, marked an estimate. Output tokens are what this model wrote at this
step in the workspace's recent runs, else a per-step default (`target_words`, or half of
`max_tokens`), with a low-high range.

A step not yet reachable (a dry run, the new-run form) is forecast from its template with
the earlier steps' outputs standing in at their expected length.

The budget: a step whose forecast would take the run past its budget is not started
(`refusal`), and a stream that crosses it is stopped (`Guard`, fed every chunk).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from writeit import pricing
from writeit.config import render_template, step_context
from writeit.models import (
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepSpec,
    StepStatus,
    WriteItError,
)

CHARS_PER_TOKEN = 4.0  # the usual rule of thumb for English, when nothing better is known
DEFAULT_OUTPUT = 800  # tokens, for a step with neither target_words nor max_tokens
TOKENS_PER_WORD = 1.35
RECENT_RUNS = 20  # the workspace's runs whose outputs teach the forecast
_SAMPLES = 8  # the latest outputs of a model at a step that count

PriceOf = Callable[[str], pricing.Price | None]


@dataclass(frozen=True)
class ModelForecast:
    """One model's expected call at one step; costs None when its price is unknown."""

    step: str
    model: str
    input_tokens: int
    output_tokens: int
    output_low: int
    output_high: int
    price: pricing.Price | None
    counted_by: str  # "tiktoken", "provider history" or "chars/4"
    output_from: str  # "history (N)" or "default"
    estimated: bool = True  # the input count is not the model's own tokenizer's

    def _cost(self, input_tokens: int, output_tokens: int) -> float | None:
        return None if self.price is None else self.price.cost(input_tokens, output_tokens)

    @property
    def cost(self) -> float | None:
        return self._cost(self.input_tokens, self.output_tokens)

    @property
    def low(self) -> float | None:
        spread = 0.9 if self.estimated else 1.0
        return self._cost(int(self.input_tokens * spread), self.output_low)

    @property
    def high(self) -> float | None:
        spread = 1.15 if self.estimated else 1.0
        return self._cost(math.ceil(self.input_tokens * spread), self.output_high)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_tokens_low": self.output_low,
            "output_tokens_high": self.output_high,
            "input_price": None if self.price is None else self.price.input,
            "output_price": None if self.price is None else self.price.output,
            "cost_usd": _round(self.cost),
            "cost_usd_low": _round(self.low),
            "cost_usd_high": _round(self.high),
            "priced": self.price is not None,
            "estimated": self.estimated,
            "counted_by": self.counted_by,
            "output_from": self.output_from,
        }


@dataclass(frozen=True)
class Forecast:
    """Forecasts per step and model, in pipeline order; totals None if a price is unknown."""

    items: list[ModelForecast] = field(default_factory=list)

    def _sum(self, values: Iterable[float | None]) -> float | None:
        found = list(values)
        return None if any(v is None for v in found) else sum(v or 0.0 for v in found)

    @property
    def cost(self) -> float | None:
        return self._sum(i.cost for i in self.items)

    @property
    def low(self) -> float | None:
        return self._sum(i.low for i in self.items)

    @property
    def high(self) -> float | None:
        return self._sum(i.high for i in self.items)

    @property
    def estimated(self) -> bool:
        return any(i.estimated for i in self.items)

    @property
    def unpriced(self) -> list[str]:
        return sorted({i.model for i in self.items if i.price is None})

    @property
    def steps(self) -> list[str]:
        return list(dict.fromkeys(i.step for i in self.items))

    def step(self, name: str) -> Forecast:
        return Forecast([i for i in self.items if i.step == name])

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [
                {
                    "step": name,
                    "cost_usd": _round(part.cost),
                    "cost_usd_low": _round(part.low),
                    "cost_usd_high": _round(part.high),
                    "models": [i.to_json() for i in part.items],
                }
                for name in self.steps
                for part in [self.step(name)]
            ],
            "cost_usd": _round(self.cost),
            "cost_usd_low": _round(self.low),
            "cost_usd_high": _round(self.high),
            "priced": not self.unpriced,
            "unpriced_models": self.unpriced,
            "estimated": self.estimated,
        }


# --- what the workspace has seen -----------------------------------------------------------


@dataclass
class History:
    """Completed candidates of recent runs: output tokens per (model, step), and the
    characters per input token each model's provider reported."""

    outputs: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    sent: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    written: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    @classmethod
    def of(cls, runs: Iterable[PipelineRun]) -> History:
        history, seen = cls(), set()
        responses = [
            (name, r)
            for run in runs
            for name, step in run.steps.items()
            for r in step.ai_responses
            if r.kind == "candidate" and r.status == ResponseStatus.COMPLETED and r.usage_stats
        ]
        responses.sort(key=lambda pair: pair[1].created_at)
        for name, response in responses:
            if response.response_id in seen:  # a fork shares its parent's responses
                continue
            seen.add(response.response_id)
            usage = response.usage_stats
            if usage.output_tokens:
                history.outputs[(response.model_name, name)].append(usage.output_tokens)
                if not usage.estimated:
                    wrote = history.written[response.model_name]
                    wrote[0] += len(response.raw_output)
                    wrote[1] += usage.output_tokens
            if usage.input_tokens:
                sent = history.sent[response.model_name]
                sent[0] += len(response.prompt_used) + len(response.system_prompt)
                sent[1] += usage.input_tokens
        return history

    def chars_per_token(self, model: str) -> float | None:
        chars, tokens = self.sent.get(model, (0, 0))
        return chars / tokens if chars and tokens else None

    def chars_per_output_token(self, model: str) -> float | None:
        """Characters per token of what the model wrote, as its provider counted them
        (an answer's text is not a prompt's: prose, no template)."""
        chars, tokens = self.written.get(model, (0, 0))
        return chars / tokens if chars and tokens else self.chars_per_token(model)

    def output(self, model: str, step: str) -> list[int]:
        return self.outputs.get((model, step), [])[-_SAMPLES:]


# --- counting ----------------------------------------------------------------------------


def count_tokens(model: str, text: str, history: History | None = None) -> tuple[int, str]:
    """(tokens, how they were counted) for `text` sent to `model`."""
    if not text:
        return 0, "chars/4"
    encoding = _tiktoken_for(model)
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=())), "tiktoken"
    ratio = history.chars_per_token(model) if history else None
    if ratio:
        return math.ceil(len(text) / ratio), "provider history"
    return math.ceil(len(text) / CHARS_PER_TOKEN), "chars/4"


@functools.lru_cache(maxsize=64)
def _tiktoken_for(model: str) -> Any:
    """tiktoken's encoding for an OpenAI model when its vocabulary is cached here (it is
    fetched from the network on first use, which a forecast must never wait for)."""
    model_id, (provider, name, api_base, _) = pricing.identity(model)
    if provider != "openai" or api_base:
        return None
    try:
        import tiktoken
        from tiktoken.model import encoding_name_for_model

        encoding = encoding_name_for_model(name)
    except (ImportError, KeyError):
        return None
    if not _vocabulary_cached(encoding):
        return None
    try:
        return tiktoken.get_encoding(encoding)
    except Exception:  # a damaged cache: fall back to the estimate
        return None


# tiktoken's vocabularies and their sha256, as tiktoken_ext.openai_public checks them: a
# file that does not match would make tiktoken fetch it again, from the network.
_VOCABULARIES = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


def _vocabulary_cached(encoding: str) -> bool:
    """Whether tiktoken's `read_file_cached` would find the vocabulary whole on disk."""
    expected = _VOCABULARIES.get(encoding)
    if expected is None:
        return False
    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    path = os.path.join(
        folder or os.path.join(tempfile.gettempdir(), "data-gym-cache"),
        hashlib.sha1(url.encode()).hexdigest(),
    )
    try:
        with open(path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest() == expected
    except OSError:
        return False


def expected_output(
    model: str, spec: StepSpec, options: Mapping[str, Any], history: History
) -> tuple[int, int, int, str]:
    """(expected, low, high, where from) output tokens of `model` at step `spec`."""
    cap = int(options.get("max_tokens") or 0)
    past = history.output(model, spec.name)
    if past:
        expected = int(statistics.median(past))
        low, high = int(min(min(past), expected * 0.8)), math.ceil(max(max(past), expected * 1.25))
        source = f"history ({len(past)})"
    else:
        target = int(options.get("target_words") or 0)
        expected = (
            int(target * TOKENS_PER_WORD) if target else (cap // 2 if cap else DEFAULT_OUTPUT)
        )
        low, high = expected // 2, cap or expected * 2
        source = "default"
    if cap:
        expected, high = min(expected, cap), min(max(high, expected), cap)
    return expected, min(low, expected), max(high, expected), source


# --- forecasting -------------------------------------------------------------------------


def step_forecast(
    step: str,
    spec: StepSpec,
    options: Mapping[str, Any],
    models: list[str],
    prompt: str,
    system: str,
    price_of: PriceOf,
    history: History,
    *,
    extra_input: int = 0,
) -> list[ModelForecast]:
    """One forecast per model asked (a model asked twice is forecast twice)."""
    found = []
    for model in models:
        sent, how = count_tokens(model, prompt + ("\n" + system if system else ""), history)
        expected, low, high, source = expected_output(model, spec, options, history)
        found.append(
            ModelForecast(
                step=step,
                model=model,
                input_tokens=sent + extra_input,
                output_tokens=expected,
                output_low=low,
                output_high=high,
                price=price_of(model),
                counted_by=how,
                output_from=source,
                estimated=how != "tiktoken" or extra_input > 0,
            )
        )
    return found


def plan(
    pipeline: PipelineConfiguration,
    inputs: Mapping[str, str],
    *,
    models_for: Callable[[str], list[str]],
    price_of: PriceOf,
    history: History,
    system: str = "",
    style: str = "",
    outputs: Mapping[str, str] | None = None,
    feedback: Mapping[str, str] | None = None,
    prompts: Mapping[str, str] | None = None,
    start: str | None = None,
) -> Forecast:
    """Forecast the steps from `start` (default: the first) to the end. A step's prompt is
    `prompts[step]` when known; else its template is rendered with `outputs` given so far
    and, for earlier steps without one, a marker counted as their expected output."""
    outputs, prompts = dict(outputs or {}), dict(prompts or {})
    names = pipeline.step_names
    expected: dict[str, int] = {}
    items: list[ModelForecast] = []
    for name in names[names.index(start) if start else 0 :]:
        spec = pipeline.step(name)
        options = pipeline.options_for(spec)
        models = models_for(name)
        extra = 0
        prompt = prompts.get(name)
        if prompt is None:
            markers = {s: _marker(s) for s in names[: names.index(name)] if s not in outputs}
            context = step_context(
                pipeline,
                name,
                inputs=inputs,
                outputs={**outputs, **markers},
                feedback=feedback,
                style=style,
            )
            prompt = render_template(spec.template, context)
            for earlier, marker in markers.items():
                extra += prompt.count(marker) * expected.get(earlier, 0)
                prompt = prompt.replace(marker, "")
        found = step_forecast(
            name, spec, options, models, prompt, system, price_of, history, extra_input=extra
        )
        items += found
        if found:
            expected[name] = int(statistics.mean(f.output_tokens for f in found))
    return Forecast(items)


def of_run(run: PipelineRun, price_of: PriceOf, history_of: Callable[..., History]) -> Forecast:
    """The steps `run` has still to run: its current step if it has not run (with the
    prompt it will be sent), else the steps after it."""
    from writeit.prompts import render_prompt

    names = run.pipeline.step_names
    pending = run.current.status == StepStatus.PENDING
    if run.status == PipelineStatus.COMPLETED:
        return Forecast()
    start = run.current_step if pending else run.pipeline.next_step(run.current_step)
    if start is None:
        return Forecast()
    earlier = names[: names.index(start)]
    return plan(
        run.pipeline,
        run.user_inputs,
        models_for=run.models_for,
        price_of=price_of,
        history=history_of(run),
        system=run.style_prompt,
        style=run.primer.name if run.primer else "",
        outputs={n: out for n in earlier if (out := run.steps[n].output) is not None},
        feedback={n: run.steps[n].user_feedback or "" for n in earlier},
        prompts={start: render_prompt(run, start)} if pending else None,
        start=start,
    )


def of_new_run(
    pipeline: str | PipelineConfiguration,
    inputs: Mapping[str, str],
    *,
    style: str,
    models: list[str],
    step_models: Mapping[str, list[str]],
    pipeline_dirs: list[Any],
    style_dirs: list[Any],
    price_of: PriceOf,
    history: History,
) -> Forecast:
    """A whole new run of `pipeline`, its inputs as given so far (a form half filled is
    forecast as it stands)."""
    from writeit import config

    if isinstance(pipeline, str):
        pipeline = config.get_pipeline(pipeline, pipeline_dirs)
    spec = pipeline
    primer = None
    if style:
        with contextlib.suppress(WriteItError):
            primer = config.get_style(style, style_dirs)

    def models_for(name: str) -> list[str]:
        return list(models or step_models.get(name) or spec.models_for(spec.step(name)))

    return plan(
        spec,
        {i.name: inputs.get(i.name) or i.default or "" for i in spec.inputs},
        models_for=models_for,
        price_of=price_of,
        history=history,
        system=primer.format_for_prompt() if primer else "",
        style=primer.name if primer else "",
    )


def _marker(step: str) -> str:
    return f"\x00{step}\x00"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# --- the budget --------------------------------------------------------------------------


def refusal(run: PipelineRun, spent: float, ahead: Forecast) -> str | None:
    """Why the step forecast `ahead` may not start under the run's budget, or None."""
    budget = run.budget_usd
    if budget is None:
        return None
    if ahead.unpriced:
        return (
            f"the run's budget is ${budget:.4f} but the price of {', '.join(ahead.unpriced)} is "
            "unknown, so the step could cost anything"
        )
    cost = ahead.cost or 0.0
    if spent + cost <= budget:
        return None
    step = ", ".join(ahead.steps) or run.current_step
    return (
        f"budget reached: the run's budget is ${budget:.4f}, it has spent ${spent:.4f} and "
        f"step {step} is forecast at ${cost:.4f} (${ahead.low or 0:.4f}-${ahead.high or 0:.4f})"
    )


def suggested_budget(spent: float, ahead: Forecast) -> float | None:
    """A budget that lets the step `ahead` run even at its high end: spent plus the
    forecast's high end, rounded up to two significant figures (None: price unknown)."""
    high = ahead.high
    if high is None:
        return None
    value = spent + high
    if value <= 0:
        return 0.01
    unit = 10 ** (math.floor(math.log10(value)) - 1)
    return round(math.ceil(value / unit - 1e-9) * unit, 10)


def output_tokens(model: str, chars: int, counted: int | None, history: History) -> int:
    """Tokens of `chars` characters `model` wrote, counted as `count_tokens` counts a
    prompt: `counted` when tiktoken counted them, else the provider's characters per
    token of this model's answers in the workspace's history (of its prompts when it
    has none), else characters / 4."""
    if counted is not None:
        return counted
    ratio = history.chars_per_output_token(model) or CHARS_PER_TOKEN
    return math.ceil(chars / ratio)


def count_output(model: str, text: str, history: History) -> int:
    """Tokens of `text` a model wrote (a stopped call reports none), as the guard counts."""
    encoding = _tiktoken_for(model)
    counted = len(encoding.encode(text, disallowed_special=())) if encoding else None
    return output_tokens(model, len(text), counted, history)


@dataclass
class Guard:
    """Watches a generation's streams against the run's budget: the spend before it,
    each stream's forecast input, and its output as it arrives, counted the way the
    forecast counts (so a step that fits its forecast is not cut short by a coarser
    count); a stopped stream's usage is recorded with the same figures."""

    budget: float
    spent: float
    prices: dict[str, pricing.Price | None]  # response id -> its model's price
    inputs: dict[str, int]  # response id -> forecast input tokens
    models: dict[str, str] = field(default_factory=dict)  # response id -> model
    history: History = field(default_factory=History)
    chars: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by tiktoken
    tripped: str | None = None  # why the streams were stopped, once they were

    def add(self, response_id: str, text: str) -> bool:
        """Count a chunk; True when the run is now past its budget."""
        self.chars[response_id] += len(text)
        encoding = _tiktoken_for(self.models.get(response_id, ""))
        if encoding is not None:
            self.counted[response_id] += len(encoding.encode(text, disallowed_special=()))
        return self.running > self.budget

    def usage(self, response_id: str) -> tuple[int, int]:
        """(input, output) tokens of a response as the guard counts them."""
        model = self.models.get(response_id, "")
        tiktoken = response_id in self.counted
        written = output_tokens(
            model,
            self.chars.get(response_id, 0),
            self.counted[response_id] if tiktoken else None,
            self.history,
        )
        return self.inputs.get(response_id, 0), written

    @property
    def running(self) -> float:
        total = self.spent
        for response_id, price in self.prices.items():
            if price is not None:
                total += price.cost(*self.usage(response_id))
        return total

    def stop(self) -> str:
        """The reason the streams stop (`budget: ...`), remembered for the run's pause."""
        if self.tripped is None:
            self.tripped = (
                f"budget: the run's budget of ${self.budget:.4f} was reached "
                f"(${self.running:.4f} spent, estimated)"
            )
        return self.tripped
