"""Event types and the fold that turns a run's event log into its state.

A run's state is never stored on its own: it is always `fold(events)`. The engine
applies each new event to its in-memory run with the same `apply` before it appends
the event, so an illegal change is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from writeit.models import (
    AIResponse,
    Decision,
    PipelineConfiguration,
    PipelineRun,
    PipelineStatus,
    ResponseStatus,
    StepState,
    StepStatus,
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


class Event(BaseModel):
    """One immutable fact in a run's history; `seq` counts from 1 along the run's lineage."""

    seq: int
    type: EventType
    run_id: str
    at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)


class CorruptHistory(WriteItError):
    """An event that cannot apply to the state before it: the log is damaged or forged."""


Handler = Callable[[PipelineRun, dict[str, Any], Event], None]
_HANDLERS: dict[EventType, Handler] = {}


def _on(kind: EventType) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


def new_run(event: Event) -> PipelineRun:
    data = event.data
    pipeline = PipelineConfiguration.model_validate(data["pipeline"])
    return PipelineRun(
        pipeline_run_id=event.run_id,
        configuration_id=pipeline.name,
        pipeline=pipeline,
        created_at=event.at,
        updated_at=event.at,
        current_step=pipeline.step_names[0],
        user_inputs=dict(data.get("inputs", {})),
        steps={name: StepState(step_name=name) for name in pipeline.step_names},
        style_primer=data.get("style"),
        style_prompt=data.get("style_prompt", ""),
        primer=data.get("primer"),
        models=list(data.get("models", [])),
        step_models=dict(data.get("step_models", {})),
        user_id=data.get("user_id", "default"),
        last_seq=event.seq,
    )


def apply(run: PipelineRun, event: Event) -> PipelineRun:
    """Apply one event in place; raises InvalidTransition for a change the seed forbids."""
    if event.seq != run.last_seq + 1:
        raise CorruptHistory(
            f"event {event.seq} ({event.type}) does not follow event {run.last_seq} "
            f"of run {run.pipeline_run_id[:8]}"
        )
    _HANDLERS[event.type](run, event.data, event)
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
def _created_again(run: PipelineRun, data: dict, event: Event) -> None:
    raise CorruptHistory(f"run {run.pipeline_run_id[:8]} was created twice (event {event.seq})")


@_on(EventType.RUN_FORKED)
def _forked(run: PipelineRun, data: dict, event: Event) -> None:
    run.pipeline_run_id = event.run_id
    run.parent_pipeline_run_id = data["parent"]
    run.branch_point = data["branch_point"]
    run.branch_seq = data["branch_seq"]
    run.created_at = event.at
    run.completed_at = None
    run.current_step = data.get("current_step", run.current_step)


def _status(new: PipelineStatus) -> Handler:
    def handler(run: PipelineRun, data: dict, event: Event) -> None:
        run.transition(new)
        if new == PipelineStatus.COMPLETED:
            run.completed_at = event.at
        run.error = data.get("error") if new == PipelineStatus.ERROR else None

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
def _deleted(run: PipelineRun, data: dict, event: Event) -> None:
    """A tombstone: the run leaves listings, its history stays (forks may share it)."""


# --- steps ---------------------------------------------------------------------------


@_on(EventType.STEP_STARTED)
def _step_started(run: PipelineRun, data: dict, event: Event) -> None:
    step = run.step(data["step"])
    step.transition(StepStatus.RUNNING)
    step.started_at = event.at
    step.completed_at = None
    step.retry_count = data.get("attempt", 1) - 1
    step.prompt = data.get("prompt", "")
    step.guidance = data.get("guidance")
    run.current_step = step.step_name


@_on(EventType.STEP_RESET)
def _step_reset(run: PipelineRun, data: dict, event: Event) -> None:
    run.step(data["step"]).transition(StepStatus.PENDING)


@_on(EventType.STEP_SKIPPED)
def _step_skipped(run: PipelineRun, data: dict, event: Event) -> None:
    step = run.step(data["step"])
    step.transition(StepStatus.SKIPPED)
    step.completed_at = event.at
    step.decision = Decision(how="skipped")


@_on(EventType.STEP_ADVANCED)
def _step_advanced(run: PipelineRun, data: dict, event: Event) -> None:
    run.step(data["to"])
    run.current_step = data["to"]


@_on(EventType.REWOUND)
def _rewound(run: PipelineRun, data: dict, event: Event) -> None:
    run.step(data["step"])
    run.current_step = data["step"]


@_on(EventType.FEEDBACK_GIVEN)
def _feedback(run: PipelineRun, data: dict, event: Event) -> None:
    run.step(data["step"]).user_feedback = data["feedback"] or None


@_on(EventType.RESPONSE_SELECTED)
def _selected(run: PipelineRun, data: dict, event: Event) -> None:
    step = run.step(data["step"])
    index = next(
        (i for i, r in enumerate(step.ai_responses) if r.response_id == data["response_id"]),
        None,
    )
    if index is None:
        raise CorruptHistory(f"selected response {data['response_id']} is not in {step.step_name}")
    step.select_response(index, data.get("feedback") or "")
    step.completed_at = event.at
    step.decision = Decision(how="selected", response_ids=[data["response_id"]])


@_on(EventType.RESPONSES_MERGED)
def _merged(run: PipelineRun, data: dict, event: Event) -> None:
    step = run.step(data["step"])
    if step.status != StepStatus.COMPLETED:
        step.transition(StepStatus.COMPLETED)
    step.user_selection = None
    step.merged_content = data["text"]
    step.completed_at = event.at
    by_model = data.get("merge_response_id") or data.get("edited_from")
    step.decision = Decision(
        how="merged" if by_model else "written",
        response_ids=list(data.get("response_ids", [])),
        merge_response_id=by_model,
        instruction=data.get("instruction"),
        edited=bool(data.get("edited_from")),
    )


@_on(EventType.RESPONSES_JUDGED)
def _judged(run: PipelineRun, data: dict, event: Event) -> None:
    """A judge model's scores (0..1) become each candidate's quality_score."""
    run.step(data["step"])
    for response_id, value in data["scores"].items():
        _, response = run.changing(response_id)
        response.quality = {**response.quality, "judge": value}
        response.quality_score = value


# --- responses -----------------------------------------------------------------------


@_on(EventType.RESPONSE_STARTED)
def _response_started(run: PipelineRun, data: dict, event: Event) -> None:
    step = run.step(data["step"])
    step.add_response(
        AIResponse(
            response_id=data["response_id"],
            model_name=data["model"],
            provider=data.get("provider", ""),
            prompt_used=step.prompt if data.get("kind", "candidate") == "candidate" else "",
            system_prompt=run.style_prompt,
            created_at=event.at,
            kind=data.get("kind", "candidate"),
            attempt=step.attempt,
            instruction=data.get("instruction"),
            replaces=data.get("replaces"),
            pid=data.get("pid"),
            pid_started=data.get("pid_started"),
        )
    )
    run.added(step)


def _streaming(run: PipelineRun, response_id: str) -> AIResponse:
    _, response = run.find_response(response_id)
    if response.status != ResponseStatus.STREAMING:
        raise CorruptHistory(f"response {response_id} is already {response.status.value}")
    return run.changing(response_id)[1]


@_on(EventType.RESPONSE_PROGRESS)
def _progress(run: PipelineRun, data: dict, event: Event) -> None:
    _streaming(run, data["response_id"]).raw_output += data["delta"]


@_on(EventType.RESPONSE_COMPLETED)
def _response_completed(run: PipelineRun, data: dict, event: Event) -> None:
    response = _streaming(run, data["response_id"])
    response.raw_output += data.get("delta", "")
    response.processed_content = response.raw_output.strip()
    response.status = ResponseStatus.COMPLETED
    run.ended(response)
    response.processing_time = data.get("processing_time", 0.0)
    if data.get("usage"):
        response.usage_stats = TokenUsage.model_validate(data["usage"])
    response.quality = data.get("quality", {})
    response.quality_score = data.get("quality_score")
    response.provider = data.get("provider") or response.provider


@_on(EventType.RESPONSE_FAILED)
def _response_failed(run: PipelineRun, data: dict, event: Event) -> None:
    response = _streaming(run, data["response_id"])
    response.raw_output += data.get("delta", "")
    response.status = ResponseStatus.FAILED
    response.error = data["error"]
    run.ended(response)
    response.processing_time = data.get("processing_time", 0.0)


@_on(EventType.RESPONSE_INTERRUPTED)
def _response_interrupted(run: PipelineRun, data: dict, event: Event) -> None:
    response = _streaming(run, data["response_id"])
    response.status = ResponseStatus.INTERRUPTED
    response.error = data.get("reason", "interrupted before it finished")
    run.ended(response)


assert set(_HANDLERS) == set(EventType), "every event type needs a handler"
