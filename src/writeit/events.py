"""Event types, their typed payloads, and the fold that turns a run's log into its state.

A run's state is never stored on its own: it is always the fold of its events (a store
snapshot is that fold, saved). The engine builds each event from a payload model below
and applies it to a copy of the run with the same `apply` before it appends, so an
illegal change is refused before anything is written.

Payloads are stored as their JSON (`Event.data`, field names as written since schema
1), read back typed (`Event.payload`): an old log reads with today's models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from writeit.models import (
    AIResponse,
    Decision,
    Flag,
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepState,
    StepStatus,
    StylePrimer,
    TokenUsage,
    WriteItError,
    utcnow,
)


class EventType(StrEnum):
    RUN_CREATED = "run_created"
    RUN_FORKED = "run_forked"
    RUN_STARTED = "run_started"
    RUN_PAUSED = "run_paused"
    RUN_RESUMED = "run_resumed"
    RUN_COMPLETED = "run_completed"
    RUN_ERRORED = "run_errored"
    RUN_DELETED = "run_deleted"
    STEP_STARTED = "step_started"
    STEP_RESET = "step_reset"
    STEP_SKIPPED = "step_skipped"
    STEP_ADVANCED = "step_advanced"
    REWOUND = "rewound"
    RESPONSE_STARTED = "response_started"
    RESPONSE_PROGRESS = "response_progress"
    RESPONSE_COMPLETED = "response_completed"
    RESPONSE_FAILED = "response_failed"
    RESPONSE_INTERRUPTED = "response_interrupted"
    RESPONSE_SELECTED = "response_selected"
    RESPONSES_MERGED = "responses_merged"
    FEEDBACK_GIVEN = "feedback_given"
    RESPONSES_JUDGED = "responses_judged"
    BUDGET_SET = "budget_set"


# --- payloads ------------------------------------------------------------------------


class Payload(BaseModel):
    """What one event says; `type` names the event it is the payload of."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    type: ClassVar[EventType]

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RunCreated(Payload):
    type = EventType.RUN_CREATED
    pipeline: dict[str, Any]
    inputs: dict[str, str] = Field(default_factory=dict)
    style: str | None = None
    style_prompt: str = ""
    primer: dict[str, Any] | None = None
    models: list[str] = Field(default_factory=list)
    step_models: dict[str, list[str]] = Field(default_factory=dict)
    user_id: str = "default"
    blind: bool = False
    budget_usd: float | None = None  # absent in logs before budgets


class RunForked(Payload):
    """A branch. A replay (`Engine.replay`) also records what the branch asks from its
    branch point on: its models (the whole per-step table, so steps before the branch
    point keep theirs) and its style; absent, the branch keeps the parent's."""

    type = EventType.RUN_FORKED
    parent: str
    branch_point: str
    branch_seq: int
    current_step: str | None = None
    replay: bool = False  # made by a replay: the branch point's step is asked again
    models: list[str] | None = None
    step_models: dict[str, list[str]] | None = None
    style: str | None = None
    style_prompt: str | None = None  # present: the style changed (to `style`, or none)
    primer: dict[str, Any] | None = None


class RunStarted(Payload):
    type = EventType.RUN_STARTED


class RunPaused(Payload):
    type = EventType.RUN_PAUSED
    reason: str | None = None  # WriteIt's own pause (a budget reached); None: the writer


class RunResumed(Payload):
    type = EventType.RUN_RESUMED


class RunCompleted(Payload):
    type = EventType.RUN_COMPLETED


class RunErrored(Payload):
    type = EventType.RUN_ERRORED
    error: str | None = None


class RunDeleted(Payload):
    type = EventType.RUN_DELETED


class StepStarted(Payload):
    type = EventType.STEP_STARTED
    step: str
    models: list[str] = Field(default_factory=list)
    prompt: str = ""
    attempt: int = 1
    guidance: str | None = None
    order: list[int] | None = None  # blind review: the shuffle the writer sees


class StepReset(Payload):
    type = EventType.STEP_RESET
    step: str


class Decided(Payload):
    """What every decision records besides its choice: was it blind, and who made it."""

    blind: bool = False
    by: str | None = None  # None: the writer


class StepSkipped(Decided):
    type = EventType.STEP_SKIPPED
    step: str


class StepAdvanced(Payload):
    type = EventType.STEP_ADVANCED
    from_step: str = Field(alias="from")
    to: str


class Rewound(Payload):
    type = EventType.REWOUND
    step: str


class ResponseStarted(Payload):
    type = EventType.RESPONSE_STARTED
    step: str
    response_id: str
    model: str
    provider: str = ""
    pid: int | None = None  # so another process can tell a live stream from an orphan
    pid_started: int | None = None
    kind: Literal["candidate", "merge", "judge"] = "candidate"
    instruction: str | None = None
    replaces: str | None = None


class ResponseProgress(Payload):
    type = EventType.RESPONSE_PROGRESS
    response_id: str
    delta: str


class ResponseCompleted(Payload):
    type = EventType.RESPONSE_COMPLETED
    response_id: str
    delta: str = ""
    usage: dict[str, Any] | None = None
    processing_time: float = 0.0
    provider: str = ""
    estimated_usage: bool = False
    quality: dict[str, float] = Field(default_factory=dict)
    quality_score: float | None = None
    flags: list[Flag] = Field(default_factory=list)  # absent in logs before style flags


class ResponseFailed(Payload):
    type = EventType.RESPONSE_FAILED
    response_id: str
    delta: str = ""
    error: str
    code: str | None = None
    processing_time: float = 0.0
    usage: dict[str, Any] | None = None  # estimated, for text the provider billed


class ResponseInterrupted(Payload):
    type = EventType.RESPONSE_INTERRUPTED
    response_id: str
    reason: str = "interrupted before it finished"
    usage: dict[str, Any] | None = None  # estimated: a stopped call reports none
    processing_time: float = 0.0


class ResponseSelected(Decided):
    type = EventType.RESPONSE_SELECTED
    step: str
    response_id: str
    feedback: str | None = None


class ResponsesMerged(Decided):
    type = EventType.RESPONSES_MERGED
    step: str
    text: str
    response_ids: list[str] = Field(default_factory=list)
    merge_response_id: str | None = None  # the AI merge's own response
    edited_from: str | None = None  # the response the writer's text is an edit of
    instruction: str | None = None


class FeedbackGiven(Payload):
    type = EventType.FEEDBACK_GIVEN
    step: str
    feedback: str


class ResponsesJudged(Payload):
    type = EventType.RESPONSES_JUDGED
    step: str
    scores: dict[str, float]
    judge: str | None = None


class BudgetSet(Payload):
    """The most the run may spend from now on, in USD (None: no limit)."""

    type = EventType.BUDGET_SET
    budget_usd: float | None = None


Payloads = list[Payload]  # what a change is made of, in order

PAYLOADS: dict[EventType, type[Payload]] = {
    cls.type: cls
    for cls in [*Payload.__subclasses__(), *Decided.__subclasses__()]
    if cls is not Decided
}
assert set(PAYLOADS) == set(EventType), "every event type needs a payload model"


# --- events ----------------------------------------------------------------------------


class Event(BaseModel):
    """One immutable fact in a run's history; `seq` counts from 1 along the run's lineage."""

    seq: int
    type: EventType
    run_id: str
    at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, payload: Payload, *, seq: int, run_id: str) -> Event:
        return cls(seq=seq, type=payload.type, run_id=run_id, data=payload.to_data())

    @property
    def payload(self) -> Payload:
        """The data, typed; a field missing or malformed is a damaged log."""
        try:
            return PAYLOADS[self.type].model_validate(self.data)
        except ValueError as error:
            raise CorruptHistory(f"event {self.seq} ({self.type}) is malformed: {error}") from error

    @property
    def step(self) -> str | None:
        """The step the event names, if it names one (indexes file it there)."""
        return self.data.get("step")


class CorruptHistory(WriteItError):
    """An event that cannot apply to the state before it: the log is damaged or forged."""


Handler = Callable[[PipelineRun, Any, Event], None]
_HANDLERS: dict[EventType, Handler] = {}


def _on(kind: EventType) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


def new_run(event: Event) -> PipelineRun:
    created = event.payload
    assert isinstance(created, RunCreated)
    pipeline = PipelineConfiguration.model_validate(created.pipeline)
    return PipelineRun(
        pipeline_run_id=event.run_id,
        configuration_id=pipeline.name,
        pipeline=pipeline,
        created_at=event.at,
        updated_at=event.at,
        current_step=pipeline.step_names[0],
        user_inputs=dict(created.inputs),
        steps={name: StepState(step_name=name) for name in pipeline.step_names},
        style_primer=created.style,
        style_prompt=created.style_prompt,
        primer=created.primer,
        models=list(created.models),
        step_models={k: list(v) for k, v in created.step_models.items()},
        user_id=created.user_id,
        last_seq=event.seq,
        blind=created.blind,
        budget_usd=created.budget_usd,
    )


def apply(run: PipelineRun, event: Event) -> PipelineRun:
    """Apply one event in place; raises InvalidTransition for a change the state machines forbid."""
    if event.seq != run.last_seq + 1:
        raise CorruptHistory(
            f"event {event.seq} ({event.type}) does not follow event {run.last_seq} "
            f"of run {run.pipeline_run_id[:8]}"
        )
    _HANDLERS[event.type](run, event.payload, event)
    run.last_seq = event.seq
    run.updated_at = event.at
    return run


def fold(events: Iterable[Event]) -> PipelineRun:
    iterator = iter(events)
    first = next(iterator, None)
    if first is None or first.type != EventType.RUN_CREATED:
        raise CorruptHistory("a run's history must begin with run_created")
    run = new_run(first)
    for event in iterator:
        apply(run, event)
    return run


# --- run lifecycle -------------------------------------------------------------------


@_on(EventType.RUN_CREATED)
def _created_again(run: PipelineRun, p: RunCreated, event: Event) -> None:
    raise CorruptHistory(f"run {run.pipeline_run_id[:8]} was created twice (event {event.seq})")


@_on(EventType.RUN_FORKED)
def _forked(run: PipelineRun, p: RunForked, event: Event) -> None:
    run.pipeline_run_id = event.run_id
    run.parent_pipeline_run_id = p.parent
    run.branch_point = p.branch_point
    run.branch_seq = p.branch_seq
    run.created_at = event.at
    run.completed_at = None
    run.current_step = p.current_step or run.current_step
    run.replayed = p.replay
    if p.models is not None:
        run.models = list(p.models)
    if p.step_models is not None:
        run.step_models = {k: list(v) for k, v in p.step_models.items()}
    if p.style_prompt is not None:
        run.style_primer = p.style
        run.style_prompt = p.style_prompt
        run.primer = StylePrimer.model_validate(p.primer) if p.primer else None


def _status(new: PipelineStatus) -> Handler:
    def handler(run: PipelineRun, p: Payload, event: Event) -> None:
        run.transition(new)
        if new == PipelineStatus.COMPLETED:
            run.completed_at = event.at
        run.error = p.error if isinstance(p, RunErrored) else None
        run.paused_because = p.reason if isinstance(p, RunPaused) else None

    return handler


for _kind, _status_value in {
    EventType.RUN_STARTED: PipelineStatus.RUNNING,
    EventType.RUN_PAUSED: PipelineStatus.PAUSED,
    EventType.RUN_RESUMED: PipelineStatus.RUNNING,
    EventType.RUN_COMPLETED: PipelineStatus.COMPLETED,
    EventType.RUN_ERRORED: PipelineStatus.ERROR,
}.items():
    _HANDLERS[_kind] = _status(_status_value)


@_on(EventType.RUN_DELETED)
def _deleted(run: PipelineRun, p: RunDeleted, event: Event) -> None:
    """A tombstone: the run leaves listings, its history stays (forks may share it)."""


@_on(EventType.BUDGET_SET)
def _budget_set(run: PipelineRun, p: BudgetSet, event: Event) -> None:
    run.budget_usd = p.budget_usd


# --- steps ---------------------------------------------------------------------------


@_on(EventType.STEP_STARTED)
def _step_started(run: PipelineRun, p: StepStarted, event: Event) -> None:
    step = run.step(p.step)
    step.transition(StepStatus.RUNNING)
    step.started_at = event.at
    step.completed_at = None
    step.retry_count = p.attempt - 1
    step.prompt = p.prompt
    step.guidance = p.guidance
    step.order = list(p.order) if p.order is not None else None
    run.current_step = step.step_name


@_on(EventType.STEP_RESET)
def _step_reset(run: PipelineRun, p: StepReset, event: Event) -> None:
    run.step(p.step).transition(StepStatus.PENDING)


def _decided(p: Decided, event: Event) -> dict[str, Any]:
    return {"blind": p.blind, "by": p.by or "writer", "at": event.at}


@_on(EventType.STEP_SKIPPED)
def _step_skipped(run: PipelineRun, p: StepSkipped, event: Event) -> None:
    step = run.step(p.step)
    step.transition(StepStatus.SKIPPED)
    step.completed_at = event.at
    step.decision = Decision(how="skipped", **_decided(p, event))


@_on(EventType.STEP_ADVANCED)
def _step_advanced(run: PipelineRun, p: StepAdvanced, event: Event) -> None:
    run.step(p.to)
    run.current_step = p.to


@_on(EventType.REWOUND)
def _rewound(run: PipelineRun, p: Rewound, event: Event) -> None:
    run.step(p.step)
    run.current_step = p.step


@_on(EventType.FEEDBACK_GIVEN)
def _feedback(run: PipelineRun, p: FeedbackGiven, event: Event) -> None:
    run.step(p.step).user_feedback = p.feedback or None


@_on(EventType.RESPONSE_SELECTED)
def _selected(run: PipelineRun, p: ResponseSelected, event: Event) -> None:
    step = run.step(p.step)
    try:  # from the run's index: a scan would parse a snapshot's earlier attempts
        found, index = run.position(p.response_id)
    except WriteItError:
        found = None
    if found is not step:
        raise CorruptHistory(f"selected response {p.response_id} is not in {step.step_name}")
    step.select_response(index, p.feedback or "")
    step.completed_at = event.at
    step.decision = Decision(how="selected", response_ids=[p.response_id], **_decided(p, event))


@_on(EventType.RESPONSES_MERGED)
def _merged(run: PipelineRun, p: ResponsesMerged, event: Event) -> None:
    step = run.step(p.step)
    if step.status != StepStatus.COMPLETED:
        step.transition(StepStatus.COMPLETED)
    step.user_selection = None
    step.merged_content = p.text
    step.completed_at = event.at
    by_model = p.merge_response_id or p.edited_from
    step.decision = Decision(
        how="merged" if by_model else "written",
        response_ids=list(p.response_ids),
        merge_response_id=by_model,
        instruction=p.instruction,
        edited=p.edited_from is not None,
        **_decided(p, event),
    )


@_on(EventType.RESPONSES_JUDGED)
def _judged(run: PipelineRun, p: ResponsesJudged, event: Event) -> None:
    """A judge model's scores (0..1) become each candidate's quality_score."""
    run.step(p.step)
    for response_id, value in p.scores.items():
        _, response = run.changing(response_id)
        response.quality = {**response.quality, "judge": value}
        response.quality_score = value


# --- responses -----------------------------------------------------------------------


@_on(EventType.RESPONSE_STARTED)
def _response_started(run: PipelineRun, p: ResponseStarted, event: Event) -> None:
    step = run.step(p.step)
    step.add_response(
        AIResponse(
            response_id=p.response_id,
            model_name=p.model,
            provider=p.provider,
            prompt_used=step.prompt if p.kind == "candidate" else "",
            system_prompt=run.style_prompt,
            created_at=event.at,
            kind=p.kind,
            attempt=step.attempt,
            instruction=p.instruction,
            replaces=p.replaces,
            pid=p.pid,
            pid_started=p.pid_started,
        )
    )
    run.added(step)


def _streaming(run: PipelineRun, response_id: str) -> AIResponse:
    _, response = run.find_response(response_id)
    if response.status != ResponseStatus.STREAMING:
        raise CorruptHistory(f"response {response_id} is already {response.status.value}")
    return run.changing(response_id)[1]


@_on(EventType.RESPONSE_PROGRESS)
def _progress(run: PipelineRun, p: ResponseProgress, event: Event) -> None:
    _streaming(run, p.response_id).raw_output += p.delta


@_on(EventType.RESPONSE_COMPLETED)
def _response_completed(run: PipelineRun, p: ResponseCompleted, event: Event) -> None:
    response = _streaming(run, p.response_id)
    response.raw_output += p.delta
    response.processed_content = response.raw_output.strip()
    response.status = ResponseStatus.COMPLETED
    run.ended(response)
    response.processing_time = p.processing_time
    if p.usage:
        response.usage_stats = TokenUsage.model_validate(p.usage)
    response.quality = dict(p.quality)
    response.quality_score = p.quality_score
    response.flags = [flag.model_copy() for flag in p.flags]
    response.provider = p.provider or response.provider


@_on(EventType.RESPONSE_FAILED)
def _response_failed(run: PipelineRun, p: ResponseFailed, event: Event) -> None:
    response = _streaming(run, p.response_id)
    response.raw_output += p.delta
    response.status = ResponseStatus.FAILED
    response.error = p.error
    run.ended(response)
    response.processing_time = p.processing_time
    if p.usage:
        response.usage_stats = TokenUsage.model_validate(p.usage)


@_on(EventType.RESPONSE_INTERRUPTED)
def _response_interrupted(run: PipelineRun, p: ResponseInterrupted, event: Event) -> None:
    response = _streaming(run, p.response_id)
    response.status = ResponseStatus.INTERRUPTED
    response.error = p.reason
    run.ended(response)
    response.processing_time = p.processing_time or response.processing_time
    if p.usage:
        response.usage_stats = TokenUsage.model_validate(p.usage)


assert set(_HANDLERS) == set(EventType), "every event type needs a handler"
