"""The replay dialog (R in the history tree): which step to ask again, of which models,
in which style. The steps before it keep their choices; nothing is asked for them.

Dismisses with a `Replay` to make (the history screen asks the engine), or None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from writeit.models import PipelineRun, StepStatus


@dataclass(frozen=True)
class Replay:
    step: str
    models: list[str] | None  # None: the run's own
    style: str | None  # None: the run's own; "": no style


def replayable(run: PipelineRun) -> list[str]:
    """The steps a replay can start at: every step whose earlier steps are all decided."""
    steps = []
    for name in run.pipeline.step_names:
        steps.append(name)
        if run.steps[name].status not in (StepStatus.COMPLETED, StepStatus.SKIPPED):
            break
    return steps


def split_models(text: str) -> list[str]:
    return [name for name in re.split(r"[,\s]+", text) if name]


class ReplayDialog(ModalScreen[Replay | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "replay", "Replay"),
    ]

    def __init__(self, run: PipelineRun, step: str) -> None:
        super().__init__()
        self.run = run
        self.steps = replayable(run)
        self.step = step if step in self.steps else self.steps[-1]

    def compose(self) -> ComposeResult:
        run = self.run
        with Vertical(classes="dialog", id="replay-dialog"):
            yield Label(
                f"Replay run {run.pipeline_run_id[:8]} on a new branch", classes="dialog-title"
            )
            yield Static(
                "The steps before the one you choose keep their choices (no model is asked "
                "for them); that step and the later ones are asked again. The run itself "
                "stays as it is.",
                classes="dialog-detail",
                markup=False,
            )
            yield Label("From step", classes="row-label")
            yield Select(
                [(name, name) for name in self.steps],
                value=self.step,
                allow_blank=False,
                id="replay-step",
                compact=True,
            )
            yield Label("Models (comma-separated)", classes="row-label row")
            yield Input(", ".join(run.models_for(self.step)), id="replay-models", compact=True)
            yield Label("Style (empty: none)", classes="row-label row")
            yield Input(run.style_primer or "", id="replay-style", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Replay (Ctrl+S)", variant="primary", id="replay", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#replay-models", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            models = ", ".join(self.run.models_for(event.value))
            self.query_one("#replay-models", Input).value = models

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_replay()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "replay":
            self.action_replay()
        else:
            self.dismiss(None)

    def action_replay(self) -> None:
        step = self.query_one("#replay-step", Select).value
        assert isinstance(step, str)
        models = split_models(self.query_one("#replay-models", Input).value)
        if not models:
            self.notify("Name at least one model, or Esc to cancel", severity="warning")
            return
        style = self.query_one("#replay-style", Input).value.strip()
        same_models = models == self.run.models_for(step)
        same_style = style == (self.run.style_primer or "")
        self.dismiss(Replay(step, None if same_models else models, None if same_style else style))

    def action_cancel(self) -> None:
        self.dismiss(None)
