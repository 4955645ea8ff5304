"""`writeit serve` as a child process on a free loopback port, with a client for it: for
tests and soaks that need several real servers on one workspace.

Import it as ``served`` (tests/ is on sys.path in tests and in benchmarks/soak.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll(check: Callable[[], object], timeout: float = 15.0, what: str = "the condition") -> None:
    """Wait (bounded) until `check()` is true; an AssertionError naming `what` if not."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)


class Served:
    """`command serve --port N` (default: the real `writeit`) and an httpx client."""

    def __init__(self, token: str, command: list[str] | None = None) -> None:
        self.port = free_port()
        command = command or [sys.executable, "-m", "writeit"]
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        poll(self._up, 30, what=f"writeit serve on port {self.port}")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"writeit serve exited: {self.process.stderr.read().decode()}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
