"""Scale fixtures for `make bench`: stores as a writer who used WriteIt for years has them.

- `cycles`: runs of 10, 100, 600 and 1,000 feedback + regenerate cycles, made through
  the engine's public methods with the prose models (7 events a cycle).
- `chain`: a 1,000-deep fork chain, each fork made by `Engine.fork` and given its own
  feedback (what a writer trying variation after variation leaves).
- `runs`: 1,000 and 100,000 runs written through `Store.append` with the fewest events
  that make a valid run (a skeleton pipeline; a few statuses), for listings and filters.
- `memory` (run as `python scale.py memory`): RSS of one engine as 250 runs are made.

Fixtures are built in a child process (on /dev/shm when it has room: fsync is free
there and nothing measured depends on it), then copied to a cache under the system temp
folder. A cached fixture is reused only when every file that could shape it (all of
src/writeit, this file, the instant models), Python, LMDB and the sizes are the same,
so a change to the core rebuilds it. Measurements that write copy the fixture first.
`WRITEIT_BENCH_CACHE=0` rebuilds every time; `WRITEIT_BENCH_QUICK=1` shrinks every size
about tenfold for development (the figures then name the sizes they used).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src" / "writeit"
PROSE_MODELS = ["prose-a", "prose-b"]
FIXTURE_VERSION = 1  # bump when a builder's output changes in a way the hash cannot see


def _env_ints(name: str, default: list[int]) -> list[int]:
    raw = os.environ.get(name)
    return [int(x) for x in raw.split(",")] if raw else default


@dataclass(frozen=True)
class Sizes:
    """How big each fixture is; env knobs (comma lists) override, QUICK shrinks all."""

    cycles: list[int] = field(default_factory=lambda: [10, 100, 1000])
    feedback_cycles: int = 600
    chain: int = 1000
    chain_walk: int = 100  # the store rows' fork-chain depth (a link of the same chain)
    runs: list[int] = field(default_factory=lambda: [1000, 100_000])
    memory_runs: int = 250
    memory_warmup: int = 30
    disk_runs: int = 20

    @classmethod
    def from_env(cls) -> Sizes:
        quick = os.environ.get("WRITEIT_BENCH_QUICK") == "1"
        base = cls([10, 30, 100], 60, 100, 20, [1000, 10_000], 50, 10, 5) if quick else cls()
        return cls(
            cycles=_env_ints("WRITEIT_BENCH_CYCLES", base.cycles),
            feedback_cycles=_env_ints("WRITEIT_BENCH_FEEDBACK_CYCLES", [base.feedback_cycles])[0],
            chain=_env_ints("WRITEIT_BENCH_CHAIN", [base.chain])[0],
            chain_walk=min(base.chain_walk, _env_ints("WRITEIT_BENCH_CHAIN", [base.chain])[0]),
            runs=_env_ints("WRITEIT_BENCH_RUNS", base.runs),
            memory_runs=_env_ints("WRITEIT_BENCH_MEMORY_RUNS", [base.memory_runs])[0],
            memory_warmup=base.memory_warmup,
            disk_runs=_env_ints("WRITEIT_BENCH_DISK_RUNS", [base.disk_runs])[0],
        )


# --- the fixture cache ------------------------------------------------------------------

_TEMPS: list[Path] = []
_FAILED: set[str] = set()


def temp_dir(prefix: str) -> Path:
    """A folder removed by `cleanup()` at the end of the bench."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _TEMPS.append(path)
    return path


def cleanup() -> None:
    for path in _TEMPS:
        shutil.rmtree(path, ignore_errors=True)
    _TEMPS.clear()


def _source_digest() -> str:
    """Everything a fixture's bytes could depend on."""
    import lmdb

    digest = hashlib.sha256(f"{FIXTURE_VERSION}|{sys.version}|{lmdb.version()}".encode())
    files = sorted(p for p in SRC.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [*files, HERE / "scale.py", HERE / "instant_model.py"]:
        digest.update(str(path.relative_to(HERE.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> Path | None:
    """Per user and per checkout, so concurrent checkouts never prune each other's; None
    (no cache) unless the folder is ours alone: a store planted in a shared /tmp by
    someone else must never be measured as ours."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    mine = Path(tempfile.gettempdir()) / f"writeit-bench-cache-{uid}"
    with contextlib.suppress(FileExistsError):
        mine.mkdir(mode=0o700)
    info = mine.lstat()
    if mine.is_symlink() or info.st_uid != uid or info.st_mode & 0o077:
        return None
    checkout = hashlib.sha256(str(HERE.parent).encode()).hexdigest()[:10]
    return mine / checkout


def _build_dir() -> Path:
    """Where a child process builds: tmpfs when it has room (fsync costs nothing)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 << 30:
        return Path(tempfile.mkdtemp(prefix="writeit-bench-build-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="writeit-bench-build-"))


def fixture(name: str, sizes: Sizes) -> tuple[Path, dict]:
    """A WRITEIT_HOME holding fixture `name`, and its manifest; built if not cached.

    The home returned is the cache itself: copy it (`scratch_copy`) before writing."""
    shape = json.dumps(_shaping(name, sizes), sort_keys=True)
    key = f"{name}-{_source_digest()}-{hashlib.sha256(shape.encode()).hexdigest()[:8]}"
    if name in _FAILED:
        raise RuntimeError(f"fixture {name} failed to build earlier in this bench")
    root = _cache_root() if os.environ.get("WRITEIT_BENCH_CACHE") != "0" else None
    final = root / key if root else temp_dir(f"writeit-bench-{name}-") / "home"
    if not (final / "manifest.json").exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            _build(name, sizes, final)
        except Exception:
            _FAILED.add(name)
            raise
        if root:
            _prune(root, name, keep=final)
    return final, json.loads((final / "manifest.json").read_text())


def _shaping(name: str, sizes: Sizes) -> dict:
    """The sizes fixture `name` depends on (a change to another's rebuilds nothing)."""
    fields = {
        "cycles": ("cycles", "feedback_cycles"),
        "chain": ("chain", "chain_walk"),
        "runs": ("runs",),
    }[name]
    return {f: getattr(sizes, f) for f in fields}


def _build(name: str, sizes: Sizes, final: Path) -> None:
    work = _build_dir()
    home = work / "home"
    started = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, str(HERE / "scale.py"), "build", name, str(home)],
            check=True,
            env={**os.environ, "WRITEIT_BENCH_SIZES": json.dumps(asdict(sizes))},
        )
        staging = final.with_name(f"{final.name}.building-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(home, staging, symlinks=True)
        try:
            staging.rename(final)  # atomic: a half-copied fixture is never found
        except OSError:  # another bench built it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"  built fixture {name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def _prune(root: Path, name: str, keep: Path) -> None:
    """Drop this checkout's builds of the same fixture made by other code (builds of
    other sizes stay: the quick and the full bench take turns); half-built ones only
    once abandoned, since another bench may be copying one now."""
    if not root.is_dir():
        return
    code = keep.name.rsplit("-", 1)[0]  # name-digest
    for old in root.glob(f"{name}-*"):
        abandoned = time.time() - old.stat().st_mtime > 3600  # a build that was killed
        if ".building-" in old.name:
            if abandoned:
                shutil.rmtree(old, ignore_errors=True)
        elif not old.name.startswith(code + "-"):
            shutil.rmtree(old, ignore_errors=True)


def scratch_copy(home: Path) -> Path:
    """A private copy of a fixture home, for measurements that write."""
    target = temp_dir("writeit-bench-scratch-") / "home"
    shutil.copytree(home, target, symlinks=True)
    return target


# --- building (in the child process) -----------------------------------------------------


@contextlib.contextmanager
def writeit_home(path: Path) -> Iterator[None]:
    old = os.environ.get("WRITEIT_HOME")
    os.environ["WRITEIT_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WRITEIT_HOME", None)
        else:
            os.environ["WRITEIT_HOME"] = old


def _engine(workspace: str):
    from writeit.engine import Engine
    from writeit.models import UserPreferences
    from writeit.workspaces import create_workspace

    prefs = UserPreferences(max_concurrent_pipelines=64)
    return Engine(create_workspace(workspace, exist_ok=True), preferences=prefs)


def feedback_text(seed: int) -> str:
    """What a writer says between attempts: a sentence or two, different every time."""
    from instant_model import prose

    return prose(f"feedback-{seed}", 25)


async def cycle_run(engine, cycles: int, seed: int) -> dict:
    """A run whose first step was asked again `cycles` times, each after new feedback:
    the public calls a writer's G (regenerate) after F (feedback) makes."""
    from instant_model import prose

    inputs = {"source_material": prose(f"source-{seed}", 600)}
    run = await engine.start_run("tech-article", inputs, models=PROSE_MODELS)
    run = await engine.execute_step(run.pipeline_run_id)
    for i in range(cycles):
        run = await engine.give_feedback(run.pipeline_run_id, feedback_text(seed * 100_000 + i))
        run = await engine.regenerate(run.pipeline_run_id)
    return {"id": run.pipeline_run_id, "cycles": cycles, "events": run.last_seq}


async def _build_cycles(sizes: Sizes) -> dict:
    engine = _engine("cycles")
    runs = {}
    for n in sorted({*sizes.cycles, sizes.feedback_cycles}):
        runs[str(n)] = await cycle_run(engine, n, seed=n)
    return {"workspace": "cycles", "runs": runs}


async def _build_chain(sizes: Sizes) -> dict:
    """Fork after fork from the first step, each branch with feedback of its own, so
    every link holds events of its own and the tip's history crosses every ancestor."""
    from instant_model import prose

    engine = _engine("chain")
    inputs = {"source_material": prose("chain-source", 600)}
    run = await engine.start_run("tech-article", inputs, models=PROSE_MODELS)
    run = await engine.execute_step(run.pipeline_run_id)
    run = await engine.select(run.pipeline_run_id, 0)
    links = [run.pipeline_run_id]
    for depth in range(1, sizes.chain + 1):
        child = await engine.fork(links[-1], "angles")
        child = await engine.give_feedback(child.pipeline_run_id, feedback_text(depth))
        links.append(child.pipeline_run_id)
    return {
        "workspace": "chain",
        "root": links[0],
        "tip": links[-1],
        "depth": sizes.chain,
        "walk_depth": sizes.chain_walk,
        "walk_tip": links[sizes.chain_walk],
        "events": child.last_seq,
    }


# `runs`: statuses as a long-used workspace has them, and two rare values that match
# exactly RARE runs at every size, spread evenly: a filter for them has the same answer
# at 1,000 and 100,000 runs, so only the work to find it can grow.
RARE = 10
RARE_STATUS = "error"
RARE_PIPELINE = "research-summary"


def _skeleton(name: str) -> dict:
    """The smallest valid pipeline snapshot with the real one's name and step names."""
    from writeit.config import get_pipeline

    real = get_pipeline(name)
    inputs = [{"name": real.inputs[0].name}]
    steps = [{"name": s, "template": "{{ source_material }}"} for s in real.step_names]
    return {"name": name, "inputs": inputs, "steps": steps}


def _bulk_events(index: int, total: int) -> tuple[str, list[tuple[str, dict]]]:
    """The pipeline and the status events of run `index` of `total`."""
    from writeit.events import EventType

    period = max(total // RARE, 3)
    pipeline = RARE_PIPELINE if index % period == period // 2 else "tech-article"
    if pipeline == "tech-article" and index % 5 == 1:
        pipeline = "blog-post"
    rare_status = index % period == period // 2 + 1  # not the rare pipeline's runs
    kind = index % 20
    started = (EventType.RUN_STARTED, {})
    if rare_status:
        events = [started, (EventType.RUN_ERRORED, {"error": "every model failed"})]
    elif kind < 16:
        events = [started, (EventType.RUN_COMPLETED, {})]
    elif kind < 18:
        events = [started]
    elif kind < 19:
        events = [started, (EventType.RUN_PAUSED, {})]
    else:
        events = []
    return pipeline, events


def _build_runs_store(workspace: str, total: int) -> None:
    """`total` runs through `Store.append`, one append (one transaction) per run."""
    from writeit.events import Event, EventType, apply, new_run
    from writeit.models import new_id
    from writeit.workspaces import create_workspace

    store = create_workspace(workspace, exist_ok=True).open_store()
    skeletons = {n: _skeleton(n) for n in ("tech-article", "blog-post", RARE_PIPELINE)}
    for index in range(total):
        pipeline, specs = _bulk_events(index, total)
        run_id = new_id()
        created = Event(
            seq=1,
            type=EventType.RUN_CREATED,
            run_id=run_id,
            data={"pipeline": skeletons[pipeline], "inputs": {"source_material": f"notes {index}"}},
        )
        run, events = new_run(created), [created]
        for kind, data in specs:
            event = Event(seq=run.last_seq + 1, type=kind, run_id=run_id, data=data)
            apply(run, event)
            events.append(event)
        store.append(run, events, 0)


def _build_runs(sizes: Sizes) -> dict:
    workspaces = {}
    for total in sizes.runs:
        name = f"runs-{total}"
        _build_runs_store(name, total)
        workspaces[str(total)] = name
    return {
        "workspaces": workspaces,
        "rare": RARE,
        "status": RARE_STATUS,
        "pipeline": RARE_PIPELINE,
    }


def _child_build(name: str, home: Path) -> None:
    import instant_model

    instant_model.install()
    sizes = Sizes(**json.loads(os.environ["WRITEIT_BENCH_SIZES"]))
    home.mkdir(parents=True, exist_ok=True)
    with writeit_home(home):
        if name == "cycles":
            manifest = asyncio.run(_build_cycles(sizes))
        elif name == "chain":
            manifest = asyncio.run(_build_chain(sizes))
        elif name == "runs":
            manifest = _build_runs(sizes)
        else:
            raise SystemExit(f"unknown fixture {name}")
    (home / "manifest.json").write_text(json.dumps(manifest, indent=2))


# --- memory (in a child process, so RSS is the engine's) ----------------------------------


def rss_kb() -> float:
    """Resident set size now, from /proc/self/statm (pages in use, not the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


def anon_kb() -> float:
    """The process's own memory (RssAnon): RSS without the store's memory-mapped file
    pages, which are the kernel's page cache (shared, dropped under pressure) and grow
    with the store on disk, not with what the engine keeps."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return float(line.split()[1])
    return rss_kb()


async def _memory(sizes: Sizes) -> dict:
    """Runs made and completed one after another through one engine, each read back and
    the run list asked for, as a server does; RSS after a warm-up, then polled after
    every run. Growth per run is (last - first) / runs, after a full GC both times."""
    from instant_model import prose

    engine = _engine("memory")

    async def one(i: int) -> None:
        inputs = {"source_material": prose(f"memory-{i}", 600)}
        run = await engine.start_run("tech-article", inputs, models=PROSE_MODELS)
        from writeit import autopilot

        run = await autopilot.drive(engine, run.pipeline_run_id, "first")
        engine.load(run.pipeline_run_id)
        engine.store.recent(limit=50)

    for i in range(sizes.memory_warmup):
        await one(i)
    gc.collect()
    start, start_rss = anon_kb(), rss_kb()
    samples = [start]
    began = time.perf_counter()
    for i in range(sizes.memory_runs):
        await one(sizes.memory_warmup + i)
        samples.append(anon_kb())
    gc.collect()
    end, end_rss = anon_kb(), rss_kb()
    return {
        "runs": sizes.memory_runs,
        "start_kb": start,
        "end_kb": end,
        "peak_kb": max(samples),
        "rss_per_run_kb": (end_rss - start_rss) / sizes.memory_runs,
        "per_run_kb": (end - start) / sizes.memory_runs,
        "seconds": time.perf_counter() - began,
    }


def _child_memory() -> None:
    import instant_model

    instant_model.install()
    home = Path(tempfile.mkdtemp(prefix="writeit-bench-memory-"))
    try:
        with writeit_home(home):
            result = asyncio.run(_memory(Sizes.from_env()))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


def main() -> None:
    sys.path.insert(0, str(HERE))
    os.environ["LLM_LOAD_PLUGINS"] = "llm-markov"
    os.environ["LLM_USER_PATH"] = str(temp_dir("writeit-bench-llm-"))  # never the user's
    atexit.register(cleanup)
    args = sys.argv[1:]
    if args[:1] == ["build"] and len(args) == 3:
        _child_build(args[1], Path(args[2]))
    elif args == ["memory"]:
        _child_memory()
    else:
        raise SystemExit("usage: scale.py build {cycles,chain,runs} HOME | scale.py memory")


if __name__ == "__main__":
    main()
