"""What a model costs: USD per million tokens, from pydantic's `genai-prices` data.

Prices are looked up offline in the data `genai-prices` ships (updated with each of its
releases), by the llm model id mapped to that data's provider and model: an OpenAI,
Anthropic, Gemini or Mistral plugin model by its provider, a model behind an `api_base`
by that URL (a local server matches no provider: its price is unknown). `pricing` in
config.yaml overrides per model, in USD per million tokens as providers publish them.

A model with no known price is unknown (None), never $0: a total that left it out would
read as the whole. The offline models cost nothing, and say so: a plugin marks a model
free with a `writeit_free = True` attribute (the tests' scripted models do).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from writeit.models import AIResponse, PipelineRun, ResponseStatus

log = logging.getLogger("writeit.pricing")

FREE_MODELS = frozenset({"markov"})  # offline: no provider, no bill

# llm plugin (as providers._provider_of names it) -> genai-prices provider id
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "bedrock": "aws",
    "cohere": "cohere",
    "grok": "x-ai",
}

Overrides = Mapping[str, Mapping[str, float]]
# Providers charge more above a prompt size (128K or 200K tokens today): from this size
# on, a cost is worked out by genai-prices itself (~0.2 ms), below it from the base price.
LONG_PROMPT = 100_000


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, and where the figure came from:
    `config` (the writer's `pricing`), `genai-prices` (with `provider`/`model` as that
    data names them) or `free` (an offline model)."""

    input: float
    output: float
    source: str
    provider: str = ""
    model: str = ""

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


def price_of(model: str, overrides: Overrides | None = None) -> Price | None:
    """The price of `model` (an llm id or alias), None when unknown. The writer's
    `pricing` entry wins; a side it leaves out keeps the maintained price (else 0)."""
    found = _maintained(model)
    entry = _override(model, overrides or {})
    if entry is None:
        return found
    return Price(
        input=float(entry.get("input", found.input if found else 0.0)),
        output=float(entry.get("output", found.output if found else 0.0)),
        source="config",
        provider=found.provider if found else "",
        model=found.model if found else "",
    )


def cost(
    model: str, input_tokens: int, output_tokens: int, overrides: Overrides | None = None
) -> float | None:
    """What a call cost in USD, None when the model's price is unknown. A long prompt's
    maintained price goes through genai-prices itself, so its tiers are charged right."""
    if _override(model, overrides or {}) is None and input_tokens >= LONG_PROMPT:
        exact = _calc(model, input_tokens, output_tokens)
        if exact is not None:
            return exact
    price = price_of(model, overrides)
    return None if price is None else round(price.cost(input_tokens, output_tokens), 8)


def is_priced(response: AIResponse) -> bool:
    """Whether a finished response's cost is known (a stored None is "unknown")."""
    return response.usage_stats is not None and response.usage_stats.cost_usd is not None


@dataclass(frozen=True)
class Spend:
    """What a run's calls cost, the one figure the budget, `show`, the CLI and the TUI
    give: the provider's usage where it reported it, else WriteIt's count (the forecast's
    estimator: a call stopped by a pause or the budget reports nothing, yet was billed).

    `inherited` is the part a fork's parent paid for (responses made before the branch),
    `estimated` the part counted by WriteIt, `unpriced` the models counted as 0."""

    total: float = 0.0
    inherited: float = 0.0
    estimated: float = 0.0
    unpriced: tuple[str, ...] = ()
    tokens: int = 0
    inherited_tokens: int = 0

    @property
    def own(self) -> float:
        """What this run (branch) spent itself."""
        return self.total - self.inherited


def spend(run: PipelineRun, overrides: Overrides | None = None) -> Spend:
    """The run's spend, split into its own and what a fork inherited."""
    from writeit import forecast

    total = inherited = estimated = 0.0
    tokens = inherited_tokens = 0
    unpriced: set[str] = set()
    history: forecast.History | None = None
    forked_at = run.created_at if run.parent_pipeline_run_id else None
    for step in run.steps.values():
        for response in step.ai_responses:
            usage = response.usage_stats
            if usage is not None:
                value, guessed = usage.cost_usd, usage.estimated
            elif response.status != ResponseStatus.COMPLETED and response.raw_output:
                # stopped before WriteIt recorded usage (older runs): count it now
                history = history or forecast.History.of([run])
                value, guessed = _estimate(response, history, overrides), True
            else:
                continue
            older = forked_at is not None and response.created_at < forked_at
            tokens += response.tokens
            inherited_tokens += response.tokens if older else 0
            if value is None:
                unpriced.add(response.model_name)
                continue
            total += value
            estimated += value if guessed else 0.0
            if older:
                inherited += value
    return Spend(total, inherited, estimated, tuple(sorted(unpriced)), tokens, inherited_tokens)


def spent(run: PipelineRun, overrides: Overrides | None = None) -> float:
    """What the run has spent so far, in USD, as the budget counts it (`spend`)."""
    return spend(run, overrides).total


def estimated_usage(
    model: str, input_tokens: int, output_tokens: int, overrides: Overrides | None = None
) -> dict[str, Any]:
    """A stopped call's usage as WriteIt counted it, marked an estimate."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": cost(model, input_tokens, output_tokens, overrides),
        "estimated": True,
    }


def _estimate(response: AIResponse, history: Any, overrides: Overrides | None) -> float | None:
    from writeit import forecast

    model = response.model_name
    system = "\n" + response.system_prompt if response.system_prompt else ""
    sent, _ = forecast.count_tokens(model, response.prompt_used + system, history)
    written = forecast.count_output(model, response.raw_output, history)
    return cost(model, sent, written, overrides)


def upgrade_config(data: dict[str, Any]) -> bool:
    """Convert a config.yaml written when prices were per 1K tokens (no `pricing_unit`)
    to per million, in place; True if it changed (the caller saves it, once)."""
    if not data.get("pricing") or data.get("pricing_unit"):
        return False
    for entry in data["pricing"].values():
        if isinstance(entry, dict):
            for side, value in list(entry.items()):
                if isinstance(value, int | float):
                    entry[side] = round(value * 1000, 9)
    data["pricing_unit"] = "per_million"
    return True


# --- lookups -------------------------------------------------------------------------------


def _override(model: str, overrides: Overrides) -> Mapping[str, float] | None:
    if not overrides:
        return None
    if model in overrides:
        return overrides[model]
    model_id, _ = identity(model)
    return overrides.get(model_id)


@functools.lru_cache(maxsize=512)
def identity(model: str) -> tuple[str, tuple[str, str, str, bool]]:
    """(llm's model id, (provider, model name, api_base, free)) for a name or alias;
    the name itself when llm does not know it (it may still be in the price data)."""
    from writeit import providers

    try:
        resolved = providers.resolve(model)
    except Exception:  # not installed here: the price data may still know the name
        return model, ("", model, "", model in FREE_MODELS)
    obj = resolved.async_model or resolved.sync_model
    free = resolved.model_id in FREE_MODELS or bool(getattr(obj, "writeit_free", False))
    name = getattr(obj, "model_name", None) or resolved.model_id
    return resolved.model_id, (resolved.provider, name, getattr(obj, "api_base", None) or "", free)


def _find(model: str) -> Any:
    """genai-prices' (provider, model info) for an llm model, or None."""
    from genai_prices import data_snapshot

    model_id, (provider, name, api_base, _) = identity(model)
    snapshot = data_snapshot.get_snapshot()
    if api_base:  # only the URL says who serves it: a local server is nobody's price list
        attempts = [(name, None, api_base)]
    else:
        ref = name.split("/", 1)[1] if "/" in name else name
        hint = _PROVIDERS.get(provider)
        attempts = [(ref, hint, None)] if hint else []
        attempts.append((ref, None, None))
    for ref, provider_id, url in attempts:
        try:
            return snapshot.find_provider_model(ref, None, provider_id, url)
        except LookupError:
            continue
    return None


@functools.lru_cache(maxsize=512)
def _maintained(model: str) -> Price | None:
    _, (_, _, _, free) = identity(model)
    if free:
        return Price(0.0, 0.0, "free")
    found = _find(model)
    if found is None:
        return None
    provider, info = found
    # Per million from a thousand tokens: the base price, below any long-prompt tier.
    per_k_in, per_k_out = _calc(model, 1000, 0), _calc(model, 0, 1000)
    if per_k_in is None or per_k_out is None:
        return None
    return Price(per_k_in * 1000, per_k_out * 1000, "genai-prices", provider.id, info.id)


def _calc(model: str, input_tokens: int, output_tokens: int) -> float | None:
    from genai_prices import Usage, calc_price

    _, (_, _, _, free) = identity(model)
    if free:
        return 0.0
    found = _find(model)
    if found is None:
        return None
    provider, info = found
    try:
        result = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            info.id,
            provider_id=provider.id,
        )
    except Exception as error:  # a price the data cannot apply to plain tokens
        log.info("no price for %s: %s", model, error)
        return None
    return round(float(result.total_price), 8)


def forget() -> None:
    """Drop cached lookups (llm's models changed: a key set, a new extra model)."""
    identity.cache_clear()
    _maintained.cache_clear()
