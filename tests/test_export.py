"""export.save: where an export may land, and what happens to a file already there."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from writeit import export
from writeit.export import ExportError, ExportExists


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every exports folder that no export may touch."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    return victim


def test_refuse_keeps_the_existing_file_and_overwrite_replaces_it(tmp_path):
    target = tmp_path / "exports" / "note.md"
    assert export.save("first", target) == export.Saved(target, 5)
    target.write_text("the writer's edits")
    with pytest.raises(ExportExists) as refused:
        export.save("second", target)
    assert str(target) in str(refused.value)
    assert target.read_text() == "the writer's edits"
    assert export.save("second", target, if_exists="overwrite").path == target
    assert target.read_text() == "second"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["note.md"]  # no temporary left


def test_rename_claims_a_new_name_and_never_replaces(tmp_path):
    target = tmp_path / "a.md"
    target.write_text("mine")  # the writer's earlier export, maybe edited since
    assert export.next_free(target).name == "a-2.md"
    assert export.save("one", target, if_exists="rename").path == tmp_path / "a-2.md"
    assert export.save("two", target, if_exists="rename").path == tmp_path / "a-3.md"
    assert [(tmp_path / n).read_text() for n in ("a.md", "a-2.md", "a-3.md")] == [
        "mine",
        "one",
        "two",
    ]


def test_concurrent_renames_never_pick_the_same_name(tmp_path):
    target = tmp_path / "exports" / "same.md"
    count = 8
    start = threading.Barrier(count)
    saved: list[Path] = []

    def one(n: int) -> None:
        start.wait()
        saved.append(export.save(f"export {n}", target, if_exists="rename").path)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(saved)) == count
    assert sorted(p.read_text() for p in saved) == sorted(f"export {n}" for n in range(count))
    assert len(list(target.parent.iterdir())) == count


def test_a_symlink_at_the_target_is_refused_in_every_mode(tmp_path, outside):
    target = tmp_path / "note.md"
    target.symlink_to(outside)
    for mode in ("refuse", "overwrite", "rename"):
        with pytest.raises(ExportError, match="is a symbolic link"):
            export.save("evil", target, if_exists=mode)
    assert outside.read_text() == "precious" and target.is_symlink()


def test_a_symlink_at_the_old_temporary_name_is_never_followed(tmp_path, outside):
    target = tmp_path / "note.md"
    (tmp_path / "note.md.tmp").symlink_to(outside)
    export.save("the export", target)
    assert outside.read_text() == "precious"
    assert not target.is_symlink() and target.read_text() == "the export"


def test_within_refuses_folders_that_are_symlinks(tmp_path, outside):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "sub").symlink_to(outside.parent)
    with pytest.raises(ExportError, match="sub is a symbolic link"):
        export.save("evil", exports / "sub" / "victim.txt", if_exists="overwrite", within=exports)
    assert outside.read_text() == "precious"
    assert sorted(os.listdir(outside.parent)) == ["victim.txt"]


@pytest.mark.parametrize("within", [False, True])
def test_os_refusals_name_the_path_and_the_problem(tmp_path, within):
    base = tmp_path / "exports"
    base.mkdir()
    (base / "ok.md").write_text("a file")
    cases = {
        base / ("x" * 256 + ".md"): "ENAMETOOLONG",
        base / ("é" * 128): "ENAMETOOLONG",
        base / "ok.md" / "child.md": "ENOTDIR",
    }
    for path, code in cases.items():
        with pytest.raises(ExportError) as refused:
            export.save("text", path, within=base if within else None)
        message = str(refused.value)
        assert f"cannot write {path}" in message and code in message, message
        assert refused.value.hint
    assert sorted(os.listdir(base)) == ["ok.md"]  # no temporary file left behind
