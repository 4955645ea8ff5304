"""How a run's history is laid out in LMDB values (the keys are in docs/data-model.md).

Each long text is stored once: the pipeline and style as shared texts (`text:{digest}`),
the inputs in the run's first event, a step's prompt as its literal pieces and
references to the texts it was rendered from (an input, a chosen response, a merged
text). A commit's events are one record, compressed against the run's dictionary (its
templates and style) and packed with the rest of its step at a step boundary, so a
run's answers and its source are compressed together. `Texts` resolves the references while a history is
read in order. Snapshots (`pack`/`unpack`) hold a folded run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any

import lmdb
from pydantic import TypeAdapter

from writeit.events import Event, EventType
from writeit.models import (
    AIResponse,
    LazyResponses,
    PipelineRun,
    ResponseStatus,
    StepState,
    Unread,
    WriteItError,
)

_COMPRESS_OVER = 400  # bytes of JSON before zlib pays for itself
_DELTAS = {
    EventType.RESPONSE_PROGRESS,
    EventType.RESPONSE_COMPLETED,
    EventType.RESPONSE_FAILED,
}


class StoreError(WriteItError):
    """The store cannot be opened or written safely; nothing was changed."""


def encode(value: Any) -> bytes:
    raw = json.dumps(value, separators=(",", ":"), default=str).encode()
    if len(raw) > _COMPRESS_OVER:
        return b"z" + zlib.compress(raw, 6)
    return b"j" + raw


def decode(blob: bytes) -> Any:
    if blob[:1] == b"z":
        return json.loads(zlib.decompress(blob[1:]))
    return json.loads(blob[1:])


def encode_record(events: list[dict[str, Any]], dictionary: tuple[str, bytes] | None) -> bytes:
    """The events of one commit as one value (one event as itself): a record per event
    cost LMDB a node each. Compressed against the run's dictionary when it has one."""
    raw = json.dumps(events[0] if len(events) == 1 else events, separators=(",", ":")).encode()
    if len(raw) <= _COMPRESS_OVER:
        return b"j" + raw
    if dictionary is None:
        return b"z" + zlib.compress(raw, 6)
    name, data = dictionary
    packer = zlib.compressobj(6, zdict=data)
    return b"d" + name.encode() + packer.compress(raw) + packer.flush()


def decode_record(txn: lmdb.Transaction, blob: bytes) -> list[dict[str, Any]]:
    if blob[:1] == b"d":
        name = blob[1 : 1 + _DICTIONARY_ID].decode()
        unpacker = zlib.decompressobj(zdict=dictionary(txn, name))
        value = json.loads(unpacker.decompress(blob[1 + _DICTIONARY_ID :]))
    else:
        value = decode(blob)
    return value if isinstance(value, list) else [value]


_DICTIONARY_ID = 16  # hex characters naming a dictionary (`zdict:{id}`)
_DICTIONARY_SIZE = 32 * 1024  # zlib's window: a longer preset dictionary is cut to its end
_dictionaries: dict[str, bytes] = {}  # immutable (content addressed): cached per process


def new_dictionary(txn: lmdb.Transaction, created: dict[str, Any]) -> str | None:
    """A run's compression dictionary, from its `run_created` as stored: the shared
    texts its records repeat words of (the step templates, which every prompt repeats,
    and the style). Stored as the list of those texts: a few digests, not a copy."""
    values = [created.get("pipeline"), created.get("style_prompt")]
    refs = [v["$text"] for v in values if isinstance(v, dict) and set(v) == {"$text"}]
    if not refs:
        return None
    raw = encode(refs)
    name = hashlib.sha256(raw).hexdigest()[:_DICTIONARY_ID]
    txn.put(f"zdict:{name}".encode(), raw, overwrite=False)
    return name


def dictionary(txn: lmdb.Transaction, name: str) -> bytes:
    data = _dictionaries.get(name)
    if data is not None:
        return data
    raw = txn.get(f"zdict:{name}".encode())
    if raw is None:
        raise StoreError("the store lost a compression dictionary", hint="restore a backup")
    pieces = []
    for digest in decode(bytes(raw)):
        value = _get_shared(txn, {"$text": digest}, "a compression dictionary")
        if isinstance(value, dict):  # a pipeline: its templates
            value = "\n".join(step.get("template", "") for step in value.get("steps", []))
        pieces.append(value)
    data = "\n".join(pieces).encode()[-_DICTIONARY_SIZE:]
    if len(_dictionaries) >= 256:
        _dictionaries.clear()
    _dictionaries[name] = data
    return data


_SNAPSHOT_RAW_OVER = 1 << 20  # a snapshot larger than this is stored uncompressed
_SHARED_FIELDS = ("pipeline", "primer", "style_prompt")  # the same in most runs
_SHARE_OVER = 200  # characters: a text this long is stored once and referenced


def _put_shared(txn: lmdb.Transaction, value: Any) -> dict[str, str]:
    """Store `value` once per workspace (`text:{digest}`, content addressed) and return
    the reference that stands for it in an event."""
    raw = encode(value)
    digest = hashlib.sha256(raw).hexdigest()[:32]
    txn.put(f"text:{digest}".encode(), raw, overwrite=False)
    return {"$text": digest}


def _get_shared(txn: lmdb.Transaction, value: Any, name: str) -> Any:
    """The value a `{"$text": digest}` reference stands for (anything else as it is)."""
    if not (isinstance(value, dict) and set(value) == {"$text"}):
        return value
    raw = txn.get(f"text:{value['$text']}".encode())
    if raw is None:
        raise StoreError(f"the store lost a shared text ({name})", hint="restore a backup")
    return decode(bytes(raw))


def _share(txn: lmdb.Transaction, data: dict[str, Any]) -> dict[str, Any]:
    """A run's pipeline and style, stored once per workspace and referenced from the
    run's first event: most runs share them. (Its inputs stay in the event: a text of
    1.4-4 KB on its own would take an LMDB page, packed with the run it costs its bytes.)"""
    shared = dict(data)
    for name in _SHARED_FIELDS:
        if shared.get(name):
            shared[name] = _put_shared(txn, shared[name])
    return shared


def _unshare(txn: lmdb.Transaction, data: dict[str, Any]) -> dict[str, Any]:
    for name in _SHARED_FIELDS:
        if name in data:
            data[name] = _get_shared(txn, data[name], name)
    if "inputs" in data:
        data["inputs"] = {k: _get_shared(txn, v, k) for k, v in data["inputs"].items()}
    return data


def _sources(run: PipelineRun) -> list[tuple[str, dict[str, str] | None]]:
    """The long texts a step's prompt is rendered from, with the reference each is
    stored as: an input by its name and a chosen response by its id (their texts are in
    the run's own events), a merged or hand-written output as a shared text (None)."""
    found: list[tuple[str, dict[str, str] | None]] = [
        (value, {"$in": name})
        for name, value in run.user_inputs.items()
        if len(value) >= _SHARE_OVER
    ]
    for step in run.steps.values():
        text = step.output
        if text is None or len(text) < _SHARE_OVER:
            continue
        chosen = step.ai_responses[step.user_selection] if step.user_selection is not None else None
        if chosen is not None and chosen.processed_content == text:
            found.append((text, {"$r": chosen.response_id}))
        else:
            found.append((text, None))
    return sorted(found, key=lambda source: -len(source[0]))


def _prompt_parts(txn: lmdb.Transaction, prompt: str, run: PipelineRun) -> Any:
    """A step's prompt as literal pieces and references to the texts it was rendered
    from (the source and earlier outputs are most of every prompt): `{"$parts": [...]}`,
    or the prompt itself when it holds none of them."""
    spans: list[tuple[int, int, dict[str, str] | None, str]] = []
    for text, ref in _sources(run):
        at = prompt.find(text)
        while at >= 0:
            end = at + len(text)
            if not any(at < e and s < end for s, e, _, _ in spans):
                spans.append((at, end, ref, text))
            at = prompt.find(text, end)
    if not spans:
        return prompt
    parts: list[Any] = []
    at = 0
    for start, end, ref, text in sorted(spans, key=lambda span: span[0]):
        if start > at:
            parts.append(prompt[at:start])
        parts.append(ref if ref is not None else _put_shared(txn, text))
        at = end
    if at < len(prompt):
        parts.append(prompt[at:])
    return {"$parts": parts}


class Texts:
    """What references in stored events stand for, while a history is read in order:
    shared texts from the store; a response's text from the run as it stood before the
    events read (`base`: a snapshot, a cached run, or how to fold it when first needed)
    plus their deltas. `live`: `base` is the run being folded as the events are read,
    already holding every delta."""

    def __init__(
        self,
        txn: lmdb.Transaction,
        base: PipelineRun | Callable[[], PipelineRun] | None = None,
        *,
        live: bool = False,
    ) -> None:
        self.txn, self._base, self.live = txn, base, live
        self.streamed: dict[str, list[str]] = {}
        self.inputs: dict[str, str] | None = None  # the run's, once its first event is read

    @property
    def base(self) -> PipelineRun | None:
        if callable(self._base):
            self._base = self._base()
        return self._base

    def read(self, data: dict[str, Any]) -> dict[str, Any]:
        """A stored event's data as it was appended (references resolved)."""
        kind, payload = data["type"], data["data"]
        if kind == EventType.RUN_CREATED:
            data["data"] = _unshare(self.txn, payload)
            self.inputs = data["data"].get("inputs") or {}
        elif kind == EventType.STEP_STARTED and isinstance(payload.get("prompt"), dict):
            payload["prompt"] = "".join(self._part(p) for p in payload["prompt"]["$parts"])
        elif kind == EventType.RESPONSES_MERGED:
            payload["text"] = _get_shared(self.txn, payload.get("text"), "a merged text")
        elif kind in _DELTAS and not self.live:
            self.streamed.setdefault(payload["response_id"], []).append(payload.get("delta", ""))
        return data

    def _part(self, part: str | dict[str, str]) -> str:
        if isinstance(part, str):
            return part
        if "$text" in part:
            return _get_shared(self.txn, part, "a prompt's source")
        if "$in" in part:
            inputs = self.inputs if self.inputs is not None else self._base_inputs()
            return inputs[part["$in"]]
        return self._response(part["$r"])

    def _base_inputs(self) -> dict[str, str]:
        if self.base is None:
            raise StoreError(
                "a prompt refers to an input its history lacks", hint="restore a backup"
            )
        return self.base.user_inputs

    def _response(self, response_id: str) -> str:
        deltas = self.streamed.get(response_id, [])
        if self.base is not None:
            with contextlib.suppress(WriteItError):
                raw = self.base.find_response(response_id)[1].raw_output
                return (raw + "".join(deltas)).strip()
        if response_id not in self.streamed:
            raise StoreError(
                f"a prompt refers to response {response_id}, which its history lacks",
                hint="restore a backup",
            )
        return "".join(deltas).strip()


def stored(txn: lmdb.Transaction, event: Event, run: PipelineRun) -> dict[str, Any]:
    """An event as stored: without its run id, long texts it repeats as references
    (`_share`, `_prompt_parts`, a long merged text shared), compressed when large."""
    stored = event.model_dump(mode="json", exclude={"run_id"})
    data = stored["data"]
    if event.type == EventType.RUN_CREATED:
        stored["data"] = _share(txn, data)
    elif event.type == EventType.STEP_STARTED and data.get("prompt"):
        data["prompt"] = _prompt_parts(txn, data["prompt"], run)
    elif event.type == EventType.RESPONSES_MERGED and len(data["text"]) >= _SHARE_OVER:
        data["text"] = _put_shared(txn, data["text"])
    return stored


# Repeated in every response of a step (its prompt) and of a run (the style): a snapshot
# stores each prompt once, in a table beside the run. A completed response's processed
# text is its raw text stripped: not stored twice.
_REPEATS = {"prompt_used", "system_prompt", "processed_content", "raw_output"}
_SHARED = {"steps": {"__all__": {"ai_responses": {"__all__": _REPEATS}}}}


_FORMAT = b"2"  # after a snapshot's marker: earlier attempts packed apart, read lazily
# (Their ids stay in their JSON as well as the table: without them, pydantic would make
# a new uuid4 for each as it parses, which costs more than the bytes saved.)
_EARLIER = {"__all__": _REPEATS}
_RESPONSES: TypeAdapter[list[AIResponse]] = TypeAdapter(list[AIResponse])


def _unread_count(step: StepState, responses: list[AIResponse]) -> int:
    """How many of a step's first responses a snapshot packs apart, to be parsed only
    when read: those of attempts before the latest (none streaming). A step asked again
    a thousand times is then opened at the cost of its latest attempt."""
    count = 0
    for response in responses:
        if response.attempt >= step.attempt or response.status == ResponseStatus.STREAMING:
            break
        count += 1
    return count


def pack(run: PipelineRun) -> bytes:
    """A snapshot of the folded state, in two parts. What opening a run reads: a table of
    the prompts (each response repeats its step's), the run as pydantic writes its JSON
    (several times faster than building dicts) without its responses' texts nor its
    steps' earlier attempts, then the texts as one UTF-8 block (parsing megabytes of
    JSON strings costs more than slicing them out of bytes). Then what is read only when
    asked for: each step's earlier attempts (`_unread_count`), their JSON and texts.
    Small snapshots are compressed, each part apart: opening inflates only the first."""
    prompts: dict[str, int] = {}
    styles: dict[str, int] = {run.style_prompt: 0}  # a replay may change the style
    order, style, lengths = [], [], []
    texts, blocks, earlier_texts = [], [], []
    unread: dict[str, dict[str, Any]] = {}
    steps: dict[str, StepState] = {}
    for name, step in run.steps.items():
        responses = list(step.ai_responses)
        count = _unread_count(step, responses)
        for position, response in enumerate(responses):
            order.append(prompts.setdefault(response.prompt_used, len(prompts)))
            style.append(styles.setdefault(response.system_prompt, len(styles)))
            text = response.raw_output.encode()
            lengths.append(len(text))
            (earlier_texts if position < count else texts).append(text)
        if count:
            earlier = responses[:count]
            blocks.append(_RESPONSES.dump_json(earlier, exclude=_EARLIER))
            last = max(r.attempt for r in earlier)
            ids = [r.response_id for r in earlier]
            unread[name] = {"ids": ids, "last": last, "size": len(blocks[-1])}
        steps[name] = step.model_copy(update={"ai_responses": responses[count:]})
    table = {"prompts": list(prompts), "order": order, "texts": lengths}
    if len(styles) > 1:
        table |= {"styles": list(styles), "style": style}
    if unread:
        table["unread"] = unread
    head = json.dumps(table).encode()
    body = run.model_copy(update={"steps": steps}).model_dump_json(exclude=_SHARED).encode()
    front = [len(head).to_bytes(4, "big"), head, len(body).to_bytes(4, "big"), body, *texts]
    opened, later = b"".join(front), b"".join([*blocks, *earlier_texts])
    if len(opened) + len(later) > _SNAPSHOT_RAW_OVER:
        return b"S" + _FORMAT + opened + later  # inflating megabytes costs more than parsing
    opened = zlib.compress(opened, 1)
    return b"s" + _FORMAT + len(opened).to_bytes(4, "big") + opened + zlib.compress(later, 1)


class _Later:
    """A snapshot's second part (earlier attempts): copied out of the store's buffer as
    it is stored, inflated when the first step's earlier attempts are read."""

    def __init__(self, compressed: bool) -> None:
        self.stored = b""
        self.steps = 0  # steps still to parse their part: the bytes go with the last
        self._compressed = compressed
        self._data: memoryview | None = None

    def data(self) -> memoryview:
        if self._data is None:
            stored, self.stored = self.stored, b""
            self._data = memoryview(zlib.decompress(stored) if self._compressed else stored)
        return self._data

    def done(self) -> None:
        self.steps -= 1
        if self.steps == 0:
            self._data = None


class _Texts:
    """Where a snapshot's response texts and their prompts are: filled into responses
    parsed without them, in the order they were packed."""

    def __init__(self, head: dict[str, Any], style_prompt: str) -> None:
        self.prompts, self.order, self.lengths = head["prompts"], head["order"], head["texts"]
        self.styles = head.get("styles") or [style_prompt]
        self.style = head.get("style")

    def span(self, first: int, count: int) -> int:
        return sum(self.lengths[first : first + count])

    def fill(self, responses: list[AIResponse], texts: memoryview, first: int) -> None:
        """Put texts `first`... (in `texts`, from its start) into `responses`."""
        at = 0
        for i, response in enumerate(responses, first):
            # Straight into the fields: pydantic's setattr hook would cost more than the
            # whole JSON parse for a run of a few thousand responses.
            fields = response.__dict__
            length = self.lengths[i]
            fields["raw_output"] = str(texts[at : at + length], "utf-8")
            at += length
            fields["prompt_used"] = self.prompts[self.order[i]]
            fields["system_prompt"] = self.styles[self.style[i] if self.style else 0]
            if response.status == ResponseStatus.COMPLETED:
                fields["processed_content"] = fields["raw_output"].strip()

    def parse(
        self, later: _Later, block: tuple[int, int], texts: int, first: int, ids: list[str]
    ) -> list[AIResponse]:
        """A step's earlier attempts, when first read (see `LazyResponses`): their JSON at
        `block` in the second part, their texts from `texts` on."""
        data = later.data()
        responses = _RESPONSES.validate_json(bytes(data[block[0] : block[1]]))
        if [r.response_id for r in responses] != ids:
            raise StoreError(
                "a snapshot's responses do not match its table", hint="restore a backup"
            )
        self.fill(responses, data[texts:], first)
        later.done()
        return responses


def unpack(blob: bytes | memoryview) -> PipelineRun:
    """The run a snapshot holds; `blob` may be LMDB's own buffer (a large snapshot's
    texts are decoded from it straight, not copied twice first). Its second part, the
    steps' earlier attempts, is copied out as stored and parsed when read."""
    view = memoryview(blob)
    raw_kind, two_parts = view[:1] == b"S", view[1:2] == _FORMAT
    data = view[2:] if two_parts else view[1:]  # no format byte: a snapshot of schema 3
    if raw_kind:
        raw = data
    elif two_parts:
        size = int.from_bytes(data[:4], "big")
        raw = memoryview(zlib.decompress(data[4 : 4 + size]))
        data = data[4 + size :]
    else:
        raw = memoryview(zlib.decompress(data))
    size = int.from_bytes(raw[:4], "big")
    head = json.loads(bytes(raw[4 : 4 + size]))
    at = 4 + size
    size = int.from_bytes(raw[at : at + 4], "big")
    run = PipelineRun.model_validate_json(bytes(raw[at + 4 : at + 4 + size]))
    at += 4 + size
    unread: dict[str, dict[str, Any]] = head.get("unread") or {}
    texts, first = _Texts(head, run.style_prompt), 0
    later = _Later(compressed=not raw_kind)
    block_at, earlier_at = 0, sum(spec["size"] for spec in unread.values())
    for name, step in run.steps.items():
        loaded = step.ai_responses
        spec = unread.get(name)
        if spec:
            count = len(spec["ids"])
            block = (block_at, block_at + spec["size"])
            parse = partial(texts.parse, later, block, earlier_at, first, spec["ids"])
            lazy = LazyResponses(Unread(spec["ids"], spec["last"], parse), loaded)
            step.__dict__["ai_responses"] = lazy
            block_at, earlier_at = block[1], earlier_at + texts.span(first, count)
            later.steps += 1
            first += count
        span = texts.span(first, len(loaded))
        texts.fill(loaded, raw[at : at + span], first)
        at, first = at + span, first + len(loaded)
    if unread:  # the second part follows the first (stored) or the first's stream
        later.stored = bytes(data[at:] if raw_kind else data)
    return run


_REPACK_MOST = 64  # records re-packed into one at a step boundary, at most
_REPACK_ONTO = 24 * 1024  # bytes: a packed record smaller than this takes in the next step


def repack(
    txn: lmdb.Transaction, run_id: str, since: int, dictionary: tuple[str, bytes] | None
) -> int:
    """The run's records after seq `since` (the step that just ended), re-packed into one
    record with the packed one before them while it is small: the same events,
    compressed together. LMDB gives a value of 1.4-4 KB (a compressed answer) a page of
    its own, and a run's answers share most of their words: a 4-step run takes half the
    pages. Returns the seq now packed up to."""
    cursor = txn.cursor()
    prefix = f"event:{run_id}:".encode()
    keys: list[bytes] = []
    events: list[dict[str, Any]] = []
    before = txn.get(event_key(run_id, since)) if since else None
    start = since if before is not None and len(before) < _REPACK_ONTO else since + 1
    try:
        if cursor.set_range(event_key(run_id, start)):
            for key, value in cursor:
                if not key.startswith(prefix) or len(keys) == _REPACK_MOST:
                    break
                keys.append(bytes(key))
                events += decode_record(txn, bytes(value))
    except (ValueError, zlib.error, StoreError):  # a damaged record: all left as written
        return since
    if len(keys) == _REPACK_MOST:
        return int(keys[-1][len(prefix) :])  # a long step: left as it was written
    if len(keys) > 1:
        for key in keys:
            txn.delete(key)
        txn.put(keys[-1], encode_record(events, dictionary))
    return events[-1]["seq"] if events else since


def event_key(run_id: str, seq: int) -> bytes:
    return f"event:{run_id}:{seq:010d}".encode()
