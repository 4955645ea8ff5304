"""WriteIt's data model (docs/data-model.md) as Pydantic v2 entities, state machines enforced.

Every entity round-trips through JSON (`model_dump_json` / `model_validate_json`),
which is how runs travel through the event log, the server and exports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from writeit.errors import InvalidTransition, WriteItError


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid4())


class PipelineStatus(StrEnum):
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"


PIPELINE_TRANSITIONS: dict[PipelineStatus, frozenset[PipelineStatus]] = {
    PipelineStatus.INITIALIZING: frozenset({PipelineStatus.RUNNING, PipelineStatus.ERROR}),
    PipelineStatus.RUNNING: frozenset(
        {PipelineStatus.PAUSED, PipelineStatus.COMPLETED, PipelineStatus.ERROR}
    ),
    PipelineStatus.PAUSED: frozenset({PipelineStatus.RUNNING, PipelineStatus.ERROR}),
    PipelineStatus.COMPLETED: frozenset(),
    PipelineStatus.ERROR: frozenset({PipelineStatus.RUNNING}),
}

STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED}),
    StepStatus.RUNNING: frozenset({StepStatus.COMPLETED, StepStatus.PENDING}),
    StepStatus.COMPLETED: frozenset({StepStatus.RUNNING}),
    StepStatus.SKIPPED: frozenset({StepStatus.RUNNING}),
}


def validate_pipeline_transition(current: PipelineStatus, new: PipelineStatus) -> bool:
    return new in PIPELINE_TRANSITIONS[current]


def validate_step_transition(current: StepStatus, new: StepStatus) -> bool:
    return new in STEP_TRANSITIONS[current]


def _transition_error(what: str, current: StrEnum, new: StrEnum, allowed: frozenset) -> str:
    options = ", ".join(sorted(s.value for s in allowed)) or "nothing (terminal)"
    return (
        f"{what} cannot go from {current.value} to {new.value}; "
        f"from {current.value} it may go to {options}"
    )


# --- pipelines -------------------------------------------------------------------------


class InputSpec(BaseModel):
    """One thing the writer provides before a run starts (source material, audience...)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    label: str = ""
    type: Literal["text", "choice"] = "text"
    default: str | None = None
    required: bool = False
    help: str = ""
    options: list[str] = Field(default_factory=list)
    multiline: bool | None = None
    max_length: int = Field(default=200_000, gt=0)

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def is_multiline(self) -> bool:
        if self.multiline is not None:
            return self.multiline
        return self.type == "text" and self.default is None and self.required


class StepSpec(BaseModel):
    """One step of a pipeline: a prompt template asked of one or more models."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = ""
    template: str
    models: list[str] | None = None
    responses: int = Field(default=1, ge=1, le=6)
    options: dict[str, Any] = Field(default_factory=dict)
    skippable: bool = False


class PipelineConfiguration(BaseModel):
    """An immutable pipeline template; a snapshot of it travels with every run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    created: datetime = Field(default_factory=utcnow)
    defaults: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputSpec]
    steps: list[StepSpec]

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def step(self, name: str) -> StepSpec:
        for step in self.steps:
            if step.name == name:
                return step
        raise WriteItError(
            f"pipeline {self.name!r} has no step {name!r}",
            hint=f"steps are: {', '.join(self.step_names)}",
        )

    def input(self, name: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.name == name), None)

    def models_for(self, step: StepSpec) -> list[str]:
        """The models a step asks: its own list, else the pipeline defaults, one per response."""
        models = step.models or list(self.defaults.get("models") or [])
        return [m for m in models for _ in range(step.responses)]

    def options_for(self, step: StepSpec) -> dict[str, Any]:
        defaults = {k: v for k, v in self.defaults.items() if k != "models"}
        return {**defaults, **step.options}

    def next_step(self, name: str) -> str | None:
        names = self.step_names
        index = names.index(name)
        return names[index + 1] if index + 1 < len(names) else None

    def previous_step(self, name: str) -> str | None:
        names = self.step_names
        index = names.index(name)
        return names[index - 1] if index > 0 else None


# --- responses -------------------------------------------------------------------------


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    estimated: bool = False  # counted by WriteIt (the call stopped, or no usage came back)


class ResponseStatus(StrEnum):
    """Where one model's answer stands; what lets a run survive crashes and faults."""

    STREAMING = "streaming"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Flag(BaseModel):
    """A style flag on a finished response: informs the writer's choice, never blocks it.

    `kind` is "avoid" (an avoid-list term of the style used `count` times, first uses
    at character offsets `positions`), "reading_level" (Flesch reading ease outside the
    style's range) or "length" (words far from the step's target)."""

    kind: Literal["avoid", "reading_level", "length"]
    detail: str
    count: int = 0
    positions: list[int] = Field(default_factory=list)

    def label(self) -> str:
        """One short human phrase, e.g. `avoid "delve" ×2`."""
        if self.kind == "avoid":
            return f'avoid "{self.detail}" ×{self.count}'
        return self.detail


class AIResponse(BaseModel):
    response_id: str = Field(default_factory=new_id)
    model_name: str = ""
    provider: str = ""
    prompt_used: str = ""
    system_prompt: str = ""
    raw_output: str = ""
    processed_content: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    usage_stats: TokenUsage | None = None
    processing_time: float = 0.0
    quality_score: float | None = None
    quality: dict[str, float] = Field(default_factory=dict)
    flags: list[Flag] = Field(default_factory=list)
    status: ResponseStatus = ResponseStatus.STREAMING
    error: str | None = None
    kind: Literal["candidate", "merge", "judge"] = "candidate"
    attempt: int = 1
    instruction: str | None = None
    replaces: str | None = None  # the failed or interrupted candidate asked again
    pid: int | None = None  # the WriteIt process streaming it, while it streams
    pid_started: int | None = None

    @property
    def cost(self) -> float:
        return (self.usage_stats.cost_usd or 0.0) if self.usage_stats else 0.0

    @property
    def tokens(self) -> int:
        return self.usage_stats.total_tokens if self.usage_stats else 0

    @property
    def stopped_by_budget(self) -> bool:
        """Cut where the run's budget ran out: its text is whole up to there, and paid."""
        return self.status == ResponseStatus.INTERRUPTED and (self.error or "").startswith(
            "budget:"
        )

    @property
    def selectable(self) -> bool:
        """A finished answer, or one the budget stopped (the writer may take it as is)."""
        return self.status == ResponseStatus.COMPLETED or self.stopped_by_budget

    @property
    def text(self) -> str:
        """What a choice of it gives the next steps."""
        return self.processed_content or self.raw_output.strip()


class Unread:
    """A step's earlier responses as a snapshot holds them, parsed when first read:
    their ids (for the run's response index) and the latest attempt among them (so the
    candidates of a later attempt are found without parsing them). Shared by the copies
    of a run (`PipelineRun.writable`), so a snapshot is parsed once however many read it."""

    __slots__ = ("_parse", "_parsed", "ids", "last_attempt")

    def __init__(
        self, ids: list[str], last_attempt: int, parse: Callable[[], list[AIResponse]]
    ) -> None:
        self.ids, self.last_attempt = ids, last_attempt
        self._parse: Callable[[], list[AIResponse]] | None = parse
        self._parsed: list[AIResponse] | None = None

    def responses(self) -> list[AIResponse]:
        if self._parsed is None:
            assert self._parse is not None
            self._parsed, self._parse = self._parse(), None
            if len(self._parsed) != len(self.ids):
                raise WriteItError("a snapshot's responses do not match their index")
        return self._parsed


class LazyResponses(list):  # type: ignore[type-arg]
    """`StepState.ai_responses` as read from a snapshot: a list whose first items (a
    step's earlier attempts, `Unread`) are parsed on the first read that reaches them.
    Opening a run with a thousand regenerations then costs what its latest attempt
    does. Until then those items are None in the list's own storage; every list method
    that could see them parses first, and copies stay lazy."""

    __slots__ = ("_unread",)

    def __init__(self, unread: Unread | None = None, loaded: Iterable[AIResponse] = ()) -> None:
        unparsed = itertools.repeat(None, len(unread.ids) if unread else 0)
        super().__init__(itertools.chain(unparsed, loaded))
        self._unread = unread

    @property
    def pending(self) -> int:
        """How many leading items are still unparsed."""
        return len(self._unread.ids) if self._unread is not None else 0

    def _load(self) -> None:
        unread = self._unread
        if unread is not None:
            list.__setitem__(self, slice(0, len(unread.ids)), unread.responses())
            self._unread = None

    def after(self, attempt: int) -> list[AIResponse]:
        """The responses, less the unparsed ones when all are of attempts before
        `attempt` (what `candidates` reads)."""
        unread = self._unread
        if unread is not None and unread.last_attempt < attempt:
            return list.__getitem__(self, slice(len(unread.ids), None))
        return list(self)

    def ids(self) -> Iterator[tuple[str, bool]]:
        """Each response's id and whether it streams, unparsed ones included (never)."""
        unread = self._unread
        if unread is not None:
            yield from ((rid, False) for rid in unread.ids)
        for response in list.__getitem__(self, slice(self.pending, None)):
            yield response.response_id, response.status == ResponseStatus.STREAMING

    def __getitem__(self, index: Any) -> Any:
        pending = self.pending
        if pending:
            if isinstance(index, int):
                if not (pending <= index or -len(self) + pending <= index < 0):
                    self._load()
            elif isinstance(index, slice):
                start = index.indices(len(self))[0]
                if start < pending or (index.step or 1) < 0:
                    self._load()
                elif index.step in (None, 1):
                    return list.__getitem__(self, index)
            else:
                self._load()
        return list.__getitem__(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, int) and self.pending <= index:  # the fold's copy-on-change
            list.__setitem__(self, index, value)
            return
        self._load()
        list.__setitem__(self, index, value)

    def clear(self) -> None:
        list.clear(self)
        self._unread = None

    def copy(self) -> LazyResponses:  # type: ignore[override]
        """A copy that is as lazy as this list (sharing what it parses)."""
        copied = LazyResponses()
        list.extend(copied, list.__iter__(self))
        copied._unread = self._unread
        return copied

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy, pickle: a plain list
        return list, (list(self),)

    def __repr__(self) -> str:
        self._load()
        return list.__repr__(self)


def _loading(name: str) -> Callable[..., Any]:
    method = getattr(list, name)

    def loading(self: LazyResponses, *args: Any, **kwargs: Any) -> Any:
        self._load()
        for arg in args:  # another lazy list read by list's own code: parsed first
            if isinstance(arg, LazyResponses):
                arg._load()
        return method(self, *args, **kwargs)

    loading.__name__ = name
    return loading


for _name in (
    "__iter__", "__reversed__", "__contains__", "__delitem__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__add__", "__mul__", "__rmul__", "__imul__",
    "index", "count", "insert", "pop", "remove", "sort", "reverse",
):  # fmt: skip
    setattr(LazyResponses, _name, _loading(_name))


# --- steps and runs --------------------------------------------------------------------


class Decision(BaseModel):
    """How a step's output was decided: the provenance exports and `writeit show` give.

    `selected` one candidate; `merged` by a model (`merge_response_id`), `edited` when
    the writer then changed its text; `written` by hand from `response_ids`; `skipped`."""

    how: Literal["selected", "merged", "written", "skipped"]
    response_ids: list[str] = Field(default_factory=list)
    merge_response_id: str | None = None
    instruction: str | None = None
    edited: bool = False
    blind: bool = False  # decided while the candidates' models were hidden
    by: str = "writer"  # or the autopilot's policy, e.g. "autopilot:first"
    at: datetime | None = None


class StepState(BaseModel):
    step_name: str
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    ai_responses: list[AIResponse] = Field(default_factory=list)
    user_selection: int | None = None
    user_feedback: str | None = None
    merged_content: str | None = None
    retry_count: int = 0
    prompt: str = ""
    guidance: str | None = None  # the writer's instruction for this attempt (G)
    decision: Decision | None = None
    order: list[int] | None = None  # blind review: "Candidate k" is candidates[order[k-1]]

    @field_serializer("ai_responses", mode="wrap")
    def _dump_responses(self, value: list[AIResponse], handler: SerializerFunctionWrapHandler):
        """pydantic reads a list's storage directly: a lazy one is parsed first. (No
        return annotation: with one, pydantic would document the field by it.)"""
        return handler(list(value) if isinstance(value, LazyResponses) else value)

    def transition(self, new: StepStatus) -> None:
        if not validate_step_transition(self.status, new):
            raise InvalidTransition(
                _transition_error(
                    f"step {self.step_name!r}", self.status, new, STEP_TRANSITIONS[self.status]
                )
            )
        self.status = new

    def add_response(self, response: AIResponse) -> None:
        self.ai_responses.append(response)

    def response(self, response_id: str) -> AIResponse:
        for response in self.ai_responses:
            if response.response_id == response_id:
                return response
        raise WriteItError(f"step {self.step_name!r} has no response {response_id!r}")

    @property
    def attempt(self) -> int:
        return self.retry_count + 1

    @property
    def candidates(self) -> list[AIResponse]:
        """The latest attempt's candidates, the ones a writer chooses between, numbered in
        this order everywhere. A candidate asked again (retry, resume) takes the place of
        the one it replaces, which stays in `ai_responses`. On a blind step they come in
        the step's shuffled `order` (one a retry adds beside a finished one comes last)."""
        responses = self.ai_responses
        if isinstance(responses, LazyResponses):  # earlier attempts stay unparsed
            responses = responses.after(self.attempt)
        latest = [r for r in responses if r.kind == "candidate" and r.attempt == self.attempt]
        ids = {r.response_id for r in latest}
        newer = {r.replaces: r for r in latest if r.replaces in ids}
        shown = []
        for response in latest:
            if response.replaces in ids:
                continue  # shown in the place of the one it replaces
            while response.response_id in newer:
                response = newer[response.response_id]
            shown.append(response)
        if self.order is None:
            return shown
        first = [shown[i] for i in self.order if i < len(shown)]
        return first + [c for i, c in enumerate(shown) if i not in self.order]

    def author(self, response: AIResponse) -> str:
        """Who wrote a candidate, as the writer may see it: on a blind step, until the
        choice, nobody (the model is revealed with the decision)."""
        return "model hidden" if self.hidden else response.model_name

    @property
    def hidden(self) -> bool:
        """Blind review: the models stay hidden until the writer decides this attempt."""
        return self.order is not None and self.status == StepStatus.RUNNING

    def earlier_candidate(self, response: AIResponse) -> AIResponse | None:
        """The same model's finished candidate of the latest attempt before `response`'s:
        what a regeneration changed, when the step has no other candidate to compare."""
        earlier = [
            r
            for r in self.ai_responses
            if r.kind == "candidate"
            and r.model_name == response.model_name
            and r.attempt < response.attempt
            and r.status == ResponseStatus.COMPLETED
        ]
        return max(earlier, key=lambda r: r.attempt, default=None)

    def select_response(self, index: int, feedback: str = "") -> str:
        """Select a response and mark the step complete."""
        if not 0 <= index < len(self.ai_responses):
            raise WriteItError(
                f"response index {index} is out of range for step {self.step_name!r}",
                hint=f"choose 0..{len(self.ai_responses) - 1}",
            )
        chosen = self.ai_responses[index]
        if not chosen.selectable:
            raise WriteItError(
                f"response {index} of step {self.step_name!r} is {chosen.status.value}",
                hint="select a completed response, or retry this one",
            )
        if self.status != StepStatus.COMPLETED:
            self.transition(StepStatus.COMPLETED)
        self.user_selection = index
        if feedback:
            self.user_feedback = feedback
        self.completed_at = utcnow()
        self.merged_content = chosen.text
        return self.merged_content

    def get_selected_content(self) -> str | None:
        if self.user_selection is not None:
            return self.ai_responses[self.user_selection].text
        return self.merged_content

    @property
    def output(self) -> str | None:
        """What later steps receive as `<step>_output`: the chosen or merged text."""
        return self.merged_content if self.merged_content is not None else None


# Blind review: what would say which model wrote a candidate before the writer decides.
BLIND_FIELDS = {"model_name", "provider", "usage_stats", "processing_time", "pid", "pid_started"}


def blind_exclude(run: PipelineRun) -> dict[str, Any] | None:
    """`model_dump(exclude=...)` for a run's blind steps still undecided (None if none)."""
    steps = {
        name: {"ai_responses": {"__all__": BLIND_FIELDS}}
        for name, step in run.steps.items()
        if step.hidden
    }
    return {"steps": steps} if steps else None


def blind_view(run: PipelineRun) -> PipelineRun:
    """The run as a blind reader may see it: an undecided blind step lists its candidates
    in the order shown (not the models' order, which would say who wrote which), earlier
    responses after them in an order of their random ids, and no shuffle. Dump it with
    `blind_exclude(run)` (of the run itself) to leave the models out too."""
    hidden = [name for name, step in run.steps.items() if step.hidden]
    if not hidden:
        return run
    steps = dict(run.steps)
    for name in hidden:
        step = run.steps[name]
        shown = step.candidates
        ids = {r.response_id for r in shown}
        rest = sorted(
            (r for r in step.ai_responses if r.response_id not in ids), key=lambda r: r.response_id
        )
        steps[name] = step.model_copy(update={"ai_responses": shown + rest, "order": None})
    return run.model_copy(update={"steps": steps})


class PipelineRun(BaseModel):
    pipeline_run_id: str = Field(default_factory=new_id)
    configuration_id: str
    pipeline: PipelineConfiguration
    parent_pipeline_run_id: str | None = None
    branch_point: str | None = None
    branch_seq: int | None = None
    replayed: bool = False  # a branch made by a replay (its models or style may differ)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    current_step: str
    status: PipelineStatus = PipelineStatus.INITIALIZING
    user_inputs: dict[str, str] = Field(default_factory=dict)
    steps: dict[str, StepState] = Field(default_factory=dict)
    style_primer: str | None = None
    style_prompt: str = ""
    primer: StylePrimer | None = None
    models: list[str] = Field(default_factory=list)
    step_models: dict[str, list[str]] = Field(default_factory=dict)
    user_id: str = "default"
    error: str | None = None
    last_seq: int = 0
    blind: bool = False  # blind review: each step's candidates shuffled, models hidden
    budget_usd: float | None = None  # the most the run may spend (None: no limit)
    paused_because: str | None = None  # why WriteIt paused it (a budget); None: the writer
    # Folded alongside the state so a lookup does not scan every response: where each
    # response is (step, position) and which are streaming. Rebuilt when missing.
    _where: dict[str, tuple[str, int]] | None = PrivateAttr(default=None)
    _streaming: set[str] | None = PrivateAttr(default=None)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy whose response index is its own (pydantic shares private values)."""
        copied = super().model_copy(update=update, deep=deep)
        if not deep:
            copied._where = None if self._where is None else dict(self._where)
            copied._streaming = None if self._streaming is None else set(self._streaming)
        return copied

    def __eq__(self, other: object) -> bool:
        """Equal states, whatever the lookup caches hold."""
        if not isinstance(other, PipelineRun):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def _indexes(self) -> tuple[dict[str, tuple[str, int]], set[str]]:
        # Read through the private dict: pydantic's attribute hook costs microseconds a
        # call, and the fold asks for the index at every response event.
        private = self.__pydantic_private__
        where, streaming = private["_where"], private["_streaming"]
        if where is None or streaming is None:
            where, streaming = {}, set()
            for name, step in self.steps.items():
                responses = step.ai_responses
                ids = (
                    responses.ids()
                    if isinstance(responses, LazyResponses)
                    else ((r.response_id, r.status == ResponseStatus.STREAMING) for r in responses)
                )
                for position, (response_id, streams) in enumerate(ids):
                    where[response_id] = (name, position)
                    if streams:
                        streaming.add(response_id)
            private["_where"], private["_streaming"] = where, streaming
        return where, streaming

    def added(self, step: StepState) -> None:
        """Index the response just appended to `step` (the fold calls this)."""
        where, streaming = self._indexes()
        response = step.ai_responses[-1]
        where[response.response_id] = (step.step_name, len(step.ai_responses) - 1)
        if response.status == ResponseStatus.STREAMING:
            streaming.add(response.response_id)

    def ended(self, response: AIResponse) -> None:
        """A response stopped streaming (the fold, or a reader's view of an orphan)."""
        self._indexes()[1].discard(response.response_id)

    def changing(self, response_id: str) -> tuple[StepState, AIResponse]:
        """The response, copied into place first: copies of a run share response objects
        (see `writable`), so one is copied only when an event changes it."""
        step, response = self.find_response(response_id)
        position = self._indexes()[0][response_id][1]
        response = response.model_copy()
        step.ai_responses[position] = response
        return step, response

    def writable(self) -> PipelineRun:
        """A copy for events to change, sharing every response and text with this run (a
        response is copied when an event changes it): microseconds whatever the history,
        where a deep copy of a run with long answers costs milliseconds."""
        steps = {
            name: step.model_copy(update={"ai_responses": step.ai_responses.copy()})
            for name, step in self.steps.items()
        }
        return self.model_copy(update={"steps": steps})

    @property
    def streaming_ids(self) -> list[str]:
        """Responses streaming in the log, in no particular order."""
        return list(self._indexes()[1])

    def can_transition_to(self, new: PipelineStatus) -> bool:
        return validate_pipeline_transition(self.status, new)

    def transition(self, new: PipelineStatus) -> None:
        if not self.can_transition_to(new):
            raise InvalidTransition(
                _transition_error(
                    f"run {self.pipeline_run_id[:8]}",
                    self.status,
                    new,
                    PIPELINE_TRANSITIONS[self.status],
                )
            )
        self.status = new

    def advance_step(self) -> str:
        """The step after the current one, from the pipeline's own order."""
        following = self.pipeline.next_step(self.current_step)
        if following is None:
            raise WriteItError("already at the final step")
        return following

    def step(self, name: str) -> StepState:
        self.pipeline.step(name)  # raises a clear error for an unknown step
        return self.steps[name]

    def models_for(self, step: str) -> list[str]:
        """The run's --model list, else its per-step choice, else the pipeline's."""
        return list(
            self.models
            or self.step_models.get(step)
            or self.pipeline.models_for(self.pipeline.step(step))
        )

    @property
    def current(self) -> StepState:
        return self.steps[self.current_step]

    @property
    def step_index(self) -> int:
        return self.pipeline.step_names.index(self.current_step)

    @property
    def final_text(self) -> str | None:
        """The article: the output of the last step that has one."""
        for name in reversed(self.pipeline.step_names):
            output = self.steps[name].output
            if output is not None:
                return output
        return None

    @property
    def total_tokens(self) -> int:
        return sum(r.tokens for s in self.steps.values() for r in s.ai_responses)

    @property
    def total_cost(self) -> float:
        return sum(r.cost for s in self.steps.values() for r in s.ai_responses)

    @property
    def known_cost(self) -> float | None:
        """The run's cost, or None when a response was made by a model with no known
        price (a total that leaves it out would read as the whole)."""
        responses = [r for s in self.steps.values() for r in s.ai_responses if r.usage_stats]
        if any(r.usage_stats.cost_usd is None for r in responses):
            return None
        return self.total_cost

    def position(self, response_id: str) -> tuple[StepState, int]:
        """The response's step and its index there, from the index (no scan)."""
        step, _ = self.find_response(response_id)
        return step, self._indexes()[0][response_id][1]

    def find_response(self, response_id: str) -> tuple[StepState, AIResponse]:
        where, _ = self._indexes()
        if response_id in where:
            name, position = where[response_id]
            responses = self.steps[name].ai_responses
            if position < len(responses) and responses[position].response_id == response_id:
                return self.steps[name], responses[position]
            self.__pydantic_private__["_where"] = None  # out of date: index again
            return self.find_response(response_id)
        raise WriteItError(f"run {self.pipeline_run_id[:8]} has no response {response_id!r}")


# --- styles, preferences, sessions -----------------------------------------------------


class ReadingLevel(BaseModel):
    """The style's target band in Flesch reading ease (0 hard .. 100 easy)."""

    model_config = ConfigDict(extra="forbid")

    min: float = Field(default=0.0, ge=0, le=100)
    max: float = Field(default=100.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ReadingLevel:
        if self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class StylePrimer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primer_id: str
    name: str
    description: str = ""
    content: str = ""
    voice_attributes: dict[str, str] = Field(default_factory=dict)
    example_openings: list[str] = Field(default_factory=list)
    guidelines: dict[str, list[str]] = Field(default_factory=dict)
    reading_level: ReadingLevel | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_used: datetime = Field(default_factory=utcnow)

    def format_for_prompt(self) -> str:
        formatted = f"WRITING STYLE GUIDE: {self.name}\n\n"
        formatted += f"{self.content}\n\n"
        for attr, value in self.voice_attributes.items():
            formatted += f"{attr.title()}: {value}\n"
        if self.example_openings:
            formatted += "\nExample openings:\n"
            for opening in self.example_openings[:2]:
                formatted += f"- {opening}\n"
        if "avoid" in self.guidelines:
            formatted += f"\nAvoid: {', '.join(self.guidelines['avoid'])}\n"
        if "prefer" in self.guidelines:
            formatted += f"Prefer: {', '.join(self.guidelines['prefer'])}\n"
        return formatted


# Keys a terminal cannot tell from others: a shortcut on them would never fire.
TERMINAL_ALIASES = {"ctrl+m": "Enter", "ctrl+i": "Tab", "ctrl+j": "Enter", "ctrl+h": "Backspace"}


class UserPreferences(BaseModel):
    """Saved in WRITEIT_HOME/config.yaml; `writeit config set` validates through this model."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    default_models: dict[str, str] = Field(
        default_factory=lambda: {
            "angles": "gpt-4o-mini",
            "outline": "gpt-4o",
            "draft": "claude-sonnet-4",
            "polish": "gpt-4o-mini",
        }
    )
    style_primer: str = "tech-journalist"
    auto_save_enabled: bool = True
    streaming_buffer_size: int = Field(default=10, ge=1, le=10_000)
    keyboard_shortcuts: dict[str, str] = Field(default_factory=dict)
    theme: str = "default"
    max_concurrent_pipelines: int = Field(default=3, ge=1, le=64)
    export_format: Literal["md", "yaml", "json"] = "yaml"
    # what an export includes besides the article (TUI dialog's ticks; set: always these)
    export_history: bool = True
    export_candidates: bool = True
    export_all_branches: bool = False
    workspace: str = "default"
    # USD per million tokens, per model: {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}
    pricing: dict[str, dict[str, float]] = Field(default_factory=dict)
    # config.yaml without it predates per-million prices: read as per 1K once, converted
    pricing_unit: Literal["per_million"] = "per_million"
    default_budget_usd: float | None = Field(default=None, gt=0)  # runs' budget unless given
    request_timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    allowed_hosts: list[str] = Field(default_factory=list)
    blind_review: bool = False  # hide models and shuffle candidates until each choice
    log_to_llm: bool = True  # record every model call in llm's logs.db (`llm logs`)

    @field_validator("keyboard_shortcuts")
    @classmethod
    def _single_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for action, key in value.items():
            if not key or " " in key:
                raise ValueError(f"shortcut for {action!r} must be one key name, got {key!r}")
            if key.lower() in TERMINAL_ALIASES:
                raise ValueError(
                    f"terminals send {key} as {TERMINAL_ALIASES[key.lower()]}: "
                    f"choose another key for {action!r}"
                )
        return value


class UserSession(BaseModel):
    """One front end's session on a workspace (docs/data-model.md): what the writer was working
    on, so the next start reopens it. Stored as session:{id}, active_sessions:{user}."""

    session_id: str = Field(default_factory=new_id)
    user_id: str = "default"
    active_pipeline_run_id: str | None = None
    current_step: str | None = None
    active_runs: list[str] = Field(default_factory=list)  # most recent first
    front_end: str = ""
    workspace_path: Path = Field(default_factory=lambda: Path.home() / "writeIt")
    preferences: UserPreferences = Field(default_factory=UserPreferences)
    created_at: datetime = Field(default_factory=utcnow)
    last_activity: datetime = Field(default_factory=utcnow)
    websocket_connection_id: str | None = None


PipelineRun.model_rebuild()
