"""What WriteIt sends to models: step prompts, merge and judge prompts, checked inputs.

Templates render in Jinja's sandbox (config.render_template) with the writer's text as
values only, so template syntax inside source material reaches the model verbatim.
"""

from __future__ import annotations

import re
from typing import Any

from writeit.config import render_template
from writeit.errors import InvalidInput
from writeit.models import PipelineConfiguration, PipelineRun

MERGE_TEMPLATE = """You are merging several drafts of the same piece into one.

{% for text in candidates %}--- Draft {{ loop.index }} ---
{{ text }}

{% endfor %}--- End of drafts ---

{% if instruction %}The writer's instruction for the merge: {{ instruction }}
{% else %}Keep the strongest parts of each draft and remove repetition.
{% endif %}
Return only the merged text, in the same format as the drafts, with no commentary."""


JUDGE_TEMPLATE = """You are judging candidate answers to the same writing task.

The task was:
<task>
{{ task }}
</task>

{% for text in candidates %}--- Candidate {{ loop.index }} ---
{{ text }}

{% endfor %}--- End of candidates ---

Score every candidate from 1 to 10 for how well it does the task: accuracy to the
source, clarity, structure and usefulness to the reader. Answer with one line per
candidate in exactly this form, then one sentence on the winner:
Candidate 1: 7
Candidate 2: 9"""


def merge_prompt(texts: list[str], instruction: str | None) -> str:
    return render_template(MERGE_TEMPLATE, {"candidates": texts, "instruction": instruction or ""})


def judge_prompt(task: str, texts: list[str]) -> str:
    return render_template(JUDGE_TEMPLATE, {"task": task, "candidates": texts})


def parse_scores(verdict: str, count: int) -> dict[int, float]:
    """`Candidate N: S` lines of a judge's answer as {index: score in 0..1}."""
    scores = {}
    for number, value in re.findall(r"Candidate\s*(\d+)\D{0,5}?(\d+(?:\.\d+)?)", verdict):
        index = int(number) - 1
        if 0 <= index < count:
            scores[index] = round(min(float(value), 10.0) / 10.0, 3)
    return scores


def check_inputs(pipeline: PipelineConfiguration, inputs: dict[str, str]) -> dict[str, str]:
    """Validate the writer's inputs against the pipeline; fill defaults."""
    known = {i.name for i in pipeline.inputs}
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise InvalidInput(
            f"pipeline {pipeline.name!r} has no input {', '.join(map(repr, unknown))}",
            hint=f"its inputs are: {', '.join(sorted(known))}",
        )
    values: dict[str, str] = {}
    problems = []
    for spec in pipeline.inputs:
        value = inputs.get(spec.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            value = spec.default
        if value is None or not str(value).strip():
            if spec.required:
                problems.append(f"{spec.name} is required ({spec.display_label})")
            values[spec.name] = ""
            continue
        value = str(value)
        if spec.type == "choice" and spec.options and value not in spec.options:
            problems.append(f"{spec.name} must be one of {', '.join(spec.options)}, not {value!r}")
        if len(value) > spec.max_length:
            problems.append(
                f"{spec.name} is {len(value)} characters; the limit is {spec.max_length}"
            )
        values[spec.name] = value
    if problems:
        raise InvalidInput(
            "; ".join(problems), hint="give inputs as --input NAME=VALUE or --input NAME=@FILE"
        )
    return values


def render_prompt(run: PipelineRun, step_name: str, guidance: str = "") -> str:
    """The step's template filled with inputs, earlier outputs and feedback, as data."""
    spec = run.pipeline.step(step_name)
    variables: dict[str, Any] = {
        i.name: run.user_inputs.get(i.name) or (i.default or "") for i in run.pipeline.inputs
    }
    previous_output = ""
    previous_feedback = ""
    for name in run.pipeline.step_names:
        if name == step_name:
            break
        state = run.steps[name]
        output = state.output
        previous_output = output if output is not None else previous_output
        previous_feedback = state.user_feedback or ""
        variables[f"{name}_output"] = previous_output
        variables[f"{name}_feedback"] = previous_feedback
    variables["feedback"] = previous_feedback
    variables["guidance"] = guidance
    variables["style"] = run.primer.name if run.primer else ""
    return render_template(spec.template, variables)
