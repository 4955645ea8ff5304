"""Request bodies: every string bounded, unknown fields refused (a typo is a 422).

Booleans and numbers are strict: ``"save": 0`` or ``"index": "1"`` is a 422, not a guess
at what the client meant.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
StepName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
InputName = StepName
ModelName = Annotated[str, StringConstraints(pattern=r"^[^\s\x00-\x1f\x7f]{1,200}$")]
ID_PATTERN = r"^[0-9a-fA-F-]{4,36}$"
"""A run or response id, or an unambiguous prefix of at least 4 characters: one rule for
the REST paths, the WebSocket and bodies (shorter prefixes match too much to be safe)."""
RunIdText = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ResponseId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ResponseRef = ResponseId | Annotated[StrictInt, Field(ge=0, le=63)]
InputText = Annotated[str, StringConstraints(max_length=200_000)]
Feedback = Annotated[str, StringConstraints(max_length=20_000)]
Instruction = Annotated[str, StringConstraints(max_length=5_000)]
Models = Annotated[list[ModelName], Field(min_length=1, max_length=9)]
BudgetUsd = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRun(Body):
    pipeline: Name = Field(description="A pipeline name from GET /api/pipelines.")
    inputs: Annotated[dict[InputName, InputText], Field(max_length=64)] = Field(
        default_factory=dict, description="The pipeline's inputs by name."
    )
    style: (
        Annotated[str, StringConstraints(pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None
    ) = Field(
        default=None,
        description="A style from GET /api/styles; omitted: the preference; empty: none.",
    )
    models: Models | None = Field(
        default=None, description="Ask these models at every step (one candidate each)."
    )
    step_models: Annotated[dict[StepName, Models], Field(max_length=32)] | None = Field(
        default=None, description="Per-step models, used where `models` is not given."
    )
    blind: StrictBool | None = Field(
        default=None,
        description="Blind review: candidates shuffled and their models left out of the "
        "run's JSON until each step is decided (omitted: the blind_review preference).",
    )
    budget_usd: BudgetUsd | None = Field(
        default=None,
        description="The most the run may spend, in USD (omitted: the default_budget_usd "
        "preference). A step forecast past it pauses the run instead of starting.",
    )


class Resume(Body):
    budget_usd: BudgetUsd | None = Field(
        default=None, description="The run's budget from now on, in USD (raise it to go on)."
    )


class Execute(Body):
    feedback: Feedback | None = Field(
        default=None,
        description="Feedback on the previous step's output, which this step's prompt "
        "receives; only before the step has run (afterwards it would rewrite history: "
        "rewind and select again with feedback, which branches).",
    )
    regenerate: StrictBool = Field(
        default=False, description="Ask again although the step already has candidates."
    )
    guide: Instruction | None = Field(
        default=None, description="An instruction for this attempt (implies regenerate)."
    )
    models: Models | None = Field(default=None, description="Ask these models this time.")


class Select(Body):
    response_id: ResponseId | None = Field(
        default=None, description="A response id (or unambiguous prefix) of the current step."
    )
    index: StrictInt | None = Field(
        default=None, ge=0, le=63, description="0-based index into the latest candidates."
    )
    feedback: Feedback | None = Field(
        default=None, description="Feedback on this step; the next step's prompt gets it."
    )

    @model_validator(mode="after")
    def _one_choice(self) -> Select:
        if (self.response_id is None) == (self.index is None):
            raise ValueError("give exactly one of response_id and index")
        return self


class FeedbackBody(Body):
    feedback: Feedback


class Merge(Body):
    response_ids: Annotated[list[ResponseRef], Field(min_length=1, max_length=9)] = Field(
        description="Response ids (or 0-based candidate indexes) to merge."
    )
    instruction: Instruction | None = Field(
        default=None, description="Merge with a model following this instruction."
    )
    text: Annotated[str, StringConstraints(max_length=500_000)] | None = Field(
        default=None, description="The merged text, written by hand (no model is asked)."
    )
    model: ModelName | None = Field(
        default=None, description="The model for an AI merge (default: the first source's)."
    )

    @model_validator(mode="after")
    def _text_or_model(self) -> Merge:
        if self.text is not None and (self.instruction is not None or self.model is not None):
            raise ValueError("give either text (a merge by hand) or instruction/model, not both")
        if self.text is None and len(self.response_ids) < 2:
            raise ValueError("a merge by a model needs two or more responses")
        return self


class Rewind(Body):
    step: StepName | None = Field(default=None, description="Default: the previous step.")


class Fork(Body):
    step: StepName


class Replay(Body):
    from_step: StepName = Field(description="The step to ask again; the steps before it are kept.")
    models: Models | None = Field(
        default=None, description="Ask these models from the step on (default: the run's)."
    )
    style: (
        Annotated[str, StringConstraints(pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None
    ) = Field(
        default=None,
        description="A style from GET /api/styles from the step on; omitted: the run's; "
        "empty: none.",
    )


class Retry(Body):
    model: ModelName | None = Field(default=None, description="Ask another model instead.")


class Export(Body):
    format: Literal["md", "yaml", "json"] = "md"
    include_history: StrictBool = True
    include_candidates: StrictBool = Field(
        default=True, description="Every candidate's text and figures (false: leave them out)."
    )
    all_branches: StrictBool = Field(
        default=False, description="Also every fork of the run, with its branch point."
    )
    save: StrictBool = Field(default=False, description="Write it into the workspace's exports.")
    path: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,1024}$")] | None = Field(
        default=None,
        description="Where to save, relative to the exports folder (implies save). "
        "Anything resolving outside it is refused.",
    )
    overwrite: StrictBool = Field(
        default=False,
        description="Replace the file at `path` if it exists; without it an existing file "
        "is a 409 `export_exists`. Default names never replace: a taken one gets -2, -3…",
    )
