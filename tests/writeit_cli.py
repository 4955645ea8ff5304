"""Run the real `writeit` command with the scripted models installed: `python writeit_cli.py ARGS`.

Subprocess tests use this so the child process has the deterministic models too.
"""

import os
import sys

os.environ.setdefault("LLM_LOAD_PLUGINS", "llm-markov")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scripted_model  # noqa: E402

scripted_model.install()

from writeit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["writeit", *sys.argv[1:]]
    main()
