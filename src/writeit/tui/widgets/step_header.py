"""The step view's header: pipeline, run, `Step n/N: name`, and where the run goes next.

The step bar marks the current step (▸, underlined); steps after it are drawn dim
with no state colour: after B they hold earlier work kept in history, not the step
being worked on, and a yellow "running" outline next to "Step 1/4: angles" read as
if the view and the bar disagreed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from writeit.models import PipelineRun, PipelineStatus, StepStatus
from writeit.tui import format as fmt

STEP_STYLE = {
    StepStatus.COMPLETED: "green",
    StepStatus.SKIPPED: "dim",
    StepStatus.RUNNING: "yellow",
    StepStatus.PENDING: "dim",
}


class StepHeader(Static):
    def show(
        self,
        run: PipelineRun,
        prices: fmt.Prices | None = None,
        spent: float | None = None,
        ahead: str = "",
    ) -> None:
        """`spent`: what the run has spent against its budget (None: no budget); `ahead`:
        the forecast of the step about to run ("" when there is none)."""
        names = run.pipeline.step_names
        index = run.step_index
        spec = run.pipeline.step(run.current_step)
        text = Text()
        text.append(run.pipeline.name, "bold")
        text.append(f"  ·  run {fmt.short(run.pipeline_run_id)}")
        wide = (self.size.width or self.app.size.width) >= 100
        if run.parent_pipeline_run_id:
            text.append(
                f" (branch of {fmt.short(run.parent_pipeline_run_id)} at {run.branch_point})"
                if wide
                else " (branch)",
                "italic",
            )
        status_style = {
            PipelineStatus.COMPLETED: "bold green",
            PipelineStatus.ERROR: "bold red",
            PipelineStatus.PAUSED: "bold magenta",
        }.get(run.status, "")
        text.append("  ·  ")
        text.append(run.status.value, status_style)
        if run.style_primer and wide:
            text.append(f"  ·  style {run.style_primer}")
        if run.current.hidden:  # blind review: a running total would say which finished
            text.append("  ·  tokens and cost shown after your choice", "dim")
        else:
            text.append(f"  ·  {fmt.tokens(run.total_tokens)} · {fmt.run_cost(run, prices or {})}")
        budget = fmt.budget(run, spent, wide)
        if budget:
            spent_all = spent is not None and spent >= (run.budget_usd or 0.0)
            text.append(f"  ·  {budget}", "bold yellow" if spent_all else "")
        text.append("\n")
        text.append(f"Step {index + 1}/{len(names)}: {run.current_step}", "bold reverse")
        if ahead:
            text.append(f"  {ahead}", "cyan")
        if spec.description and wide:
            text.append(f"  {spec.description}", "italic")
        text.append("\n")
        for i in range(len(names)):
            if i:
                text.append("  ›  ", "dim")
            text.append(*step_mark(run, i))
        remaining = names[index + 1 :]
        text.append("    ")
        if wide:
            text.append(f"next: {', '.join(remaining)}" if remaining else "last step", "dim")
        else:
            text.append(f"{len(remaining)} to go" if remaining else "last step", "dim")
        self.update(text)


def step_mark(run: PipelineRun, i: int) -> tuple[str, str]:
    """The step bar's text and style for step `i`: the current one stands out; later
    ones are dim (what they hold stays in history, to go on to or to branch from)."""
    index = run.step_index
    name = run.pipeline.step_names[i]
    state = run.steps[name].status
    mark = fmt.STATUS_MARK[state.value]
    if i == index:
        return f"▸ {mark} {name}", STEP_STYLE[state] + " bold underline"
    if i > index:
        return f"{mark} {name}", "dim"
    return f"{mark} {name}", STEP_STYLE[state]
