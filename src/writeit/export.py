"""Export a run: the article with its metadata, and its provenance: for every step the
prompt as sent, the models asked, every candidate and how the output was decided.

The document is a Pydantic model (`ExportDocument`): JSON and YAML are its dump, its
JSON Schema is `schema()` (documented in docs/export-schema.md), and Markdown is the
article with the metadata as front matter and a short human-readable trail as its
appendix. `export_run` is the one way the CLI, the TUI and the server make an export.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from writeit.errors import WriteItError
from writeit.models import (
    AIResponse,
    Flag,
    PipelineRun,
    ResponseStatus,
    StepState,
    TokenUsage,
)

if TYPE_CHECKING:
    from writeit.engine import Engine

Format = Literal["md", "yaml", "json"]
FORMATS: tuple[str, ...] = ("md", "yaml", "json")
SUFFIX = {"md": ".md", "yaml": ".yaml", "json": ".json"}
SCHEMA_VERSION = 2  # 2: provenance (prompts, models asked, decisions), branches


IfExists = Literal["refuse", "overwrite", "rename"]
MAX_SUFFIX = 999  # name-2 … name-999: past that, something is wrong with the folder


class ExportError(WriteItError):
    """The export cannot be written where asked: a 400 over HTTP, exit 1 in the CLI."""

    code = "bad_path"


class OutsideExports(ExportError):
    """The server was asked to write outside the workspace's exports folder."""

    code = "path_outside_exports"


class ExportExists(ExportError):
    """The target exists and the writer did not ask to overwrite it (a 409 over HTTP)."""

    code = "export_exists"


@dataclass(frozen=True)
class Saved:
    path: Path
    bytes: int


# --- the document ------------------------------------------------------------------------


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Part):
    """A model's price in USD per million tokens, as providers publish them."""

    input_per_million: float
    output_per_million: float
    source: str = Field("", description="Where the figure came from: config, genai-prices…")


class ModelAsked(Part):
    model: str
    provider: str = Field("", description="The llm plugin that served it, e.g. openai.")
    price: Price | None = Field(None, description="None: the price is unknown (never $0).")


class Prompt(Part):
    """What the models of a step received."""

    system: str = Field("", description="The style's system prompt (empty: no style).")
    user: str = Field("", description="The step's rendered template, as sent.")


class Candidate(Part):
    """One response a step asked for: a candidate, an AI merge or a judge's verdict."""

    response_id: str
    number: int | None = Field(
        None, description="The number the writer chose it by (latest attempt's candidates)."
    )
    model: str
    provider: str = ""
    kind: Literal["candidate", "merge", "judge"]
    attempt: int
    status: str
    error: str | None = None
    tokens: TokenUsage | None = Field(None, description="cost_usd None: price unknown.")
    seconds: float = 0.0
    quality: dict[str, float] = Field(default_factory=dict)
    quality_score: float | None = None
    flags: list[Flag] = Field(default_factory=list)
    instruction: str | None = None
    replaces: str | None = None
    text: str = ""


class Source(Part):
    """A response a decision drew on."""

    response_id: str
    model: str
    number: int | None = None


class Decided(Part):
    """How a step's output came to be, and who decided when."""

    how: Literal["selected", "merged", "written", "skipped"]
    summary: str = Field(description='In words, e.g. "merged by m from candidates 1 and 3".')
    response_ids: list[str] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    merge_response_id: str | None = None
    merged_by: str | None = Field(None, description="The model that merged (how: merged).")
    instruction: str | None = None
    edited: bool = Field(False, description="The writer changed the model's merge by hand.")
    blind: bool = Field(False, description="Decided with the candidates' models hidden.")
    by: str = Field("writer", description='"writer", or the policy: "autopilot:best"…')
    at: datetime | None = None


class Selection(Part):
    response_id: str
    model: str
    index: int = Field(description="Its place in the step's stored responses.")
    number: int | None = Field(
        None, description="The candidate number the writer chose it by (shuffled when blind)."
    )


class StepRecord(Part):
    step: str
    status: str
    attempts: int
    prompt: Prompt | None = Field(None, description="None: the step has not run.")
    models: list[str] = Field(default_factory=list, description="The candidates' models.")
    asked: list[ModelAsked] = Field(default_factory=list)
    selection: Selection | None = None
    merged: bool = False
    decision: Decided | None = None
    decided: str | None = Field(None, description="The decision as a sentence.")
    guidance: str | None = None
    feedback: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: str | None = None
    responses: list[Candidate] | None = Field(
        None, description="Every response; absent with --no-candidates."
    )


class Style(Part):
    id: str | None = None
    system_prompt: str = ""


class Metadata(Part):
    run_id: str
    pipeline: str
    description: str = ""
    style: str | None = None
    models: list[str]
    status: str
    created: str
    completed: str | None = None
    parent_run_id: str | None = None
    branch_point: str | None = None
    total_tokens: int
    total_cost_usd: float | None = Field(description="None: a model's price is unknown.")


class Stats(Part):
    tokens: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    generation_seconds: float
    steps_completed: int
    steps_total: int
    responses: int
    failed_responses: int
    regenerations: int
    merges: int
    branches_created: int


class Branch(Part):
    """A fork of the exported run (or of one of its forks) and what it did differently."""

    run_id: str
    parent_run_id: str
    branch_point: str = Field(description="The step it branched at.")
    branch_seq: int = Field(description="The parent's last event it shares.")
    replay: bool = Field(False, description="Made by `writeit replay`.")
    status: str
    style: Style
    models: list[str] = Field(default_factory=list)
    created: str
    article: str = ""
    history: list[StepRecord] | None = Field(
        None, description="Its steps from the branch point on."
    )


class ExportDocument(Part):
    """A WriteIt export (JSON and YAML; Markdown carries `metadata` and `stats`)."""

    model_config = ConfigDict(extra="forbid", title="WriteIt export")
    writeit_export: int = Field(SCHEMA_VERSION, description="This schema's version.")
    metadata: Metadata
    style: Style
    inputs: dict[str, str]
    article: str
    stats: Stats
    history: list[StepRecord] | None = Field(None, description="Absent with --no-history.")
    branches: list[Branch] | None = Field(None, description="With --all-branches only.")


def schema() -> dict[str, Any]:
    """The JSON Schema every JSON and YAML export validates against."""
    return ExportDocument.model_json_schema()


PriceOf = Callable[[str], Any]  # model -> price (.input/.output per million, .source) or None


def _no_prices(model: str) -> None:
    return None


@dataclass(frozen=True)
class Options:
    """What goes in: the steps' history, their candidates, the run's forks."""

    history: bool = True
    candidates: bool = True
    all_branches: bool = False


def document(
    run: PipelineRun,
    *,
    include_history: bool = True,
    branches: int = 0,
    candidates: bool = True,
    forks: list[PipelineRun] | None = None,
    price_of: PriceOf = _no_prices,
) -> dict:
    """The export of `run` as data; `forks` (with --all-branches) its branches. What was
    left out (history, candidates, branches) is absent rather than null."""
    doc = build(
        run,
        Options(include_history, candidates, forks is not None),
        branches=branches,
        forks=forks or [],
        price_of=price_of,
    ).model_dump(mode="json")
    steps = [
        *(doc["history"] or []),
        *(s for b in doc["branches"] or [] for s in b["history"] or []),
    ]
    for step in steps if not candidates else []:
        del step["responses"]
    return {key: value for key, value in doc.items() if value is not None}


def build(
    run: PipelineRun,
    options: Options,
    *,
    branches: int = 0,
    forks: list[PipelineRun] | None = None,
    price_of: PriceOf = _no_prices,
) -> ExportDocument:
    responses = [r for s in run.steps.values() for r in s.ai_responses]
    models = sorted({r.model_name for r in responses if r.kind == "candidate"} | set(run.models))
    steps = run.pipeline.step_names
    return ExportDocument(
        metadata=Metadata(
            run_id=run.pipeline_run_id,
            pipeline=run.configuration_id,
            description=run.pipeline.description,
            style=run.style_primer,
            models=models,
            status=run.status.value,
            created=run.created_at.isoformat(),
            completed=run.completed_at.isoformat() if run.completed_at else None,
            parent_run_id=run.parent_pipeline_run_id,
            branch_point=run.branch_point,
            total_tokens=run.total_tokens,
            total_cost_usd=_rounded(run.known_cost),
        ),
        style=Style(id=run.style_primer, system_prompt=run.style_prompt),
        inputs=dict(run.user_inputs),
        article=run.final_text or "",
        stats=_stats(run, responses, branches),
        history=[_step(run, n, options, price_of) for n in steps] if options.history else None,
        branches=[_branch(f, options, price_of) for f in forks or []]
        if options.all_branches
        else None,
    )


def _stats(run: PipelineRun, responses: list[AIResponse], branches: int) -> Stats:
    used = [r.usage_stats for r in responses if r.usage_stats]
    return Stats(
        tokens=run.total_tokens,
        input_tokens=sum(u.input_tokens for u in used),
        output_tokens=sum(u.output_tokens for u in used),
        cost_usd=_rounded(run.known_cost),  # None: a model's price is unknown
        generation_seconds=round(sum(r.processing_time for r in responses), 3),
        steps_completed=sum(s.status.value in ("completed", "skipped") for s in run.steps.values()),
        steps_total=len(run.steps),
        responses=len(responses),
        failed_responses=sum(r.status == ResponseStatus.FAILED for r in responses),
        regenerations=sum(s.retry_count for s in run.steps.values()),
        merges=sum(r.kind == "merge" for r in responses),
        branches_created=branches,
    )


def _branch(run: PipelineRun, options: Options, price_of: PriceOf) -> Branch:
    names = run.pipeline.step_names
    point = run.branch_point or names[0]
    own = names[names.index(point) :] if point in names else names
    return Branch(
        run_id=run.pipeline_run_id,
        parent_run_id=run.parent_pipeline_run_id or "",
        branch_point=point,
        branch_seq=run.branch_seq or 0,
        replay=run.replayed,
        status=run.status.value,
        style=Style(id=run.style_primer, system_prompt=run.style_prompt),
        models=sorted({m for name in own for m in run.models_for(name)}),
        created=run.created_at.isoformat(),
        article=run.final_text or "",
        history=[_step(run, n, options, price_of) for n in own] if options.history else None,
    )


def _step(run: PipelineRun, name: str, options: Options, price_of: PriceOf) -> StepRecord:
    step = run.steps[name]
    selected = step.ai_responses[step.user_selection] if step.user_selection is not None else None
    numbers = candidate_numbers(step)
    ran = bool(step.ai_responses or step.prompt)
    system = next((r.system_prompt for r in step.ai_responses if r.kind == "candidate"), None)
    hidden = step.hidden  # blind review, undecided: no model is named yet
    return StepRecord(
        step=name,
        status=step.status.value,
        attempts=step.attempt if step.ai_responses else 0,
        prompt=Prompt(system=run.style_prompt if system is None else system, user=step.prompt)
        if ran
        else None,
        models=[] if hidden else [r.model_name for r in step.ai_responses if r.kind == "candidate"],
        asked=[] if hidden else _asked(step, price_of),
        selection=Selection(
            response_id=selected.response_id,
            model=selected.model_name,
            index=step.user_selection or 0,
            number=numbers.get(selected.response_id),
        )
        if selected
        else None,
        merged=selected is None and step.merged_content is not None,
        decision=_decision(step, numbers),
        decided=decided(step),
        guidance=step.guidance,
        feedback=step.user_feedback,
        started_at=step.started_at,
        completed_at=step.completed_at,
        output=step.output,
        responses=[_candidate(r, numbers, hidden) for r in in_number_order(step, numbers)]
        if options.candidates
        else None,
    )


def _asked(step: StepState, price_of: PriceOf) -> list[ModelAsked]:
    """Every model the step asked, once, with its provider and price (None: unknown)."""
    seen: dict[str, ModelAsked] = {}
    for r in step.ai_responses:
        if r.model_name not in seen:
            seen[r.model_name] = ModelAsked(
                model=r.model_name, provider=r.provider, price=_price(price_of(r.model_name))
            )
    return list(seen.values())


def _price(found: Any) -> Price | None:
    if found is None:
        return None
    return Price(
        input_per_million=found.input,
        output_per_million=found.output,
        source=getattr(found, "source", ""),
    )


def _candidate(r: AIResponse, numbers: dict[str, int], hidden: bool = False) -> Candidate:
    """One response; on a blind step not yet decided, without what would name its model."""
    return Candidate(
        response_id=r.response_id,
        number=numbers.get(r.response_id),
        model="hidden" if hidden else r.model_name,
        provider="" if hidden else r.provider,
        kind=r.kind,
        attempt=r.attempt,
        status=r.status.value,
        error=r.error,
        tokens=None if hidden else r.usage_stats,
        seconds=0.0 if hidden else r.processing_time,
        quality=r.quality,
        quality_score=r.quality_score,
        flags=r.flags,
        instruction=r.instruction,
        replaces=r.replaces,
        text=r.processed_content or r.raw_output,
    )


def _decision(step: StepState, numbers: dict[str, int]) -> Decided | None:
    decision = step.decision
    if decision is None:
        return None
    return Decided(
        how=decision.how,
        summary=provenance(step),
        response_ids=list(decision.response_ids),
        sources=[
            Source(response_id=i, model=_model_of(step, i), number=numbers.get(i))
            for i in decision.response_ids
        ],
        merge_response_id=decision.merge_response_id,
        merged_by=_model_of(step, decision.merge_response_id) if decision.how == "merged" else None,
        instruction=decision.instruction,
        edited=decision.edited,
        blind=decision.blind,
        by=decision.by,
        at=decision.at,
    )


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 6)


# --- provenance in words: the one wording the TUI, `writeit show` and Markdown use -------


def in_number_order(step: StepState, numbers: dict[str, int]) -> list[AIResponse]:
    """Candidates in the order the writer saw them, then the other responses (earlier
    attempts, merges, judges); on an undecided blind step those by their random ids, as
    their stored order would say which model wrote which."""
    shown = sorted(
        (r for r in step.ai_responses if r.response_id in numbers),
        key=lambda r: numbers[r.response_id],
    )
    rest = [r for r in step.ai_responses if r.response_id not in numbers]
    if step.hidden:
        rest.sort(key=lambda r: r.response_id)
    return shown + rest


def candidate_numbers(step: StepState) -> dict[str, int]:
    """Response id -> the number the writer saw it as (1.., shuffled on a blind step)."""
    return {r.response_id: n for n, r in enumerate(step.candidates, 1)}


def _model_of(step: StepState, response_id: str | None) -> str:
    found = [r.model_name for r in step.ai_responses if r.response_id == response_id]
    return found[0] if found else "a model"


def candidate_label(step: StepState, response_id: str) -> str:
    """ "2 scripted-b": the number the writer chose it by, and its model."""
    number = candidate_numbers(step).get(response_id)
    model = _model_of(step, response_id)
    return f"{number} {model}" if number else f"an earlier {model} candidate"


def _sources(step: StepState, ids: list[str]) -> str:
    """ "candidates 1 and 3", "candidate 2", "candidate 1 and an earlier m candidate"."""
    numbers = candidate_numbers(step)
    shown = [str(numbers[i]) for i in ids if i in numbers]
    earlier = [f"an earlier {_model_of(step, i)} candidate" for i in ids if i not in numbers]
    parts = []
    if shown:
        noun = "candidates" if len(shown) > 1 else "candidate"
        parts.append(f"{noun} {_and(shown)}")
    return _and(parts + earlier)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def provenance(step: StepState) -> str:
    """How the step's output came to be: "candidate 2 (scripted-b)", "merged by m from
    candidates 1 and 3, then edited by hand", "written by hand from candidates 1 and 2"
    or "skipped"; "" while nothing is decided."""
    decision = step.decision
    if decision is None:
        return "the merged text" if step.merged_content is not None else ""
    ids = decision.response_ids
    if decision.how == "selected":
        number = candidate_numbers(step).get(ids[0]) if ids else None
        model = _model_of(step, ids[0] if ids else None)
        return f"candidate {number} ({model})" if number else f"an earlier {model} candidate"
    if decision.how == "skipped":
        return "skipped"
    if decision.how == "written":
        return f"written by hand from {_sources(step, ids)}" if ids else "written by hand"
    line = f"merged by {_model_of(step, decision.merge_response_id)}"
    line += f" from {_sources(step, ids)}" if ids else ""
    if decision.instruction:
        line += f' ("{decision.instruction}")'
    return line + (", then edited by hand" if decision.edited else "")


def decided(step: StepState) -> str | None:
    """The decision as a sentence, with who made it: `writeit show` and the appendix."""
    if step.decision is None:
        return None
    how = provenance(step)
    who = "the writer" if step.decision.by == "writer" else step.decision.by
    extra = ", blind" if step.decision.blind else ""
    return f"{how[0].upper()}{how[1:]}; decided by {who}{extra}"


# --- rendering ---------------------------------------------------------------------------


def render(
    run: PipelineRun,
    fmt: str,
    *,
    include_history: bool = True,
    branches: int = 0,
    candidates: bool = True,
    forks: list[PipelineRun] | None = None,
    price_of: PriceOf = _no_prices,
) -> str:
    if fmt not in FORMATS:
        raise WriteItError(f"unknown export format {fmt!r}", hint="use md, yaml or json")
    doc = document(
        run,
        include_history=include_history,
        branches=branches,
        candidates=candidates,
        forks=forks,
        price_of=price_of,
    )
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return _markdown(doc)


def export_run(
    engine: Engine,
    run: PipelineRun,
    fmt: str,
    *,
    history: bool = True,
    candidates: bool = True,
    all_branches: bool = False,
) -> str:
    """The export of `run` as every front end makes it (blocking: call it off the event
    loop): the branch count and, with `all_branches`, every fork below the run, read
    from the store; prices from the writer's preferences."""
    store = engine.store
    forks = [store.load(rid) for rid in _descendants(store, run.pipeline_run_id)]
    return render(
        run,
        fmt,
        include_history=history,
        branches=len(store.children(run.pipeline_run_id)),
        candidates=candidates,
        forks=forks if all_branches else None,
        price_of=prices(engine),
    )


def _descendants(store: Any, run_id: str) -> list[str]:
    """Every fork below `run_id`, parents before children (a stack: no depth limit)."""
    found: list[str] = []
    stack = list(reversed(store.children(run_id)))
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(reversed(store.children(current)))
    return found


def prices(engine: Engine) -> PriceOf:
    """Per-model prices for the export: maintained prices with the writer's overrides."""
    from writeit import pricing

    overrides = engine.preferences.pricing
    return lambda model: pricing.price_of(model, overrides)


def _markdown(doc: dict[str, Any]) -> str:
    front = {**doc["metadata"], "stats": doc["stats"]}
    parts = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    parts.append(doc["article"].rstrip() + "\n")
    history = doc.get("history")
    if history:
        parts.append("\n---\n\n## Appendix: how this article was written\n")
        style = doc["style"]["id"] or "none"
        parts.append(f"Style: {style}. Inputs: {', '.join(doc['inputs']) or 'none'}.\n")
        parts.extend(_trail(history))
    for branch in doc.get("branches") or []:
        what = "Replay" if branch["replay"] else "Branch"
        parts.append(
            f"\n## {what} {branch['run_id'][:8]} of {branch['parent_run_id'][:8]} "
            f"from {branch['branch_point']} ({branch['status']})\n"
        )
        parts.append(
            f"Style: {branch['style']['id'] or 'none'}. Models: {', '.join(branch['models'])}.\n"
        )
        parts.extend(_trail(branch.get("history") or [], outputs=False))
        if branch["article"]:
            parts.append("<details><summary>Its article</summary>\n")
            parts.append(branch["article"].rstrip())
            parts.append("\n</details>\n")
    return "\n".join(parts).rstrip() + "\n"


def _trail(history: list[dict[str, Any]], *, outputs: bool = True) -> list[str]:
    """Per step: a heading, the models asked, how the output was decided, feedback."""
    parts = []
    for step in history:
        parts.append(f"### {step['step']} ({step['status']})\n")
        if step["asked"]:
            parts.append(f"- Models asked: {', '.join(_asked_label(m) for m in step['asked'])}")
        if step["guidance"]:
            parts.append(f"- Guidance: {step['guidance']}")
        if decision := step["decision"]:
            parts.append(f"- {step['step']}: {_who(decision)}")
        if step["feedback"]:
            parts.append(f"- Feedback: {step['feedback']}")
        if flagged := _flag_line(step.get("responses") or []):
            parts.append(f"- Style flags: {flagged}")
        if outputs and step["output"] and step is not history[-1]:
            parts.append("\n<details><summary>Output</summary>\n")
            parts.append(step["output"].rstrip())
            parts.append("\n</details>")
        parts.append("")
    return parts


def _who(decision: dict[str, Any]) -> str:
    """ "merged by m from candidates 1 and 3, then edited by hand; decided by the writer,
    blind, 2026-11-30 12:01 UTC": the trail's line for a decision."""
    who = "the writer" if decision["by"] == "writer" else decision["by"]
    line = f"{decision['summary']}; decided by {who}" + (", blind" if decision["blind"] else "")
    at = decision["at"]
    return line + (f", {at[:16].replace('T', ' ')} UTC" if at else "")


def _asked_label(model: dict[str, Any]) -> str:
    """ "gpt-4o-mini (openai, $0.15/$0.60 per M)" or "… price unknown"."""
    price = model["price"]
    cost = (
        f"${price['input_per_million']:g}/${price['output_per_million']:g} per M tokens"
        if price
        else "price unknown"
    )
    via = f"{model['provider']}, " if model["provider"] else ""
    return f"{model['model']} ({via}{cost})"


def _flag_line(responses: list[dict[str, Any]]) -> str:
    """`model: avoid "delve" ×2, too long…` per flagged candidate, for the appendix."""
    flagged = [
        f"{r['model']}: " + ", ".join(Flag.model_validate(f).label() for f in r["flags"])
        for r in responses
        if r["flags"]
    ]
    return "; ".join(flagged)


def default_path(exports: Path, run: PipelineRun, fmt: str) -> Path:
    stamp = run.created_at.strftime("%Y%m%d-%H%M")
    return exports / f"{run.configuration_id}-{stamp}-{run.pipeline_run_id[:8]}{SUFFIX[fmt]}"


def inside(base: Path, path: Path) -> Path:
    """`path` resolved, refusing anything outside `base` (for the server's exports).

    `save(..., within=base)` checks again while writing, folder by folder: this is the
    early refusal with a clear message, that one closes the race.
    """
    base = base.resolve()
    try:
        resolved = (base / path).resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of symlinks
        raise ExportError(f"cannot resolve {path}: {error}", hint="choose another path") from error
    if not resolved.is_relative_to(base):
        raise OutsideExports(
            f"{path} is outside the exports folder {base}", hint="give a path inside it"
        )
    return resolved


def save(
    text: str, path: Path, *, if_exists: IfExists = "refuse", within: Path | None = None
) -> Saved:
    """Write an export without ever following a planted symlink or losing a file silently.

    The one place that decides what happens to an existing file, for the CLI, the TUI and
    the server: ``refuse`` raises ExportExists, ``overwrite`` replaces it atomically and
    ``rename`` claims ``name-2``, ``name-3``… The text goes to a fresh temporary file
    (O_EXCL, never a name an attacker could have prepared) that is then linked or renamed
    into place, so a reader never sees half a file and two exports never claim one name.
    With ``within`` (the server's exports folder), every folder below it is opened
    without following symlinks, so a folder swapped for a link after the path was
    checked still cannot lead outside. Any OSError becomes an ExportError naming the
    path and the problem.
    """
    try:
        with _folder(path.parent, within) as folder:
            saved = _save_in(folder, text, path, if_exists)
            os.fsync(folder)  # the new name survives a crash too
            return saved
    except OSError as error:
        raise _os_error(path, error) from error


def _save_in(folder: int, text: str, path: Path, if_exists: IfExists) -> Saved:
    _refuse_link(folder, path)
    tmp = _write_temporary(folder, text)
    try:
        if if_exists == "overwrite":
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
            return Saved(path, len(text.encode()))
        for candidate in _candidates(path, rename=if_exists == "rename"):
            if _claim(folder, tmp, candidate.name):
                return Saved(candidate, len(text.encode()))
        raise ExportExists(
            f"{path} already exists",
            hint="choose another name, or overwrite it (--force; overwrite: true in the API)",
        )
    finally:
        _unlink_quietly(tmp, folder)


def next_free(path: Path) -> Path:
    """The name ``rename`` would claim now, for showing before saving (save decides)."""
    return next((c for c in _candidates(path, rename=True) if not os.path.lexists(c)), path)


def _candidates(path: Path, *, rename: bool) -> Iterator[Path]:
    """The path itself, then (when renaming) name-2, name-3… in the same folder."""
    yield path
    if rename:
        for n in range(2, MAX_SUFFIX + 1):
            yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def _claim(folder: int, tmp: str, name: str) -> bool:
    """Give the written temporary file `name` unless it exists: check and claim in one step.

    A hard link fails with EEXIST on any existing entry (a symlink included, which it
    does not follow); where hard links are not supported, an O_EXCL create claims the
    name and the rename fills it.
    """
    try:
        os.link(tmp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    try:
        os.close(os.open(name, _CREATE, 0o600, dir_fd=folder))
    except FileExistsError:
        return False
    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    return True


_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)


def _write_temporary(folder: int, text: str) -> str:
    """A new file of a random name next to the target, mode 0600, written and synced.

    The name is fixed-length (not the target's name plus a suffix), so a target name near
    the 255-byte limit fails on the target, with its own name in the message.
    """
    name = f".writeit-export-{secrets.token_hex(8)}.tmp"
    fd = os.open(name, _CREATE, 0o600, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(text.encode())
            file.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(name, folder)
        raise
    os.close(fd)
    return name


def _refuse_link(folder: int, path: Path) -> None:
    """A symlink at the target would send the export elsewhere, or be replaced by it."""
    try:
        info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ExportError(f"{path} is a symbolic link", hint="give the path of a regular file")
    if stat.S_ISDIR(info.st_mode):
        raise ExportError(f"{path} is a folder", hint="name a file inside it")


@contextmanager
def _folder(parent: Path, within: Path | None) -> Iterator[int]:
    """An open descriptor of the target's folder, created if missing.

    Without `within` the folder is the writer's own choice and may sit behind symlinks.
    With it, `parent` must lie inside `within` and each folder below `within` is opened
    with O_NOFOLLOW, one at a time, so none of them can be a link out of it.
    """
    if within is None:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = _open_below(within, parent)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_below(base: Path, parent: Path) -> int:
    relative = parent.relative_to(base)  # ValueError only on a caller's mistake
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(relative.parts, 1):
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = _open_folder_nofollow(part, fd, base.joinpath(*relative.parts[:depth]))
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_folder_nofollow(name: str, parent: int, shown: Path) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except NotADirectoryError:
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise ExportError(
                f"{shown} is a symbolic link", hint="export into a real folder"
            ) from None
        raise


def _unlink_quietly(name: str, folder: int) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)


_PLAIN = {
    errno.ENAMETOOLONG: "a name in it is longer than 255 bytes",
    errno.ENOTDIR: "a part of it that should be a folder is a file",
    errno.ELOOP: "it goes through a loop of symbolic links",
    errno.EISDIR: "it is a folder",
    errno.EACCES: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
}


def _os_error(path: Path, error: OSError) -> ExportError:
    """The OS's refusal as a writer's error: the path, the problem in words, the errno."""
    name = errno.errorcode.get(error.errno or 0, "OSError")
    problem = _PLAIN.get(error.errno or 0, error.strerror or str(error))
    return ExportError(f"cannot write {path}: {problem} ({name})", hint=_hint(error.errno))


def _hint(number: int | None) -> str:
    if number in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
        return "choose another path"
    return "check the folder and its permissions"
