"""Where things live: WRITEIT_HOME, preferences, workspaces and the server token.

Layout::

    $WRITEIT_HOME/
        config.yaml          preferences (UserPreferences)
        server-token         bearer token for `writeit serve`, mode 0600
        pipelines/ styles/   the writer's own, overriding the built-ins
        workspaces/<name>/
            store/           the LMDB event store
            exports/         exported articles
            pipelines/ styles/   this workspace's own, overriding home's

Prompts, articles and the token are private: every folder WriteIt makes here is
created 0700 and every file 0600 (the `writeit` command also runs with umask 077), and
the store's files are tightened whenever it is opened. `init` tightens a home made by
an earlier version. Nothing outside this layout is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from writeit import pricing
from writeit.models import UserPreferences, WriteItError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def home() -> Path:
    explicit = os.environ.get("WRITEIT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("writeit", appauthor=False))


# --- private files ------------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Make `path` (and its missing parents inside home) owner-only, whatever the umask.
    Parents outside home are made as the system makes them. Existing folders are left
    alone: tightening one the writer chose is `init`'s job, done when asked."""
    root = home()
    if path != root and path.is_relative_to(root):
        private_dir(path.parent)
    elif not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        path.chmod(0o700)  # mkdir's mode is cut by the umask, never widened: be exact
    return path


def tighten(path: Path) -> None:
    """Remove group and other permissions from `path` if it is ours. Shared folders such
    as /tmp (sticky) and other users' files are left alone."""
    try:
        info = path.stat()
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 and not mode & stat.S_ISVTX:
            path.chmod(mode & ~0o077)
    except OSError:
        return


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, owner-only from the first byte."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover may have looser permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


# --- preferences ---------------------------------------------------------------------


def config_path() -> Path:
    return home() / "config.yaml"


def load_preferences() -> UserPreferences:
    path = config_path()
    if not path.exists():
        return UserPreferences()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        preferences = UserPreferences.model_validate(data)
        if pricing.upgrade_config(data):  # prices per 1K from before: per million, once
            preferences = UserPreferences.model_validate(data)
            save_preferences(preferences)
        return preferences
    except (yaml.YAMLError, ValidationError) as error:
        raise WriteItError(
            f"{path} is not valid: {error}",
            hint="fix the file by hand or delete it to go back to the defaults",
        ) from error


def save_preferences(preferences: UserPreferences) -> None:
    """What the writer set, even to a default value (a choice kept, say export_format
    yaml); what they never set follows the defaults of later versions."""
    data = preferences.model_dump(mode="json", exclude_unset=True)
    if data.get("pricing"):
        data["pricing_unit"] = "per_million"  # so a later load never converts them again
    write_private(config_path(), yaml.safe_dump(data, sort_keys=True))


def set_preference(key: str, raw_value: str) -> UserPreferences:
    """Set `key` (dotted for maps: keyboard_shortcuts.merge) from a YAML-typed string."""
    current = load_preferences().model_dump(mode="json", exclude_unset=True)
    parts = key.split(".")
    if parts[0] not in UserPreferences.model_fields:
        known = ", ".join(sorted(UserPreferences.model_fields))
        raise WriteItError(f"unknown preference {parts[0]!r}", hint=f"known keys: {known}")
    try:
        value: Any = yaml.safe_load(raw_value) if raw_value.strip() else raw_value
    except yaml.YAMLError:
        value = raw_value
    target = current
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value
    try:
        preferences = UserPreferences.model_validate(current)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise WriteItError(
            f"cannot set {key} to {raw_value!r}: {problems}",
            hint="see `writeit config show` for the current values and their types",
        ) from error
    save_preferences(preferences)
    return preferences


# --- workspaces ----------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    name: str
    path: Path

    @property
    def store_path(self) -> Path:
        return self.path / "store"

    @property
    def exports(self) -> Path:
        return self.path / "exports"

    def config_dirs(self, kind: str) -> list[Path]:
        """Folders searched after the built-ins for `pipelines` or `styles`; later wins."""
        return [home() / kind, self.path / kind]

    def open_store(self):  # -> Store, imported lazily to keep start-up light
        """The workspace's store; its folder owner-only and its files (LMDB makes them
        with the process umask) tightened to 0600."""
        from writeit.store import Store

        private_dir(self.store_path)
        store = Store(self.store_path)
        for name in ("data.mdb", "lock.mdb"):
            tighten(self.store_path / name)
        return store


def workspaces_dir() -> Path:
    return home() / "workspaces"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise WriteItError(
            f"{name!r} is not a valid workspace name",
            hint="use lowercase letters, digits, '-' and '_' (up to 64), starting with a letter or digit",
        )
    return name


def list_workspaces() -> list[Workspace]:
    root = workspaces_dir()
    if not root.is_dir():
        return []
    return [Workspace(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()]


def create_workspace(name: str, exist_ok: bool = False) -> Workspace:
    path = workspaces_dir() / check_name(name)
    if path.exists() and not exist_ok:
        raise WriteItError(
            f"workspace {name!r} already exists", hint=f"writeit workspace use {name}"
        )
    for sub in ("store", "exports", "pipelines", "styles"):
        private_dir(path / sub)
    return Workspace(name, path)


def get_workspace(name: str | None = None) -> Workspace:
    """The named workspace, else the active one; `default` is created on first use."""
    chosen = name or os.environ.get("WRITEIT_WORKSPACE") or load_preferences().workspace
    path = workspaces_dir() / check_name(chosen)
    if not path.is_dir():
        if chosen == "default":
            return create_workspace("default", exist_ok=True)
        known = ", ".join(w.name for w in list_workspaces()) or "none yet"
        raise WriteItError(
            f"no workspace {chosen!r}",
            hint=f"create it with `writeit workspace create {chosen}` (existing: {known})",
        )
    return Workspace(chosen, path)


def use_workspace(name: str) -> Workspace:
    workspace = get_workspace(name)
    preferences = load_preferences()
    preferences.workspace = workspace.name
    save_preferences(preferences)
    return workspace


def remove_workspace(name: str) -> None:
    workspace = get_workspace(name)
    if load_preferences().workspace == name:
        raise WriteItError(
            f"workspace {name!r} is the active one",
            hint="switch first with `writeit workspace use default`",
        )
    shutil.rmtree(workspace.path)


# --- server token --------------------------------------------------------------------


def token_path() -> Path:
    return home() / "server-token"


def ensure_token() -> str:
    """The server's bearer token, created once with owner-only permissions."""
    path = token_path()
    if path.exists():
        return path.read_text().strip()
    private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def init() -> tuple[Path, Workspace, str]:
    """Create the home folder, the default workspace and the server token (idempotent),
    and make what an earlier version left readable by others owner-only."""
    root = home()
    for sub in ("pipelines", "styles"):
        private_dir(root / sub)
    workspace = create_workspace("default", exist_ok=True)
    if not config_path().exists():
        save_preferences(UserPreferences())
    token = ensure_token()
    for path in _own_paths(root):
        tighten(path)
    return root, workspace, token


def _own_paths(root: Path) -> list[Path]:
    """Everything in home that WriteIt made (never anything else the folder holds)."""
    paths = [root, config_path(), token_path(), root / "pipelines", root / "styles"]
    paths.append(workspaces_dir())
    for workspace in list_workspaces():
        folders = [workspace.path / sub for sub in ("store", "exports", "pipelines", "styles")]
        paths += [workspace.path, *folders, *workspace.store_path.glob("*.mdb")]
        paths += workspace.exports.rglob("*")
    return [p for p in paths if p.exists()]
