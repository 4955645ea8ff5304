"""The REST API under /api: thin routes over the engine.

Routes resolve the run, check what only the request can say (is this the current step,
does that response exist) and call one engine method; the engine decides the rest and
its refusals become 4xx through the error handlers. Actions that may branch answer with
the run the engine returned, which is a new run id when the change branched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import asdict
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Security, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer

from writeit import config, export, providers, stats
from writeit.errors import UnknownResponse
from writeit.models import PipelineConfiguration, PipelineRun, PipelineStatus
from writeit.providers import ProviderError
from writeit.server import bodies
from writeit.server.errors import (
    ERROR_RESPONSES,
    ApiError,
    InvalidState,
    NotFound,
    Unprocessable,
    message_of,
    plain_errors_as,
)
from writeit.server.state import ServerState, request_state, run_json, run_response

if TYPE_CHECKING:
    from writeit.engine import Engine

bearer = HTTPBearer(
    auto_error=False,
    description="The workspace's token: `writeit serve --show-token`. "
    "Enforced for every /api route by the server's guard.",
)
router = APIRouter(
    prefix="/api",
    # Documents the scheme in the OpenAPI schema; the Guard middleware enforces it.
    dependencies=[Security(bearer)],
    responses=ERROR_RESPONSES,
)

State = Annotated[ServerState, Depends(request_state)]
RunId = Annotated[
    str,
    Path(
        pattern=bodies.ID_PATTERN,
        description="A run id, or an unambiguous prefix of at least 4 characters.",
    ),
]
StepPath = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
NamePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
ResponsePath = Annotated[str, Path(pattern=bodies.ID_PATTERN)]
Json = dict[str, Any]
STARTED = {202: {"description": "Models are generating: watch /api/runs/{id}/stream"}}


# --- catalogue ---------------------------------------------------------------------------


@router.get("/pipelines", summary="Pipelines: built-in, the writer's and the workspace's")
async def list_pipelines(state: State) -> Json:
    entries = await asyncio.to_thread(config.list_pipelines, state.engine.pipeline_dirs())
    return {
        "pipelines": [
            {
                "name": entry.name,
                "builtin": entry.builtin,
                "valid": entry.item is not None,
                "description": entry.item.description if entry.item else "",
                "steps": entry.item.step_names if entry.item else [],
                "inputs": [i.model_dump(mode="json") for i in entry.item.inputs]
                if entry.item
                else [],
                "problems": [str(p) for p in entry.problems],
            }
            for entry in entries
        ]
    }


@router.get("/pipelines/{name}", summary="One pipeline in full")
async def get_pipeline(name: NamePath, state: State) -> Json:
    paths = await asyncio.to_thread(config.pipeline_paths, state.engine.pipeline_dirs())
    if name not in paths:
        raise NotFound(
            f"no pipeline {name!r}", f"known: {', '.join(paths)}", code="unknown_pipeline"
        )
    pipeline = await asyncio.to_thread(config.load_pipeline, paths[name])
    return {"name": name, **pipeline.model_dump(mode="json")}


@router.get("/styles", summary="Style primers")
async def list_styles(state: State) -> Json:
    entries = await asyncio.to_thread(config.list_styles, state.engine.style_dirs())
    return {
        "styles": [
            {
                **(entry.item.model_dump(mode="json") if entry.item else {}),
                "name": entry.name,  # what POST /api/runs takes; `title` is the display name
                "title": entry.item.name if entry.item else entry.name,
                "builtin": entry.builtin,
                "valid": entry.item is not None,
                "problems": [str(p) for p in entry.problems],
            }
            for entry in entries
        ]
    }


@router.get("/models", summary="Models the llm library knows, and whether they are usable")
async def list_models() -> Json:
    infos = await asyncio.to_thread(providers.list_models)
    return {
        "offline_model": providers.OFFLINE_MODEL,
        "models": [
            {
                "model_id": info.model_id,
                "aliases": info.aliases,
                "provider": info.provider,
                "usable": info.usable,
                "needs_key": info.needs_key,
                "hint": "" if info.usable else providers.key_hint(info.needs_key),
            }
            for info in infos
        ],
    }


# --- runs --------------------------------------------------------------------------------


async def _check_style(engine: Engine, style: str | None) -> None:
    """A style named in a body is one the workspace has (a name only, never a path)."""
    if style:
        styles = await asyncio.to_thread(config.style_paths, engine.style_dirs())
        if style not in styles:
            raise Unprocessable(
                f"unknown style {style!r}",
                f"known: {', '.join(styles)} (GET /api/styles)",
                code="unknown_style",
            )


async def _new_run_pipeline(body: bodies.NewRun, state: ServerState) -> PipelineConfiguration:
    """The pipeline a new run's body names, and its style checked: 422s, never a path
    read off the disk."""
    engine = state.engine
    paths = await asyncio.to_thread(config.pipeline_paths, engine.pipeline_dirs())
    if body.pipeline not in paths:  # a name only: a path would read any file on disk
        raise Unprocessable(
            f"unknown pipeline {body.pipeline!r}",
            f"known: {', '.join(paths)} (GET /api/pipelines)",
            code="unknown_pipeline",
        )
    pipeline = await asyncio.to_thread(config.load_pipeline, paths[body.pipeline])
    await _check_style(engine, body.style)
    return pipeline


@router.post("/runs", status_code=status.HTTP_201_CREATED, summary="Start a run")
async def start_run(body: bodies.NewRun, state: State) -> Json:
    engine = state.engine
    pipeline = await _new_run_pipeline(body, state)
    asked = set(body.models or []) | {m for ms in (body.step_models or {}).values() for m in ms}
    await check_models(asked)
    with plain_errors_as(Unprocessable):
        run = await engine.start_run(
            pipeline,
            body.inputs,
            style=body.style,
            models=body.models,
            step_models=body.step_models,
            blind=body.blind,
            budget_usd=body.budget_usd,
        )
    return run_response(engine, run, status_code=201)


@router.post("/forecast", summary="What a new run would cost, per step and model; asks no model")
async def forecast_new_run(body: bodies.NewRun, state: State) -> Json:
    """The body POST /api/runs takes; the answer is `writeit run ... --dry-run --json`'s:
    per step and model, input tokens of the prompt as it would be sent, output tokens
    from past outputs (else a default) with a range, prices (null: unknown), the total,
    and the budget the run would have. Models need no key yet: a forecast is how to
    see the cost before setting one up."""
    engine = state.engine
    pipeline = await _new_run_pipeline(body, state)
    with plain_errors_as(Unprocessable):
        ahead = await asyncio.to_thread(
            functools.partial(
                engine.forecast,
                pipeline=pipeline,
                inputs=body.inputs,
                style=body.style,
                models=body.models,
                step_models=body.step_models,
            )
        )
    budget = body.budget_usd
    if budget is None:
        budget = engine.preferences.default_budget_usd
    return {**ahead.to_json(), "budget_usd": budget}


@router.get("/runs", summary="Runs, most recently changed first")
async def list_runs(
    state: State,
    status: PipelineStatus | None = None,
    pipeline: Annotated[str | None, Query(max_length=100)] = None,
    style: Annotated[str | None, Query(max_length=100)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Json:
    summaries = await asyncio.to_thread(
        state.engine.store.recent,
        limit=limit,
        status=status.value if status else None,
        pipeline=pipeline,
        style=style,
        model=model,
    )
    return {"runs": [asdict(summary) for summary in summaries]}


@router.get("/runs/{run_id}", summary="A run now, or right after event `at`")
async def get_run(
    run_id: RunId,
    state: State,
    at: Annotated[int | None, Query(ge=1, description="An event's seq: time travel.")] = None,
    texts: Annotated[
        Literal["all", "latest"],
        Query(description="`latest`: as actions answer (each step from its latest attempt)"),
    ] = "all",
    reveal: Annotated[
        bool, Query(description="Blind review: include the models of an undecided step.")
    ] = False,
) -> Json:
    engine = state.engine
    full = state.run_id(run_id)
    if at is None:
        return run_response(engine, await engine.live(full), texts=texts, reveal=reveal)
    with plain_errors_as(Unprocessable):
        past = await asyncio.to_thread(engine.store.state_at, full, at)
    data = run_json(engine, past, reveal=reveal)
    data["at"] = at
    return data


@router.delete("/runs/{run_id}", status_code=204, summary="Hide a run (its history stays)")
async def delete_run(run_id: RunId, state: State) -> Response:
    with plain_errors_as(InvalidState):
        await state.engine.delete(state.run_id(run_id))
    return Response(status_code=204)


@router.post(
    "/runs/{run_id}/steps/{step}/execute",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask the step's models for candidates; tokens stream over the WebSocket",
)
async def execute(
    run_id: RunId, step: StepPath, state: State, body: bodies.Execute | None = None
) -> Json:
    """Returns at once (202) with the run whose responses are streaming.

    `step` must be the run's current step (a stale client cannot run the wrong one). A
    step that already has candidates runs again only with `regenerate` or `guide`, so a
    repeated request cannot spend tokens twice. `feedback` is feedback on the previous
    step's output, which this step's prompt receives.
    """
    body = body or bodies.Execute()
    engine = state.engine
    full = state.run_id(run_id)
    run = await engine.fetch(full)
    if step not in run.pipeline.step_names:
        raise NotFound(
            f"pipeline {run.configuration_id!r} has no step {step!r}",
            f"steps: {', '.join(run.pipeline.step_names)}",
            code="unknown_step",
        )
    if run.status == PipelineStatus.COMPLETED:
        raise InvalidState(
            f"run {full[:8]} is completed",
            f"fork it from a step to go on: POST /api/runs/{full}/fork",
            code="run_completed",
        )
    if step != run.current_step:
        raise InvalidState(
            f"run {full[:8]} is at step {run.current_step!r}, not {step!r}",
            "execute the current step, or rewind to this one first",
            code="not_current_step",
        )
    if body.models:
        await check_models(set(body.models))
    if body.feedback is not None:
        run = await feedback_on_previous(state, run, body.feedback)
    again = body.regenerate or body.guide is not None
    with plain_errors_as(InvalidState):
        run = await engine.start_step(
            run.pipeline_run_id, guidance=body.guide, models=body.models, again=again
        )
    return run_response(engine, run, branched_from=full, status_code=202, texts="latest")


@router.post("/runs/{run_id}/select", summary="Choose a candidate of the current step")
async def select(run_id: RunId, body: bodies.Select, state: State) -> Json:
    engine = state.engine
    full = state.run_id(run_id)
    choice = body.response_id if body.index is None else body.index
    with plain_errors_as(InvalidState):
        run = await engine.select(full, choice, feedback=body.feedback)
    return run_response(engine, run, branched_from=full, texts="latest")


@router.post("/runs/{run_id}/feedback", summary="Feedback on the current step")
async def feedback(run_id: RunId, body: bodies.FeedbackBody, state: State) -> Json:
    engine = state.engine
    full = state.run_id(run_id)
    with plain_errors_as(InvalidState):
        run = await engine.give_feedback(full, body.feedback)
    return run_response(engine, run, branched_from=full, texts="latest")


@router.post(
    "/runs/{run_id}/merge",
    summary="Merge candidates: by hand (`text`, 200) or by a model (202, streamed)",
    responses=STARTED,
)
async def merge(run_id: RunId, body: bodies.Merge, state: State) -> JSONResponse:
    engine = state.engine
    full = state.run_id(run_id)
    ids = list(body.response_ids)
    if body.text is not None:
        with plain_errors_as(InvalidState):
            run = await engine.merge(full, ids, text=body.text)
        return run_response(engine, run, branched_from=full, texts="latest")
    if body.model:
        await check_models({body.model})
    work = engine.merge(full, ids, instruction=body.instruction, model=body.model)
    try:
        with plain_errors_as(InvalidState):
            run, running = await state.launch(full, work)
    except ProviderError as error:  # the merge model failed at once: a failed response
        if error.code != "merge_failed":
            raise
        data = run_json(engine, await engine.fetch(error.run_id or full), branched_from=full)
        data["merge_error"] = message_of(error)
        return JSONResponse(data)
    return run_response(
        engine, run, branched_from=full, status_code=202 if running else 200, texts="latest"
    )


@router.post(
    "/runs/{run_id}/accept",
    summary="Go on from a decided step (or complete the run); "
    "POST .../steps/{step}/execute then asks the next step's models",
)
async def accept(run_id: RunId, state: State) -> Json:
    return await _act(state, run_id, state.engine.accept)


@router.post("/runs/{run_id}/skip", summary="Skip the current step (if the pipeline allows)")
async def skip(run_id: RunId, state: State) -> Json:
    return await _act(state, run_id, state.engine.skip)


@router.post("/runs/{run_id}/rewind", summary="Move back to an earlier step (nothing is lost)")
async def rewind(run_id: RunId, state: State, body: bodies.Rewind | None = None) -> Json:
    step = (body or bodies.Rewind()).step
    engine = state.engine
    full = state.run_id(run_id)
    if step is not None:
        _check_step(await engine.fetch(full), step)
    with plain_errors_as(InvalidState):
        run = await engine.rewind(full, step)
    return run_response(engine, run, branched_from=full, texts="latest")


@router.post(
    "/runs/{run_id}/fork",
    status_code=status.HTTP_201_CREATED,
    summary="A new run sharing this one's history up to a completed step",
)
async def fork(run_id: RunId, body: bodies.Fork, state: State) -> Json:
    engine = state.engine
    full = state.run_id(run_id)
    _check_step(await engine.fetch(full), body.step)
    with plain_errors_as(InvalidState):
        run = await engine.fork(full, body.step)
    return run_response(engine, run, branched_from=full, status_code=201, texts="latest")


@router.post(
    "/runs/{run_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="A new branch asking a step and the later ones again (earlier choices kept)",
)
async def replay(run_id: RunId, body: bodies.Replay, state: State) -> Json:
    """Returns at once (202) with the new branch, its `from_step` streaming: watch it on
    /api/runs/{new id}/stream. No model is asked for the steps before `from_step`; the
    run itself stays as it was."""
    engine = state.engine
    full = state.run_id(run_id)
    _check_step(await engine.fetch(full), body.from_step)
    await _check_style(engine, body.style)
    if body.models:
        await check_models(set(body.models))
    with plain_errors_as(InvalidState):
        run = await engine.replay(
            full, body.from_step, models=body.models, style=body.style, start=True
        )
    return run_response(engine, run, branched_from=full, status_code=202, texts="latest")


@router.post("/runs/{run_id}/pause", summary="Stop streaming (text kept) and pause the run")
async def pause(run_id: RunId, state: State) -> Json:
    run = await state.engine.pause(state.run_id(run_id))
    return run_response(state.engine, run, texts="latest")


@router.post(
    "/runs/{run_id}/resume",
    summary="Continue a paused, failed or interrupted run (202 when models are asked)",
    responses=STARTED,
)
async def resume(run_id: RunId, state: State, body: bodies.Resume | None = None) -> JSONResponse:
    engine = state.engine
    full = state.run_id(run_id)
    budget = body.budget_usd if body else None
    with plain_errors_as(InvalidState):
        run, running = await state.launch(full, engine.resume(full, budget_usd=budget))
    return run_response(
        engine, run, branched_from=full, status_code=202 if running else 200, texts="latest"
    )


@router.get("/runs/{run_id}/forecast", summary="What the run's steps still to run will cost")
async def forecast(run_id: RunId, state: State) -> Json:
    ahead = await asyncio.to_thread(state.engine.forecast, state.run_id(run_id))
    return ahead.to_json()


@router.post(
    "/runs/{run_id}/responses/{response_id}/retry",
    summary="Ask again for a failed or interrupted candidate, or ask another model",
    responses=STARTED,
)
async def retry(
    run_id: RunId,
    response_id: ResponsePath,
    state: State,
    body: bodies.Retry | None = None,
) -> JSONResponse:
    model = (body or bodies.Retry()).model
    engine = state.engine
    full = state.run_id(run_id)
    if model:
        await check_models({model})
    try:
        with plain_errors_as(InvalidState):
            work = engine.retry_response(full, response_id, model=model)
            run, running = await state.launch(full, work)
    except UnknownResponse as error:  # a path names a resource: unknown is a 404
        raise NotFound(message_of(error), error.hint, code="unknown_response") from error
    return run_response(
        engine, run, branched_from=full, status_code=202 if running else 200, texts="latest"
    )


@router.get("/runs/{run_id}/artifacts", summary="Per step: output, feedback and every response")
async def artifacts(
    run_id: RunId,
    state: State,
    step: Annotated[str | None, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = None,
    include_text: bool = True,
) -> Json:
    engine = state.engine
    run = await engine.live(state.run_id(run_id))
    names = run.pipeline.step_names
    if step is not None:
        _check_step(run, step)
        names = [step]
    return {
        "run_id": run.pipeline_run_id,
        "status": run.status.value,
        "current_step": run.current_step,
        "steps": [_step_artifacts(run, name, include_text) for name in names],
    }


@router.post("/runs/{run_id}/export", summary="The article with its history: md, yaml or json")
async def export_run(run_id: RunId, body: bodies.Export, state: State) -> Json:
    engine = state.engine
    full = state.run_id(run_id)
    run = await engine.fetch(full)
    text = await asyncio.to_thread(
        export.export_run,
        engine,
        run,
        body.format,
        history=body.include_history,
        candidates=body.include_candidates,
        all_branches=body.all_branches,
    )
    if not (body.save or body.path):
        return {"format": body.format, "content": text}
    exports = state.workspace.exports.resolve()
    if_exists: export.IfExists
    if body.path is None:  # a default name is never reused: a taken one gets -2, -3…
        target, if_exists = export.default_path(exports, run, body.format), "rename"
    else:
        target = export_target(exports, body.path)
        if_exists = "overwrite" if body.overwrite else "refuse"
    saved = await asyncio.to_thread(export.save, text, target, if_exists=if_exists, within=exports)
    return {"format": body.format, "path": str(saved.path), "bytes": saved.bytes}


@router.get("/stats", summary="Win rates per model: offered, chosen, blind, quality, cost, time")
async def get_stats(
    state: State,
    pipeline: Annotated[str | None, Query(max_length=100)] = None,
    step: Annotated[str | None, Query(max_length=64)] = None,
    style: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[
        str | None, Query(max_length=40, description="An ISO date: 2026-11-01")
    ] = None,
    autopilot: Annotated[
        bool, Query(description="Count the autopilot's picks too, not only the writer's.")
    ] = False,
) -> Json:
    """The outcome index read with the filters given (a store from before it is indexed
    once, on the first request: logged)."""
    log = logging.getLogger("writeit.server")
    announce = functools.partial(log.info, "indexing %d runs for stats (once)")
    return await asyncio.to_thread(
        stats.win_rates,
        state.engine.store,
        pipeline=pipeline,
        step=step,
        style=style,
        since=since,
        announce=announce,
        autopilot=autopilot,
    )


# --- helpers -------------------------------------------------------------------------------


async def _act(state: ServerState, run_id: str, action: Any) -> Json:
    full = state.run_id(run_id)
    with plain_errors_as(InvalidState):
        run = await action(full)
    return run_response(state.engine, run, branched_from=full, texts="latest")


async def check_models(names: set[str]) -> None:
    """Refuse unknown or keyless models with a 422 before anything is written.

    Off the event loop: the first lookup imports llm and its plugins (about a second).
    """
    from writeit.engine import check_model

    def check() -> None:
        for name in sorted(names):
            check_model(name)

    with plain_errors_as(Unprocessable):
        await asyncio.to_thread(check)


async def feedback_on_previous(state: ServerState, run: PipelineRun, text: str) -> PipelineRun:
    """Give the previous step feedback before this one runs (one engine commit)."""
    previous = run.pipeline.previous_step(run.current_step)
    if previous is None:
        raise Unprocessable(
            "the first step has no previous step to give feedback on",
            "feedback on a step goes with its selection: POST /api/runs/{id}/select",
            code="no_previous_step",
        )
    with plain_errors_as(InvalidState):
        return await state.engine.give_feedback(run.pipeline_run_id, text, step=previous)


def _check_step(run: PipelineRun, step: str) -> None:
    if step not in run.pipeline.step_names:
        raise Unprocessable(
            f"pipeline {run.configuration_id!r} has no step {step!r}",
            f"steps: {', '.join(run.pipeline.step_names)}",
            code="unknown_step",
        )


def export_target(exports: FilePath, raw: str) -> FilePath:
    """Where to save an export: inside the exports folder, or refused (nothing written).

    Only the early, clear refusals; export.save checks the rest (a folder or a symlink at
    the target, a file where a folder should be, names too long) while it writes.
    """
    target = export.inside(exports, FilePath(raw))
    if target == exports.resolve():
        raise ApiError(f"{raw} is a folder", "name a file inside it", code="bad_path")
    return target


def _step_artifacts(run: PipelineRun, name: str, include_text: bool) -> Json:
    step = run.steps[name]
    selected = step.ai_responses[step.user_selection] if step.user_selection is not None else None
    data: Json = {
        "step": name,
        "status": step.status.value,
        "attempt": step.attempt,
        "selected_response_id": selected.response_id if selected else None,
        "merged": selected is None and step.merged_content is not None,
        "feedback": step.user_feedback,
        "responses": [],
    }
    if include_text:
        data["output"] = step.output
        data["prompt"] = step.prompt
    for response in step.ai_responses:
        item: Json = {
            "response_id": response.response_id,
            "model": response.model_name,
            "provider": response.provider,
            "kind": response.kind,
            "attempt": response.attempt,
            "status": response.status.value,
            "error": response.error,
            "usage": response.usage_stats.model_dump() if response.usage_stats else None,
            "seconds": response.processing_time,
            "quality_score": response.quality_score,
            "instruction": response.instruction,
        }
        if include_text:
            item["text"] = response.processed_content or response.raw_output
        data["responses"].append(item)
    return data
