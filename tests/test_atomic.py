"""Tests for seqlab.core.files: outputs appear whole or not at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from seqlab.core.errors import DataError
from seqlab.core.files import atomic_path, remove_leftovers, write_text


class Boom(Exception):
    pass


def test_creates_a_new_file_and_parents(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "metrics.json"
    with atomic_path(path) as tmp:
        assert tmp != path
        assert not path.exists()
        tmp.write_text("{}", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "{}"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    with atomic_path(path) as tmp:
        assert path.read_text(encoding="utf-8") == "old"  # untouched until the block ends
        tmp.write_text("new", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_replaces_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer"
    path.mkdir()
    (path / "stale.model").write_text("old", encoding="utf-8")
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / "src.model").write_text("src", encoding="utf-8")
        (tmp / "tgt.model").write_text("tgt", encoding="utf-8")
    assert sorted(p.name for p in path.iterdir()) == ["src.model", "tgt.model"]
    assert (path / "src.model").read_text(encoding="utf-8") == "src"
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]


def test_error_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(path) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise Boom
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_error_leaves_directory_untouched(tmp_path: Path) -> None:
    path = tmp_path / "encoded"
    path.mkdir()
    (path / "train.parquet").write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(path) as tmp:
            tmp.mkdir()
            (tmp / "train.parquet").write_text("half", encoding="utf-8")
            raise Boom
    assert [p.name for p in path.iterdir()] == ["train.parquet"]
    assert (path / "train.parquet").read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["encoded"]


def test_error_with_no_previous_target_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with pytest.raises(Boom):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"partial")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_nothing_written_leaves_old_directory(tmp_path: Path) -> None:
    path = tmp_path / "corpus"
    path.mkdir()
    (path / "train.src").write_text("one\n", encoding="utf-8")
    with pytest.raises(OSError):
        with atomic_path(path):
            pass  # the caller forgot to write anything
    assert (path / "train.src").read_text(encoding="utf-8") == "one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_write_text(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.txt"
    write_text(path, "vingt et un\n")
    write_text(str(path), "zéro\n")
    assert path.read_text(encoding="utf-8") == "zéro\n"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]


def test_remove_leftovers_of_a_killed_writer(tmp_path: Path) -> None:
    target = tmp_path / "state.pt"
    target.write_text("good", encoding="utf-8")
    (tmp_path / ".state.pt.abc123.tmp").mkdir()
    (tmp_path / ".state.pt.abc123.tmp" / "state.pt").write_text("half", encoding="utf-8")
    (tmp_path / ".other.pt.abc.tmp").mkdir()
    remove_leftovers(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc.tmp", "state.pt"]
    assert target.read_text(encoding="utf-8") == "good"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_an_immutable_output_is_a_data_error_and_leaves_no_temporary(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "out"
    if kind == "file":
        path.write_text("old", encoding="utf-8")
    else:
        path.mkdir()
        (path / "kept").write_text("old", encoding="utf-8")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        undo, message = ["chattr", "-i", str(path)], "out: cannot replace it (Operation not permitted)"
    else:  # without CAP_LINUX_IMMUTABLE a read-only folder makes it just as unreplaceable
        tmp_path.chmod(0o555)
        undo, message = ["chmod", "755", str(tmp_path)], "out: cannot write there (Permission denied)"
    try:
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            with atomic_path(path) as tmp:
                if kind == "file":
                    tmp.write_text("new", encoding="utf-8")
                else:
                    tmp.mkdir()
    finally:
        subprocess.run(undo, check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (path if kind == "file" else path / "kept").read_text(encoding="utf-8") == "old"
