"""Every model call WriteIt makes, in the writer's own `llm logs`.

People who use `llm` expect every call they paid for in its `logs.db` (in llm's user
folder, `LLM_USER_PATH`). WriteIt records its calls there the way the `llm` command
records its own: the finished `llm` response, through llm's migrations and
`Response.log_to_db`, so `llm logs` shows the system prompt, the prompt, the answer, the
token usage and the model. The calls of one run's step share a conversation named after
them ("WriteIt tech-article 3f2a1b2c angles"), so `llm logs --cid ID` lists them together.

Nothing is written when the writer ran `llm logs off` (llm's `logs-off` file) or set the
preference `log_to_llm: false`. The write runs in a thread (SQLite waits on a lock, and a
first migration takes ~50 ms), and a failure to write is a warning: a run never fails
because its record in llm's log could not be kept.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from writeit.models import PipelineRun

log = logging.getLogger("writeit.llmlog")
_writing = threading.Lock()  # one writer per process: threads would only wait on SQLite's lock


def conversation_id(run_id: str, step: str) -> str:
    """The llm conversation (thread) id of a run's step: stable, so `writeit show` can
    name it without storing anything."""
    return f"writeit-{run_id}-{step}"


def conversation_name(pipeline: str, run_id: str, step: str) -> str:
    return f"WriteIt {pipeline} {run_id[:8]} {step}"


def conversations(run: PipelineRun) -> dict[str, list[str]]:
    """Each step's llm conversation ids, for the steps that asked models. A fork's steps
    up to its branch point were asked (at least in part) by its parent: both are named."""
    names = run.pipeline.step_names
    inherited = set(names[: names.index(run.branch_point) + 1]) if run.branch_point else set()
    found: dict[str, list[str]] = {}
    for step in names:
        if not run.steps[step].ai_responses:
            continue
        ids = [conversation_id(run.pipeline_run_id, step)]
        if run.parent_pipeline_run_id and step in inherited:
            ids.append(conversation_id(run.parent_pipeline_run_id, step))
        found[step] = ids
    return found


def logs_path() -> Path:
    """llm's own log database (what `llm logs path` prints)."""
    import llm

    return llm.user_dir() / "logs.db"


def logs_on() -> bool:
    """False once the writer ran `llm logs off` (llm keeps that as a `logs-off` file)."""
    import llm

    return not (llm.user_dir() / "logs-off").exists()


async def record(response: Any, run: PipelineRun, step: str, *, enabled: bool = True) -> None:
    """Log one model call in llm's logs.db, off the event loop; never raises. A call
    stopped before its end (a pause, the budget, a choice, a dropped stream) is logged
    with the text it had written: it was billed too."""
    if response is None or not enabled:
        return
    cid = conversation_id(run.pipeline_run_id, step)
    name = conversation_name(run.pipeline.name, run.pipeline_run_id, step)
    try:
        await asyncio.to_thread(write, response, cid, name)
    except Exception as error:  # noqa: BLE001 - the run goes on; the writer is told in the log
        log.warning("this call was not recorded in llm's logs (%s): %s", logs_path(), error)


def write(response: Any, cid: str, name: str) -> bool:
    """What `llm prompt` does after a call: migrate logs.db, then `log_to_db`, here in
    the step's conversation. Returns whether anything was written."""
    if not logs_on():
        return False
    import sqlite_utils
    from llm.migrations import migrate

    response = _finished(response)
    response.conversation = _conversation(response, cid, name)
    with _writing:
        db = sqlite_utils.Database(logs_path())
        try:
            migrate(db)
            response.log_to_db(db)
            _rename(db, cid, name)
        finally:
            db.close()
    return True


def _finished(response: Any) -> Any:
    """The response as llm logs a finished one. A stopped call is copied (a sync copy of
    an async one, as llm itself logs those) and marked done with the chunks it has:
    `log_to_db` would otherwise refuse it (async) or run the prompt to its end (sync),
    paying for text no one asked for. Its usage stays unknown: the provider sent none."""
    import copy
    import time

    import llm

    if getattr(response, "_done", True):
        return response
    if isinstance(response, llm.AsyncResponse):
        done = response._to_sync_response()
    else:
        done = copy.copy(response)
        done._chunks = list(response._chunks)
        done._stream_events = list(getattr(response, "_stream_events", []))
    done._done = True
    done._end = done._end or time.monotonic()
    done._start = done._start or done._end
    return done


def _conversation(response: Any, cid: str, name: str) -> Any:
    """A conversation of the response's kind (an async response logs through a sync copy
    of its conversation) carrying the step's id and name."""
    import llm

    kind = llm.AsyncConversation if isinstance(response, llm.AsyncResponse) else llm.Conversation
    return kind(model=response.model, id=cid, name=name)


def _rename(db: Any, cid: str, name: str) -> None:
    """llm names a new conversation after its first prompt; ours say which run and step.
    (llm 0.36 keeps conversations in `threads`; earlier versions in `conversations`.)"""
    with db.conn:
        for table in ("threads", "conversations"):
            if db[table].exists():
                db.execute(f"update [{table}] set name = ? where id = ?", [name, cid])
