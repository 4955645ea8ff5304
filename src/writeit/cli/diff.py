"""`writeit diff`: what changed, word by word, between two candidates of a step or
between two runs' articles (a fork and its parent, or any two runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from writeit.cli import JsonOpt, RunArg, WorkspaceOpt, _engine, _print_json, app, console
from writeit.errors import WriteItError

if TYPE_CHECKING:
    from writeit.models import AIResponse, PipelineRun, StepState


@dataclass
class Side:
    """One of the two texts compared, and what it is (the JSON's "a" and "b")."""

    text: str
    label: str
    about: dict[str, Any]


@app.command()
def diff(
    run_id: RunArg,
    others: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="A B | OTHER",
            help="Two candidate numbers (default: 1 2), or another run to compare articles with.",
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="The step whose candidates (or, with OTHER, whose chosen texts) to compare "
            "(default: the current step if it has candidates, else the last decided one).",
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what changed, word by word: two candidates of a step, or two runs' articles.

    `writeit diff RUN` compares candidates 1 and 2 of the step, `writeit diff RUN 1 3 --step outline` two others, and `writeit diff RUN OTHER` the article of RUN with OTHER's (a fork against its parent, say).

    Deletions show as [-struck-], insertions as {+underlined+}.
    """
    from writeit import diffs

    engine = _engine(workspace)
    numbers, other = _parse(others or [], run_id)
    run = engine.load(engine.resolve(run_id))
    if other is None:
        a, b = _candidates(run, step, numbers)
    else:
        b_run = engine.load(engine.resolve(other))
        a, b = _article(run, step), _article(b_run, step)
    changes = diffs.diff(a.text, b.text)
    if as_json:
        _print_json({"ops": [c.as_dict() for c in changes], "a": a.about, "b": b.about})
        return
    console.print(f"[-] {a.label}\n[+] {b.label}", markup=False, highlight=False)
    console.print(diffs.summary(changes) + "\n", style="bold", highlight=False)
    console.print(diffs.render(changes))


def _parse(others: list[str], run_id: str) -> tuple[list[int], str | None]:
    """Candidate numbers (one or two), or another run's id. A run id prefix has at least
    four characters, so a number of three digits or fewer is a candidate."""
    numbers = [int(o) for o in others if o.isdigit() and len(o) <= 3]
    if len(others) == 1 and not numbers:
        return [], others[0]
    if len(others) > 2 or len(numbers) != len(others):
        raise WriteItError(
            f"expected two candidate numbers or one other run, got: {' '.join(others)}",
            hint=f"e.g. writeit diff {run_id} 1 3 --step outline, or writeit diff {run_id} OTHER_RUN",
        )
    return numbers, None


# --- two candidates of a step ----------------------------------------------------------------


def _candidates(run: PipelineRun, step_name: str | None, numbers: list[int]) -> tuple[Side, Side]:
    step = run.step(step_name) if step_name else _default_step(run)
    candidates = step.candidates
    if not candidates:
        raise WriteItError(
            f"step {step.step_name!r} of run {run.pipeline_run_id[:8]} has no candidates",
            hint=_steps_hint(run),
        )
    for number in numbers:
        _check_number(run, step, number)
    if len(candidates) == 1 and len(numbers) < 2:  # what the regeneration changed
        return _earlier(run, step), _side(run, step, 1)
    first = numbers[0] if numbers else 1
    second = numbers[1] if len(numbers) == 2 else first % len(candidates) + 1  # the next one
    return _side(run, step, first), _side(run, step, second)


def _default_step(run: PipelineRun) -> StepState:
    """The current step if it has candidates, else the last step that was decided."""
    if run.current.candidates:
        return run.current
    decided = [
        run.steps[name]
        for name in run.pipeline.step_names
        if run.steps[name].decision is not None and run.steps[name].candidates
    ]
    if not decided:
        raise WriteItError(
            f"run {run.pipeline_run_id[:8]} has no candidates yet",
            hint=f"its first step has not run: writeit resume {run.pipeline_run_id[:8]}",
        )
    return decided[-1]


def _steps_hint(run: PipelineRun) -> str:
    having = [n for n in run.pipeline.step_names if run.steps[n].candidates]
    if not having:
        return f"no step has run yet: writeit resume {run.pipeline_run_id[:8]}"
    return f"steps with candidates: {', '.join(having)} (choose one with --step)"


def _check_number(run: PipelineRun, step: StepState, number: int) -> None:
    count = len(step.candidates)
    if 1 <= number <= count:
        return
    short = run.pipeline_run_id[:8]
    raise WriteItError(
        f"there is no candidate {number} at step {step.step_name!r}: it has {count}",
        hint=f"choose 1 to {count}, e.g. writeit diff {short} 1 {min(2, count)} --step {step.step_name}",
    )


def _earlier(run: PipelineRun, step: StepState) -> Side:
    """The only candidate's model's candidate of the attempt before."""
    earlier = step.earlier_candidate(step.candidates[0])
    if earlier is None:
        raise WriteItError(
            f"step {step.step_name!r} has only one candidate and no earlier attempt",
            hint=f"compare two runs instead: writeit diff {run.pipeline_run_id[:8]} OTHER_RUN",
        )
    return _response_side(run, step, earlier, f"attempt {earlier.attempt}'s candidate")


def _side(run: PipelineRun, step: StepState, number: int) -> Side:
    response = step.candidates[number - 1]
    side = _response_side(run, step, response, f"candidate {number}")
    side.about["candidate"] = number
    return side


def _response_side(run: PipelineRun, step: StepState, response: AIResponse, what: str) -> Side:
    label = f"{what} ({step.author(response)}) of {step.step_name}, run {run.pipeline_run_id[:8]}"
    about = {
        "run_id": run.pipeline_run_id,
        "step": step.step_name,
        "response_id": response.response_id,
        **({} if step.hidden else {"model": response.model_name}),
        "attempt": response.attempt,
        "status": response.status.value,
    }
    return Side(response.processed_content or response.raw_output, label, about)


# --- two runs ----------------------------------------------------------------------------------


def _article(run: PipelineRun, step_name: str | None) -> Side:
    """The run's article (the output of its last step that has one), or with a step,
    that step's chosen text."""
    short = run.pipeline_run_id[:8]
    if step_name:
        name, text = step_name, run.step(step_name).output
    else:
        name = next((n for n in reversed(run.pipeline.step_names) if run.steps[n].output), None)
        text = run.steps[name].output if name else None
    if text is None:
        where = f"at step {step_name!r}" if step_name else "yet"
        raise WriteItError(
            f"run {short} has no chosen text {where}",
            hint=f"choose a candidate first, or compare its candidates: writeit diff {short}",
        )
    final = name == run.pipeline.step_names[-1]
    what = "article" if final and not step_name else f"chosen text of {name}"
    about = {"run_id": run.pipeline_run_id, "step": name, "status": run.status.value}
    return Side(text, f"{what}, run {short} ({run.status.value})", about)
