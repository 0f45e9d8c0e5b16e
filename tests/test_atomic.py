"""Atomic directory writes: the output appears whole or not at all, and no temp directory is left."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from kgsynth.atomic import replace_directory
from kgsynth.errors import OutputError
from kgsynth.verify import VerifyResult, write_verified


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_replace_directory_swaps_in_the_finished_directory(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    with replace_directory(out, marker="a.txt", what="test output") as tmp:
        assert tmp.parent == out.parent and tmp.is_dir() and not any(tmp.iterdir())
        assert not out.exists()  # nothing is visible until the block ends
        (tmp / "a.txt").write_text("first")
    assert _tree(out) == {"a.txt": b"first"}
    with replace_directory(out, marker="a.txt", what="test output") as tmp:
        (tmp / "a.txt").write_text("second")
        (tmp / "b.txt").write_text("more")
        assert _tree(out) == {"a.txt": b"first"}  # the old output stays until the swap
    with replace_directory(out, marker="a.txt", what="test output") as tmp:
        (tmp / "a.txt").write_text("third")
    assert _tree(out) == {"a.txt": b"third"}  # replaced whole, not merged
    assert [p.name for p in out.parent.iterdir()] == ["out"]


@pytest.mark.parametrize("error", [ValueError("bad row"), KeyboardInterrupt()])
def test_a_failure_inside_the_block_keeps_the_old_output_and_leaves_no_temp_dir(tmp_path: Path, error) -> None:
    out = tmp_path / "out"
    with replace_directory(out, marker="a.txt", what="test output") as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(type(error)), replace_directory(out, marker="a.txt", what="test output") as tmp:
        (tmp / "a.txt").write_text("half")
        (tmp / "sub").mkdir()
        raise error
    assert _tree(out) == {"a.txt": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), replace_directory(tmp_path / "out", marker="a.txt", what="test output") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_write_verified_failing_mid_write_keeps_the_previous_result(tmp_path: Path) -> None:
    out = tmp_path / "verified"
    frame = pl.DataFrame({"id": ["i1"]})
    write_verified(VerifyResult(accepted=frame, rejected=frame.clear(), summary={"items": 1}), out)
    before = _tree(out)
    # the tables are written first; a summary that is not JSON fails after them
    bad = VerifyResult(accepted=frame.clear(), rejected=frame, summary={"items": {1, 2}})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_verified(bad, out)
    assert _tree(out) == before
    assert json.loads((out / "summary.json").read_text())["items"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["verified"]


def test_a_folder_of_other_files_is_refused_never_deleted(tmp_path: Path) -> None:
    """`kgsynth verify -o DIR` on a folder of the user's own files."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    frame = pl.DataFrame({"id": ["i1"]})
    with pytest.raises(OutputError, match=r"mine: exists and is not a kgsynth verification output \(no summary.json\)"):
        write_verified(VerifyResult(accepted=frame, rejected=frame.clear(), summary={"items": 1}), mine)
    assert _tree(mine) == {"keep.txt": b"mine"} and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    with pytest.raises(OutputError, match="is a file"):
        write_verified(VerifyResult(accepted=frame, rejected=frame.clear(), summary={}), mine / "keep.txt")
