"""The LMDB event store: append-only run histories, their keys and indexes, forks.

The keys are listed in docs/data-model.md.

Every append writes the events and every index they touch in one write transaction,
so a crash leaves either all of it or none of it. A fork stores only its own events
and a pointer to the parent's history up to the branch point. Each long text is stored
once (prompts reference the source and earlier outputs), and a commit's events are one
record, packed with the rest of its step at a step boundary (same events, fewer pages).

Commits flush the data pages but not the meta page (LMDB's `metasync=False`): a killed
process loses nothing, and a power cut can at worst undo the last commit, never
corrupt the store. It saves one fsync per commit, a third of a step's bookkeeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from writeit import processes, records, stats
from writeit.errors import TooManyRuns
from writeit.events import Event, EventType, ResponseCompleted, ResponseStarted, apply, fold
from writeit.models import PipelineRun, PipelineStatus, UserSession, WriteItError
from writeit.records import StoreError

_encode, _decode = records.encode, records.decode  # the store's encoding (stats.py uses it)

SCHEMA_VERSION = 4  # 2: listings, counters, snapshots, live; 3: shared texts, records;
# 4: snapshots pack earlier attempts apart (records.pack; older snapshots read as they are)
DEFAULT_MAP_SIZE = 1 << 30  # grows on demand; the file stays sparse
_LIVE = b"live:"  # live:{run_id} -> the process streaming the run's responses
SNAPSHOT_EVERY = 100  # events between snapshots: opening a run folds at most this many
_SNAPSHOT_AT_BOUNDARY = 10  # ...or this many, when a step boundary is a natural point
_SNAPSHOT_SPACING = 16  # ...or a run's response count over this, when that is more
_BOUNDARIES = {
    EventType.STEP_ADVANCED,
    EventType.REWOUND,
    EventType.RUN_COMPLETED,
    EventType.RUN_FORKED,
}
_STREAM_ENDS = {
    EventType.RESPONSE_STARTED,
    EventType.RESPONSE_COMPLETED,
    EventType.RESPONSE_FAILED,
    EventType.RESPONSE_INTERRUPTED,
}

T = TypeVar("T")
P = TypeVar("P")

_envs: dict[Path, lmdb.Environment] = {}
_envs_lock = threading.Lock()


class Conflict(WriteItError):
    """Someone else appended to this run since the caller last looked."""


class UnknownRun(WriteItError):
    pass


_LISTED = ("status", "pipeline", "style")


def _list_keys(summary: dict[str, Any] | None) -> set[bytes]:
    if summary is None or summary.get("deleted"):
        return set()
    user, when, run_id = summary["user_id"], summary["updated_at"], summary["run_id"]
    values = [(field, summary.get(field)) for field in _LISTED]
    values += [("model", model) for model in summary.get("asked") or []]
    return {
        f"list:{user}:{field}:{value}:{when}:{run_id}".encode() for field, value in values if value
    }


def _newest_first(txn: lmdb.Transaction, prefix: bytes) -> Iterator[bytes]:
    """Values of the keys under `prefix`, last key first (keys end in a timestamp)."""
    cursor = txn.cursor()
    if not cursor.set_range(prefix + b"\xff"):
        if not cursor.last():
            return
    elif not cursor.prev():
        return
    for key, value in cursor.iterprev():
        if not key.startswith(prefix):
            break
        yield bytes(value)


def _matches(summary: RunSummary, field: str, value: str) -> bool:
    if field == "model":
        return value in (summary.asked or [])
    return getattr(summary, field) == value


def _totals(summary: dict[str, Any] | None, events: list[Event]) -> tuple[int, float, bool] | None:
    """Tokens, cost and whether every price was known after these events, from the
    summary before them (None for a new run or branch: it sums what it inherits)."""
    if summary is None:
        return None
    tokens, cost = summary.get("tokens", 0), summary.get("cost", 0.0)
    priced = summary.get("priced", True)
    for done in _payloads(events, ResponseCompleted):
        usage = done.usage or {}
        tokens += usage.get("total_tokens") or 0
        cost += usage.get("cost_usd") or 0.0
        priced = priced and (not usage or usage.get("cost_usd") is not None)
    return tokens, cost, priced


def _payloads(events: list[Event], kind: type[P]) -> list[P]:
    return [p for e in events if e.type == kind.type and isinstance(p := e.payload, kind)]


def _asked(summary: dict[str, Any] | None, events: list[Event], run: PipelineRun) -> list[str]:
    if summary is None:  # a new run or branch: what it inherits, and its --model list
        known = {r.model_name for s in run.steps.values() for r in s.ai_responses}
        known |= set(run.models)
    else:
        known = set(summary.get("asked") or [])
    known |= {p.model for p in _payloads(events, ResponseStarted)}
    return sorted(known)


def _snapshot_due(run: PipelineRun, events: list[Event], snap_seq: int) -> bool:
    """Every SNAPSHOT_EVERY events, or at a step boundary. A run with thousands of
    responses spaces them by its size (a snapshot costs what the run holds to write, and
    to read: about what folding a sixteenth as many events costs), so the events folded
    after it cost no more than reading it, and writing one stays flat per event."""
    since = run.last_seq - snap_seq
    responses = len(run._indexes()[0])
    if since >= max(SNAPSHOT_EVERY, responses // _SNAPSHOT_SPACING):
        return True
    if run.last_seq < SNAPSHOT_EVERY:  # a short run folds in a millisecond: no snapshot
        return False
    return since >= _SNAPSHOT_AT_BOUNDARY and any(e.type in _BOUNDARIES for e in events)


@dataclass
class RunSummary:
    """The `run:{id}` record: what listings need without folding a history."""

    run_id: str
    pipeline: str
    status: str
    current_step: str
    step_index: int
    steps_total: int
    created_at: str
    updated_at: str
    last_seq: int
    own_from: int
    parent: str | None = None
    branch_point: str | None = None
    branch_seq: int | None = None
    style: str | None = None
    models: list[str] | None = None
    tokens: int = 0
    cost: float = 0.0
    priced: bool = True  # False: a model's price is unknown, so `cost` is not the whole
    title: str = ""
    user_id: str = "default"
    deleted: bool = False
    snap_seq: int = 0  # the seq of the run's latest snapshot (0: none yet)
    asked: list[str] | None = None  # every model asked in the run, for `runs --model`
    zdict: str | None = None  # the dictionary its records are compressed against
    packed: int = 0  # the seq up to which its records were re-packed at a step boundary
    replayed: bool = False  # a branch made by a replay (`writeit tree` marks it)
    replay_models: list[str] | None = None  # the models a replay chose for its first step

    def replay_note(self, parent: RunSummary | None) -> str:
        """ "replay from draft with scripted-c, style executive-brief": a replay's models
        and style where they differ from its parent's ("" for any other run)."""
        if not self.replayed:
            return ""
        changes = []
        if self.replay_models and (parent is None or self.replay_models != parent.models):
            changes.append(", ".join(self.replay_models))
        if parent is not None and self.style != parent.style:
            changes.append(f"style {self.style or 'none'}")
        return f"replay from {self.branch_point}" + (
            f" with {'; '.join(changes)}" if changes else ""
        )

    @classmethod
    def of(
        cls,
        run: PipelineRun,
        own_from: int,
        deleted: bool = False,
        snap_seq: int = 0,
        totals: tuple[int, float, bool] | None = None,
    ) -> RunSummary:
        """The summary of `run`; `totals` (tokens, cost) when the caller counted them
        from the previous summary, which spares summing every response."""
        source = run.user_inputs.get(next(iter(run.user_inputs), ""), "")
        tokens, cost, priced = (
            totals
            if totals is not None
            else (run.total_tokens, run.total_cost, run.known_cost is not None)
        )
        return cls(
            run_id=run.pipeline_run_id,
            pipeline=run.configuration_id,
            status=run.status.value,
            current_step=run.current_step,
            step_index=run.step_index,
            steps_total=len(run.pipeline.steps),
            created_at=run.created_at.isoformat(timespec="microseconds"),
            updated_at=run.updated_at.isoformat(timespec="microseconds"),
            last_seq=run.last_seq,
            own_from=own_from,
            parent=run.parent_pipeline_run_id,
            branch_point=run.branch_point,
            branch_seq=run.branch_seq,
            style=run.style_primer,
            models=run.models,
            tokens=tokens,
            cost=round(cost, 6),
            priced=priced,
            title=" ".join(source.split())[:80],
            user_id=run.user_id,
            deleted=deleted,
            snap_seq=snap_seq,
            replayed=run.replayed,
            replay_models=_replay_models(run),
        )


def _replay_models(run: PipelineRun) -> list[str] | None:
    """The models a replay asks at its branch point when it chose them: it records the
    whole per-step table and no run-wide list (None: it asks the parent's)."""
    if not run.replayed or run.models or run.branch_point not in run.step_models:
        return None
    return list(run.step_models[run.branch_point])


class Store:
    """One workspace's LMDB environment; safe across threads and processes."""

    def __init__(self, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        self.env = _open_env(self.path, map_size)
        self._check_schema()

    # --- writing -----------------------------------------------------------------

    def append(
        self,
        run: PipelineRun,
        events: list[Event],
        expected_seq: int,
        *,
        index: bool = True,
        extra: dict[str, Any] | None = None,
        slots: int | None = None,
    ) -> None:
        """Append events that `run` (already folded with them) reflects.

        `expected_seq` is the last seq the caller saw; if the log moved on, nothing
        is written and Conflict is raised. `index=False` skips the summary and
        indexes for pure streaming checkpoints, which change neither. With `slots`, the
        events start streams and are refused (TooManyRuns) when that many other runs
        are streaming in live processes: write transactions are serialised across
        processes, so the count and the claim are one step.
        """
        run_id = run.pipeline_run_id
        snapshot = self._snapshot(run, events) if index else None

        def write(txn: lmdb.Transaction) -> None:
            summary_raw = txn.get(f"run:{run_id}".encode())
            summary = records.decode(summary_raw) if summary_raw else None
            current = summary["last_seq"] if summary else 0
            if current != expected_seq:
                raise Conflict(
                    f"run {run_id[:8]} changed elsewhere "
                    f"(at event {current}, expected {expected_seq})",
                    hint="reload the run and try again",
                )
            stored = [records.stored(txn, event, run) for event in events]
            zdict = self._zdict(txn, summary, events, stored)
            dictionary = (zdict, records.dictionary(txn, zdict)) if zdict else None
            record = records.encode_record(stored, dictionary)
            txn.put(records.event_key(run_id, events[-1].seq), record, overwrite=False)
            packed = (summary or {}).get("packed", events[0].seq - 1)
            if index and any(e.type in _BOUNDARIES for e in events):
                packed = records.repack(txn, run_id, packed, dictionary)
            if slots is not None:
                running = self._live_count(txn, exclude=run_id)
                if running >= slots:
                    raise TooManyRuns(running, slots)
            own_from = summary["own_from"] if summary else events[0].seq
            if summary is None or index:
                deleted = any(e.type == EventType.RUN_DELETED for e in events) or bool(
                    summary and summary.get("deleted")
                )
                snap_seq = (summary or {}).get("snap_seq", 0)
                if snapshot is not None and snapshot[0] == snap_seq:
                    txn.put(f"snap:{run_id}".encode(), snapshot[1])
                    snap_seq = run.last_seq
                new = RunSummary.of(run, own_from, deleted, snap_seq, _totals(summary, events))
                new.asked = _asked(summary, events, run)
                new.zdict, new.packed = zdict, packed
                self._index(txn, run, events, summary, new)
            else:
                summary["last_seq"] = run.last_seq
                txn.put(f"run:{run_id}".encode(), records.encode(summary))
            if any(e.type in _STREAM_ENDS for e in events):
                self._track_live(txn, run, events)
            for key, value in (extra or {}).items():
                txn.put(key.encode(), value if isinstance(value, bytes) else records.encode(value))

        self._write(write)

    @staticmethod
    def _zdict(
        txn: lmdb.Transaction,
        summary: dict[str, Any] | None,
        events: list[Event],
        stored: list[dict[str, Any]],
    ) -> str | None:
        """The dictionary a run's records are compressed against: made with the run, a
        fork's its parent's, none for runs stored before schema 3."""
        if summary is not None:
            return summary.get("zdict")
        if events[0].type == EventType.RUN_CREATED:
            return records.new_dictionary(txn, stored[0]["data"])
        parent = events[0].data.get("parent")
        raw = txn.get(f"run:{parent}".encode()) if parent else None
        return records.decode(raw).get("zdict") if raw else None

    def _snapshot(self, run: PipelineRun, events: list[Event]) -> tuple[int, bytes] | None:
        """A snapshot to store with these events, if one is due: packed before the write
        transaction (which locks the store for every process), with the snap_seq it
        follows, so the write stores it only if no other snapshot landed meanwhile."""
        with self.env.begin() as txn:
            raw = txn.get(f"run:{run.pipeline_run_id}".encode())
        snap_seq = records.decode(raw).get("snap_seq", 0) if raw else 0
        return (snap_seq, records.pack(run)) if _snapshot_due(run, events, snap_seq) else None

    @staticmethod
    def _track_live(txn: lmdb.Transaction, run: PipelineRun, events: list[Event]) -> None:
        """Keep `live:{run}` while the run has a streaming response: what every process
        counts against `max_concurrent_pipelines` (a dead process's entry counts for
        nothing and goes on the run's next write)."""
        key = _LIVE + run.pipeline_run_id.encode()
        if not run.streaming_ids:
            txn.delete(key)
            return
        starts = [p for p in _payloads(events, ResponseStarted) if p.pid is not None]
        if starts:
            txn.put(
                key, records.encode({"pid": starts[-1].pid, "pid_started": starts[-1].pid_started})
            )

    @staticmethod
    def _live_count(txn: lmdb.Transaction, exclude: str = "") -> int:
        return sum(
            run_id != exclude and processes.alive(pid, since)
            for run_id, (pid, since) in Store._live_entries(txn).items()
        )

    @staticmethod
    def _live_entries(txn: lmdb.Transaction) -> dict[str, tuple[int, int | None]]:
        cursor = txn.cursor()
        found: dict[str, tuple[int, int | None]] = {}
        if not cursor.set_range(_LIVE):
            return found
        for key, value in cursor:
            if not key.startswith(_LIVE):
                break
            data = records.decode(value)
            found[key[len(_LIVE) :].decode()] = (data["pid"], data.get("pid_started"))
        return found

    def live_runs(self) -> dict[str, tuple[int, int | None]]:
        """Runs with streams recorded as live, and the process (pid, start) of each;
        whether that process still runs is for the caller to ask."""
        with self.env.begin() as txn:
            return self._live_entries(txn)

    def _index(
        self,
        txn: lmdb.Transaction,
        run: PipelineRun,
        events: list[Event],
        old: dict[str, Any] | None,
        new: RunSummary,
    ) -> None:
        run_id, user = new.run_id, new.user_id
        txn.put(f"run:{run_id}".encode(), records.encode(new.__dict__))
        if old is None:
            txn.put(
                f"run_by_config:{new.pipeline}:{new.created_at}:{run_id}".encode(), run_id.encode()
            )
            txn.put(f"run_by_user:{user}:{new.created_at}:{run_id}".encode(), run_id.encode())
            if new.parent:
                txn.put(f"branch_parent:{run_id}".encode(), new.parent.encode())
                children_key = f"branch_children:{new.parent}".encode()
                children = records.decode(txn.get(children_key)) if txn.get(children_key) else []
                txn.put(children_key, records.encode([*children, run_id]))
        else:
            txn.delete(f"recent_runs:{user}:{old['updated_at']}:{run_id}".encode())
        if not new.deleted:
            txn.put(f"recent_runs:{user}:{new.updated_at}:{run_id}".encode(), run_id.encode())
        if new.status == PipelineStatus.COMPLETED and (old or {}).get("status") != "completed":
            txn.put(f"completed_runs:{user}:{new.updated_at}:{run_id}".encode(), run_id.encode())
        self._index_steps(txn, run, events, fresh=old is None)
        self._index_lists(txn, old, new)
        stats.index(txn, run, events)  # an outcome record per decision, for win rates

    @staticmethod
    def _index_steps(
        txn: lmdb.Transaction, run: PipelineRun, events: list[Event], *, fresh: bool
    ) -> None:
        """The step, step_responses and response keys, written only where the
        events changed them (a new run or branch writes all it inherits)."""
        run_id = run.pipeline_run_id
        started: dict[str, list[str]] = {}
        for start in _payloads(events, ResponseStarted):
            started.setdefault(start.step, []).append(start.response_id)
            info = {"run_id": run_id, "step": start.step, "model": start.model}
            if start.pid is not None:
                info |= {"pid": start.pid, "pid_started": start.pid_started}
            txn.put(f"response:{start.response_id}".encode(), records.encode(info))
        changed = {e.step for e in events if e.step}
        if fresh:
            changed |= {name for name, step in run.steps.items() if step.ai_responses}
        for name in changed | set(started):
            step = run.steps.get(name)
            if step is None:
                continue
            key = f"step_responses:{run_id}:{name}".encode()
            if fresh:
                txn.put(key, records.encode([r.response_id for r in step.ai_responses]))
            elif name in started:
                known = txn.get(key)
                txn.put(
                    key, records.encode([*(records.decode(known) if known else []), *started[name]])
                )
            txn.put(
                f"step:{run_id}:{name}".encode(),
                records.encode(
                    {
                        "status": step.status.value,
                        "user_selection": step.user_selection,
                        "retry_count": step.retry_count,
                        "has_output": step.output is not None,
                    }
                ),
            )

    @staticmethod
    def _index_lists(txn: lmdb.Transaction, old: dict[str, Any] | None, new: RunSummary) -> None:
        """What listings filter by (status, pipeline, style, model: newest-updated first)
        and the count of runs per status, moved along with the run in the same write."""
        before, after = _list_keys(old), _list_keys(new.__dict__)
        for key in before - after:
            txn.delete(key)
        for key in after - before:
            txn.put(key, new.run_id.encode())
        was = None if old is None or old.get("deleted") else old["status"]
        now = None if new.deleted else new.status
        if was != now:
            for status, step in ((was, -1), (now, 1)):
                if status is not None:
                    key = f"count:{new.user_id}:{status}".encode()
                    count = int(txn.get(key) or 0) + step
                    txn.put(key, str(count).encode())

    def save_draft(self, run_id: str, name: str, text: str) -> None:
        """Keep what the writer is typing (feedback, guidance, a merge) beside the run, not
        in its history: it is not said yet. Empty text drops the draft."""
        key = f"draft:{run_id}:{name}".encode()
        if text:
            self._write(lambda txn: txn.put(key, records.encode(text)))
        else:
            self._write(lambda txn: txn.delete(key))

    def drafts(self, run_id: str) -> dict[str, str]:
        prefix = f"draft:{run_id}:"
        return {key[len(prefix) :]: self.get(key) for key in self.keys(prefix)}

    def active_session(self, user_id: str = "default") -> UserSession | None:
        with self.env.begin() as txn:
            session_id = txn.get(f"active_sessions:{user_id}".encode())
            raw = session_id and txn.get(f"session:{session_id.decode()}".encode())
            return UserSession.model_validate(records.decode(raw)) if raw else None

    # --- reading -----------------------------------------------------------------

    def summary(self, run_id: str) -> RunSummary:
        with self.env.begin() as txn:
            raw = txn.get(f"run:{run_id}".encode())
        if raw is None:
            raise UnknownRun(f"no run {run_id!r} in this workspace", hint="see `writeit runs`")
        return RunSummary(**records.decode(raw))

    def events(self, run_id: str, upto: int | None = None) -> list[Event]:
        """The run's whole lineage of events: inherited ones first, then its own."""
        with self.env.begin(buffers=True) as txn:
            return list(self._lineage(txn, run_id, upto))

    def tail(self, run_id: str, after: int, run: PipelineRun | None = None) -> list[Event]:
        """The run's own events after seq `after`: what a reader holding the run folded up
        to `after` still has to apply. That fold (`run`) resolves what their prompts
        reference from before `after`; without it, the history is folded when needed."""
        with self.env.begin(buffers=True) as txn:

            def before() -> PipelineRun | None:
                return fold(self._lineage(txn, run_id, after)) if after else None

            texts = records.Texts(txn, run if run is not None else before)
            return list(self._own_events(txn, run_id, after + 1, None, texts))

    def _lineage(self, txn: lmdb.Transaction, run_id: str, upto: int | None) -> Iterator[Event]:
        chain: list[tuple[str, int, int | None]] = []  # (run, first own seq, last seq wanted)
        current, limit = run_id, upto
        while current:
            raw = txn.get(f"run:{current}".encode())
            if raw is None:
                raise UnknownRun(f"no run {current!r} in this workspace", hint="see `writeit runs`")
            summary = records.decode(bytes(raw))
            chain.append((current, summary["own_from"], limit))
            parent_limit = summary.get("branch_seq")
            limit = parent_limit if limit is None else min(limit, parent_limit or limit)
            current = summary.get("parent")
        texts = records.Texts(txn)
        for owner, first, last in reversed(chain):
            yield from self._own_events(txn, owner, first, last, texts)

    def _own_events(
        self, txn: lmdb.Transaction, run_id: str, first: int, last: int | None, texts: records.Texts
    ) -> Iterator[Event]:
        cursor = txn.cursor()
        prefix = f"event:{run_id}:".encode()
        if not cursor.set_range(records.event_key(run_id, first)):
            return
        for key, value in cursor:  # a record is keyed by its last event's seq
            if not bytes(key).startswith(prefix):
                break
            for data in records.decode_record(txn, bytes(value)):
                if data["seq"] < first:
                    continue
                if last is not None and data["seq"] > last:
                    return
                yield Event(run_id=run_id, **texts.read(data))

    def load(self, run_id: str) -> PipelineRun:
        """The run now: its latest snapshot and the events after it (or a full fold)."""
        with self.env.begin(buffers=True) as txn:
            raw = txn.get(f"snap:{run_id}".encode())
            if raw is None:
                return fold(self._lineage(txn, run_id, None))
            run = records.unpack(raw)
            texts = records.Texts(txn, run, live=True)
            for event in self._own_events(txn, run_id, run.last_seq + 1, None, texts):
                apply(run, event)
            return run

    def state_at(self, run_id: str, seq: int) -> PipelineRun:
        """Time travel: the run as it stood right after event `seq`."""
        events = self.events(run_id, upto=seq)
        if not events or events[-1].seq != seq:
            last = self.summary(run_id).last_seq
            raise WriteItError(f"run {run_id[:8]} has no event {seq}", hint=f"choose 1..{last}")
        return fold(events)

    def ancestors(self, run_id: str) -> list[str]:
        ids = []
        with self.env.begin() as txn:
            current: bytes | None = run_id.encode()
            while current:
                ids.append(current.decode())
                current = txn.get(b"branch_parent:" + current)
        return list(reversed(ids))

    def children(self, run_id: str) -> list[str]:
        with self.env.begin() as txn:
            raw = txn.get(f"branch_children:{run_id}".encode())
        return records.decode(raw) if raw else []

    def recent(
        self,
        user_id: str = "default",
        limit: int | None = 50,
        status: str | None = None,
        pipeline: str | None = None,
        style: str | None = None,
        model: str | None = None,
    ) -> list[RunSummary]:
        """Runs newest-updated first, through an index (no history folding, no scan of
        runs the filter leaves out): the first filter given picks the index, the others
        are checked on each run it lists."""
        wanted = {"status": status, "pipeline": pipeline, "style": style, "model": model}
        given = [(field, value) for field, value in wanted.items() if value]
        prefix = (
            f"list:{user_id}:{given[0][0]}:{given[0][1]}:" if given else f"recent_runs:{user_id}:"
        ).encode()
        found: list[RunSummary] = []
        with self.env.begin() as txn:
            for run_id in _newest_first(txn, prefix):
                summary = RunSummary(**records.decode(txn.get(b"run:" + run_id)))
                if all(_matches(summary, field, value) for field, value in given[1:]):
                    found.append(summary)
                    if limit and len(found) >= limit:
                        break
        return found

    def counts(self, user_id: str = "default") -> dict[str, int]:
        """Runs per status (deleted ones left out), from counters kept with every write."""
        prefix = f"count:{user_id}:".encode()
        with self.env.begin() as txn:
            cursor = txn.cursor()
            found: dict[str, int] = {}
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    if int(value):
                        found[key[len(prefix) :].decode()] = int(value)
        return found

    def resolve(self, prefix: str) -> str:
        """A full run id from an unambiguous prefix."""
        prefix = prefix.strip()
        if not prefix:
            raise UnknownRun("no run id given", hint="see `writeit runs`")
        with self.env.begin() as txn:
            cursor = txn.cursor()
            key_prefix = f"run:{prefix}".encode()
            matches = []
            if cursor.set_range(key_prefix):
                for key in cursor.iternext(values=False):
                    if not key.startswith(key_prefix):
                        break
                    matches.append(key[4:].decode())
                    if len(matches) > 5:
                        break
        if not matches:
            raise UnknownRun(f"no run matches {prefix!r}", hint="see `writeit runs`")
        if len(matches) > 1:
            raise UnknownRun(
                f"{prefix!r} matches several runs: {', '.join(m[:12] for m in matches)}",
                hint="give more characters of the run id",
            )
        return matches[0]

    def get(self, key: str) -> Any:
        with self.env.begin() as txn:
            raw = txn.get(key.encode())
        return records.decode(raw) if raw else None

    def keys(self, prefix: str) -> list[str]:
        with self.env.begin() as txn:
            cursor = txn.cursor()
            raw_prefix = prefix.encode()
            if not cursor.set_range(raw_prefix):
                return []
            return [
                k.decode()
                for k in (key for key in cursor.iternext(values=False))
                if k.startswith(raw_prefix)
            ]

    # --- plumbing ----------------------------------------------------------------

    def _write(self, work: Callable[[lmdb.Transaction], T]) -> T:
        """Run `work` in one write transaction; grow the map and retry when it is full."""
        for _ in range(8):
            try:
                with self.env.begin(write=True) as txn:
                    return work(txn)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # another process grew it; adopt the new size
        raise StoreError(f"cannot grow the store at {self.path}", hint="check free disk space")

    def _check_schema(self) -> None:
        def check(txn: lmdb.Transaction) -> bytes | None:
            raw = txn.get(b"meta:schema")
            if raw is not None and int(raw) == 1:
                _migrate_from_1(txn)
            # 2 -> 3 rewrites nothing: a schema-2 record is one event with its texts
            # inline, which schema 3 reads as it is; the bump keeps older WriteIts,
            # which could not read references or packed records, out.
            # 3 -> 4 rewrites nothing either: a schema-3 snapshot reads as it is.
            if raw is None or int(raw) < SCHEMA_VERSION:
                txn.put(b"meta:schema", str(SCHEMA_VERSION).encode())
            if raw is None:  # a new store: every decision gets its outcome record
                stats.mark_indexed(txn)
            return raw

        raw = self._write(check)
        if raw is not None and int(raw) > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path} was written by a newer WriteIt (schema {int(raw)})",
                hint="upgrade WriteIt (pip install -U writeit); nothing was changed",
            )


def _migrate_from_1(txn: lmdb.Transaction) -> None:
    """Schema 1 had no listing indexes or counters: build them from the run records and
    the response keys (every model a run asked), in the one write that bumps the
    schema. Histories are untouched; snapshots come with each run's next write."""
    asked: dict[str, set[str]] = {}
    cursor = txn.cursor()
    if cursor.set_range(b"response:"):
        for key, value in cursor:
            if not key.startswith(b"response:"):
                break
            info = records.decode(value)
            asked.setdefault(info["run_id"], set()).add(info["model"])
    summaries = []
    if cursor.set_range(b"run:"):
        for key, value in cursor:
            if not key.startswith(b"run:"):
                break
            summaries.append(records.decode(value))
    for data in summaries:
        data["asked"] = sorted(asked.get(data["run_id"], set()) | set(data.get("models") or []))
        txn.put(f"run:{data['run_id']}".encode(), records.encode(data))
        Store._index_lists(txn, None, RunSummary(**data))


def _open_env(path: Path, map_size: int) -> lmdb.Environment:
    """One environment per path per process, as LMDB requires."""
    path = path.resolve()
    with _envs_lock:
        env = _envs.get(path)
        if env is not None:
            return env
        path.mkdir(parents=True, exist_ok=True)
        try:
            env = lmdb.open(str(path), map_size=map_size, max_dbs=1, subdir=True, metasync=False)
        except lmdb.VersionMismatchError as error:
            raise StoreError(
                f"the store at {path} was made by an incompatible LMDB version",
                hint="open it with the WriteIt version that created it; nothing was changed",
            ) from error
        except (lmdb.InvalidError, lmdb.CorruptedError) as error:
            raise StoreError(
                f"the store at {path} is damaged or not an LMDB store ({error})",
                hint="move the folder aside and restore it from a backup; WriteIt did not touch it",
            ) from error
        except lmdb.Error as error:
            raise StoreError(f"cannot open the store at {path}: {error}") from error
        _envs[path] = env
        return env
