"""Which WriteIt process is streaming what: a pid and its start time name one process.

Streams record the pid and start time of the process that asks the model, so every
other process on the workspace can tell a live stream (refuse to start another, count
it against `max_concurrent_pipelines`) from an orphan left by a crash (show it as
interrupted, free its slot).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


def started(pid: int) -> int | None:
    """When a process started (clock ticks since boot, from /proc): with the pid, it names
    one process, even after the pid is reused. None where there is no /proc, or for a
    zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (command) "
    return None if fields[0] in ("Z", "X") else int(fields[19])


@functools.cache
def _me(pid: int) -> tuple[int, int | None]:
    return pid, started(pid)


def me() -> tuple[int, int | None]:
    """This process's pid and start time (read once; a fork gets its own)."""
    return _me(os.getpid())


def alive(pid: int | None, since: int | None) -> bool:
    """Whether the process that recorded a stream still runs (no pid: an old record)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return since is None or since == me()[1]
    if since is not None and Path("/proc/self/stat").exists():
        return started(pid) == since  # gone, a zombie, or the pid reused: not it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process, or no way to tell: do not take its stream
    return True
