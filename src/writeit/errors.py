"""The errors a user can cause; kept free of heavy imports so the CLI can catch them cheaply."""

from __future__ import annotations


class WriteItError(Exception):
    """Base of every error a user can cause; front ends show the message, not a traceback."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint or self.hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class InvalidTransition(WriteItError):
    """A status change the state machines forbid (docs/data-model.md)."""


class InvalidAction(WriteItError):
    """The run's current state does not allow this action now (a 409 over HTTP)."""


class InvalidInput(WriteItError):
    """What the writer gave (inputs, a model, a response, a pick) is not usable (a 422)."""


class Busy(InvalidAction):
    """The action needs the run idle or a free generation slot."""


class StepRunning(Busy):
    """A step of this run is generating, in this process or another one."""


class AlreadyRun(InvalidAction):
    """The step has candidates already; asking again needs an explicit regenerate."""


class TooManyRuns(Busy):
    """`max_concurrent_pipelines` runs are generating already, across every process."""

    def __init__(self, running: int, limit: int) -> None:
        super().__init__(
            f"{running} runs are already generating (max_concurrent_pipelines = {limit})",
            "wait for one to finish, or raise it: writeit config set max_concurrent_pipelines N",
        )
        self.running, self.limit = running, limit


class BudgetReached(InvalidAction):
    """A step would take the run past its budget, so it was not started (or a stream
    crossed it and was stopped); the run is paused. Headless runs exit with 3."""

    exit_code = 3

    def __init__(self, message: str, run_id: str = "", hint: str | None = None) -> None:
        short = run_id[:8] or "RUN"
        super().__init__(
            message,
            hint
            or f"raise it to go on: writeit resume {short} --budget USD (or in the TUI: U, then the budget)",
        )
        self.run_id = run_id


class UnknownResponse(InvalidInput):
    """No response of the step matches the index or id given."""
