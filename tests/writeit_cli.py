"""Run the real `writeit` command with the scripted models installed: `python writeit_cli.py ARGS`.

Subprocess tests use this so the child process has the deterministic models too; from a
test, `run("show", run_id)` starts it and returns the finished process.
"""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("LLM_LOAD_PLUGINS", "llm-markov")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scripted_model  # noqa: E402

scripted_model.install()

from writeit.cli import main  # noqa: E402


def run(
    *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`writeit ARGS` in a child process (wide columns: Rich wraps nothing)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__)), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


if __name__ == "__main__":
    sys.argv = ["writeit", *sys.argv[1:]]
    main()
