"""Prompts, articles and the server token are private: nothing WriteIt writes in its home
(or exports) is readable by other local users, in process and through the command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from writeit import workspaces

TESTS = Path(__file__).parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path, *relative: str) -> dict[str, str]:
    return {name: oct(mode(root / name)) for name in relative}


PRIVATE_LAYOUT = {
    ".": "0o700",
    "workspaces": "0o700",
    "workspaces/default": "0o700",
    "workspaces/default/store": "0o700",
    "workspaces/default/store/data.mdb": "0o600",
    "workspaces/default/store/lock.mdb": "0o600",
    "workspaces/default/exports": "0o700",
    "config.yaml": "0o600",
    "server-token": "0o600",
}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common 022: what WriteIt must not rely on when used as a library."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A WRITEIT_HOME that does not exist yet (nor does its parent)."""
    home = tmp_path / "new" / "writeit-home"
    monkeypatch.setenv("WRITEIT_HOME", str(home))
    return home


def test_a_new_home_and_its_store_are_owner_only(fresh_home, permissive_umask):
    workspaces.init()
    workspaces.get_workspace().open_store()
    workspaces.use_workspace("default")  # rewrites config.yaml
    assert modes(fresh_home, *PRIVATE_LAYOUT) == PRIVATE_LAYOUT
    other = workspaces.create_workspace("second")
    assert modes(other.path, ".", "store", "exports", "pipelines", "styles") == dict.fromkeys(
        (".", "store", "exports", "pipelines", "styles"), "0o700"
    )
    assert mode(fresh_home.parent) == 0o755  # outside home: made as the system makes it


def test_init_tightens_what_an_earlier_version_left_open(isolated_env, permissive_umask):
    home = isolated_env.writeit_home
    workspaces.init()
    workspaces.get_workspace().open_store()
    article = home / "workspaces/default/exports/old/article.md"
    article.parent.mkdir()
    article.write_text("a private draft")
    theirs = home / "notes.txt"  # not WriteIt's: never touched
    theirs.write_text("the writer's own file")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    workspaces.init()
    assert modes(home, *PRIVATE_LAYOUT) == PRIVATE_LAYOUT
    assert mode(article) == 0o600 and mode(article.parent) == 0o700
    assert mode(theirs) == 0o644


def test_the_writeit_command_writes_owner_only_files(fresh_home, tmp_path, permissive_umask):
    source = tmp_path / "notes.md"
    source.write_text("Private notes on a launch that has not been announced.")
    outside = tmp_path / "elsewhere" / "article.md"
    for out in (None, outside):
        command = [sys.executable, str(TESTS / "writeit_cli.py"), "run", "tech-article"]
        command += ["--input", f"source_material=@{source}", "--model", "scripted-a"]
        command += ["--headless", "--pick", "1", "--export", "md", "--json"]
        command += ["--out", str(out)] if out else []
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        exported = Path(json.loads(done.stdout)["export"])
        assert exported.read_text().strip() and mode(exported) == 0o600, exported
    assert exported == outside and mode(outside.parent) == 0o700
    layout = {k: v for k, v in PRIVATE_LAYOUT.items() if k not in ("config.yaml", "server-token")}
    assert modes(fresh_home, *layout) == layout
