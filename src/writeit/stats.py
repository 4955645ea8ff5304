"""Win rates: which models the writer chooses, from one outcome record per decision.

Every decision (a pick, a merge, a text written from candidates, a skip) gets an
outcome record, written by the store in the same transaction as the decision's event:

    outcome:{user}:{decided_at}:{run}:{step}:{seq:010d} -> [pipeline, style, how, blind,
        by, [[model, chosen, quality, cost, seconds, response id's first 12], ...]]

`decided_at` is fixed-width UTC (`20261130T125126.123456Z`), so `--since` is a range
scan and the other filters are a look at each record: `writeit stats` never folds a
run. A record is a bare list, its step in the key: parsing them is most of what `stats`
costs (40,000 for 10,000 four-step runs), and a list of scalars parses fastest.

Offered: the step's finished candidates of the attempt decided on, plus any earlier
response the decision used; chosen: the pick, or a source of a merge or of a text
written by hand; a skip chooses nothing. Costs and quality come from the run as folded
at the decision, so a later judge or rewind does not change what was counted.

A decision made in a fork is in the fork's own events only, so nothing counts twice;
a decision later replaced (rewind, choose again) still counts: it was made. A deleted
run's records go with it. Stores written before this module have none: `win_rates`
builds them once by replaying each run's own decisions (`meta:stats` marks a store
done; a new store is marked at creation). Records are in the store's own encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from writeit.errors import InvalidInput
from writeit.events import (
    Event,
    EventType,
    ResponseSelected,
    ResponsesMerged,
    StepSkipped,
    apply,
    new_run,
)
from writeit.models import PipelineRun, ResponseStatus

if TYPE_CHECKING:
    import lmdb

    from writeit.store import RunSummary, Store

DECIDING = {EventType.RESPONSE_SELECTED, EventType.RESPONSES_MERGED, EventType.STEP_SKIPPED}
INDEXED = b"meta:stats"  # VERSION: every decision in the store has its outcome record
VERSION = b"2"  # of the records' layout (1: named fields, never released)
_PREFIX = "outcome:"
_KEYS = "outcome_keys:"  # outcome_keys:{run} -> the run's outcome keys, to drop on delete
_AT = "%Y%m%dT%H%M%S.%fZ"
_BACKFILL_BATCH = 500  # runs per write transaction while indexing an older store


# --- writing (inside the store's write transaction) -----------------------------------------


def stamp(at: datetime) -> str:
    """A time as the fixed-width UTC text outcome keys sort by (naive means UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime(_AT)


def outcome(run: PipelineRun, event: Event) -> tuple[str, list[Any]]:
    """The key and record of one decision event, from `run` as folded with it."""
    decided = event.payload
    assert isinstance(decided, ResponseSelected | ResponsesMerged | StepSkipped)
    step = run.steps[decided.step]
    if isinstance(decided, ResponseSelected):
        chosen, how = [decided.response_id], "selected"
    elif isinstance(decided, ResponsesMerged):
        chosen = list(decided.response_ids)
        how = "merged" if decided.merge_response_id or decided.edited_from else "written"
    else:
        chosen, how = [], "skipped"
    shown = [c for c in step.candidates if c.status == ResponseStatus.COMPLETED]
    ids = {c.response_id for c in shown}
    earlier = {r.response_id: r for r in step.ai_responses if r.response_id not in ids}
    used = [earlier[i] for i in dict.fromkeys(chosen) if i in earlier]
    offered = [
        [
            r.model_name,
            int(r.response_id in chosen),
            r.quality_score,
            r.usage_stats.cost_usd if r.usage_stats else None,
            round(r.processing_time, 3),
            r.response_id[:12],  # 48 bits: enough to count a response once in the means
        ]
        for r in shown + used
    ]
    record = [
        run.configuration_id,
        run.style_primer,
        how,
        int(decided.blind),
        decided.by or "writer",
        offered,
    ]
    where = f"{run.user_id}:{stamp(event.at)}:{run.pipeline_run_id}:{decided.step}"
    return f"{_PREFIX}{where}:{event.seq:010d}", record


def index(txn: lmdb.Transaction, run: PipelineRun, events: list[Event]) -> None:
    """Write the outcome records of the decisions among `events` (the store's hook, in
    its write transaction), or drop the run's records when the events delete it."""
    run_id = run.pipeline_run_id
    if any(e.type == EventType.RUN_DELETED for e in events):
        _drop(txn, run_id)
        return
    found = [outcome(run, e) for e in events if e.type in DECIDING]
    if found:
        _put(txn, run_id, dict(found))


def _put(txn: lmdb.Transaction, run_id: str, records: dict[str, list[Any]]) -> None:
    for key, record in records.items():
        txn.put(key.encode(), _dump(record))
    known = txn.get(f"{_KEYS}{run_id}".encode())
    keys = _load(bytes(known)) if known else []
    keys += [k for k in records if k not in set(keys)]
    txn.put(f"{_KEYS}{run_id}".encode(), _dump(keys))


def _drop(txn: lmdb.Transaction, run_id: str) -> None:
    known = txn.get(f"{_KEYS}{run_id}".encode())
    for key in _load(bytes(known)) if known else []:
        txn.delete(key.encode())
    txn.delete(f"{_KEYS}{run_id}".encode())


def mark_indexed(txn: lmdb.Transaction) -> None:
    """A store that every decision reaches through `index` (one made by this version)."""
    txn.put(INDEXED, VERSION)


def _dump(value: Any) -> bytes:
    from writeit.store import _encode  # the store's encoding, like every other key

    return _encode(value)


def _load(raw: bytes) -> Any:
    from writeit.store import _decode

    return _decode(raw)


# --- indexing an older store, once ---------------------------------------------------------


def ensure_indexed(store: Store, announce: Callable[[int], None] | None = None) -> int:
    """Build the outcome records of a store written before them, once; how many runs
    were replayed (0 when the store was indexed already). `announce(runs)` is told
    first, since it takes a while on a large store. Safe to repeat or race: a record's
    key is the decision's own, so replaying writes the same keys again."""
    with store.env.begin() as txn:
        if txn.get(INDEXED) == VERSION:  # another version's records are rebuilt in place
            return 0
    summaries = [store.summary(key[len("run:") :]) for key in store.keys("run:")]
    runs = [s for s in summaries if not s.deleted]
    if announce is not None:
        announce(len(runs))
    for start in range(0, len(runs), _BACKFILL_BATCH):
        batch = {s.run_id: _replay(store, s) for s in runs[start : start + _BACKFILL_BATCH]}
        store._write(lambda txn, batch=batch: _put_all(txn, batch))
    store._write(mark_indexed)
    return len(runs)


def _replay(store: Store, summary: RunSummary) -> dict[str, list[Any]]:
    """The outcome records of the run's own decisions, each from the run as it stood
    right after it (a fork's inherited decisions are its parent's)."""
    own = store.tail(summary.run_id, summary.own_from - 1)
    if not any(e.type in DECIDING for e in own):
        return {}
    records: dict[str, list[Any]] = {}
    run: PipelineRun | None = None
    for event in store.events(summary.run_id):
        run = new_run(event) if run is None else apply(run, event)
        if event.type in DECIDING and event.seq >= summary.own_from:
            key, record = outcome(run, event)
            records[key] = record
    return records


def _put_all(txn: lmdb.Transaction, batch: dict[str, dict[str, list[Any]]]) -> None:
    for run_id, records in batch.items():
        if records:
            _put(txn, run_id, records)


# --- reading ---------------------------------------------------------------------------------


def parse_since(text: str) -> datetime:
    """An ISO date (`2026-11-01`, midnight UTC) or date and time (naive means UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"since {text!r} is not a date",
            hint="give an ISO date such as 2026-11-01 (or 2026-11-01T09:30 for a time, UTC)",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _model(name: str, counts: list[int], figures: list[tuple[Any, ...]]) -> dict[str, Any]:
    """One model's row: `counts` (offered, chosen, blind offered, blind chosen) and the
    (quality, cost, seconds) of each response offered, each counted once."""
    offered, chosen, blind_offered, blind_chosen = counts
    return {
        "model": name,
        "offered": offered,
        "chosen": chosen,
        "win_rate": _ratio(chosen, offered),
        "blind_offered": blind_offered,
        "blind_chosen": blind_chosen,
        "blind_win_rate": _ratio(blind_chosen, blind_offered),
        "mean_quality": _mean([q for q, _, _ in figures if q is not None], 4),
        "mean_cost_usd": _mean([c for _, c, _ in figures if c is not None], 6),
        "mean_seconds": _mean([s for _, _, s in figures], 3),
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: list[float], digits: int) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def win_rates(
    store: Store,
    *,
    pipeline: str | None = None,
    step: str | None = None,
    style: str | None = None,
    since: str | datetime | None = None,
    user_id: str = "default",
    announce: Callable[[int], None] | None = None,
    autopilot: bool = False,
) -> dict[str, Any]:
    """Per model: offered, chosen, win rate (all and blind decisions alone), mean quality,
    cost and seconds; and how many decisions and runs that covers. Models best first.
    The autopilot's picks (`writeit run --headless --pick`) say nothing of the writer's
    taste: counted only with `autopilot`."""
    start = stamp(parse_since(since) if isinstance(since, str) else since) if since else ""
    ensure_indexed(store, announce)
    counts: dict[str, list[int]] = {}
    figures: dict[str, tuple[str, Any, Any, Any]] = {}  # by response: counted once
    runs: set[bytes] = set()
    decisions = 0
    run_at = len(f"{_PREFIX}{user_id}:{stamp(datetime.now(UTC))}:")  # keys: fixed-width up to it
    for key, record in _raw(store, user_id, start, step):
        if (pipeline and record[0] != pipeline) or (style and record[1] != style):
            continue
        if not autopilot and str(record[4] or "").startswith("autopilot"):
            continue
        decisions += 1
        runs.add(key[run_at : key.index(b":", run_at)])
        blind = record[3]
        for model, chosen, quality, cost, seconds, response in record[5]:
            tally = counts.get(model)
            if tally is None:
                tally = counts[model] = [0, 0, 0, 0]
            tally[0] += 1
            tally[1] += chosen
            if blind:
                tally[2] += 1
                tally[3] += chosen
            figures[response] = (model, quality, cost, seconds)
    by_model: dict[str, list[tuple[Any, ...]]] = {model: [] for model in counts}
    for model, *figure in figures.values():
        by_model[model].append(tuple(figure))
    models = [_model(model, tally, by_model[model]) for model, tally in counts.items()]
    models.sort(key=lambda m: (-(m["win_rate"] or 0.0), -m["offered"], m["model"]))
    return {"models": models, "decisions": decisions, "runs": len(runs)}


def _raw(
    store: Store, user_id: str, start: str, step: str | None
) -> Iterator[tuple[bytes, list[Any]]]:
    """(key, record) from `start` on; a step filter is checked on the key, before the
    record is parsed."""
    from writeit.store import _decode

    prefix = f"{_PREFIX}{user_id}:".encode()
    at_step = f":{step}:".encode() if step else None
    with store.env.begin() as txn:
        cursor = txn.cursor()
        if not cursor.set_range(prefix + start.encode()):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            if at_step is None or key[-len(at_step) - 10 :][: len(at_step)] == at_step:
                yield key, _decode(value)


def known(store: Store, user_id: str = "default") -> dict[str, list[str]]:
    """The pipelines, steps and styles decisions were made in: what a filter that found
    nothing could have named instead."""
    found: dict[str, set[str]] = {"pipeline": set(), "step": set(), "style": set()}
    for key, record in _raw(store, user_id, "", None):
        found["pipeline"].add(record[0])
        found["step"].add(key.decode().rsplit(":", 2)[1])
        if record[1]:
            found["style"].add(record[1])
    return {name: sorted(values) for name, values in found.items()}


def records(store: Store, user_id: str = "default") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every outcome record, oldest decision first, with its fields named (to read, not
    to count: `win_rates` reads them bare)."""
    names = ("model", "chosen", "quality", "cost", "seconds", "response")
    for raw, (pipeline, style, how, blind, by, offered) in _raw(store, user_id, "", None):
        key = raw.decode()
        run_id, step = key.rsplit(":", 3)[1:3]
        yield (
            key,
            {
                "run_id": run_id,
                "pipeline": pipeline,
                "style": style,
                "step": step,
                "how": how,
                "blind": bool(blind),
                "by": by,
                "offered": [
                    dict(zip(names, o, strict=True)) | {"chosen": bool(o[1])} for o in offered
                ],
            },
        )
