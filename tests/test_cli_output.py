"""`seqlab translate --output FILE` keeps FILE as it was unless the run succeeds (issue 17 items 1, 6, 10).

Interruptions and unwritable files are driven in real subprocesses: Ctrl-C (SIGINT),
SIGTERM, a bad input line mid-file and an immutable FILE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_checkpoint import write_tiny_checkpoint

from seqlab.cli import main
from seqlab.core.errors import DataError
from seqlab.core.files import open_atomic

SRC = Path(__file__).resolve().parents[1] / "src"
OLD = "the previous good output\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", seed=3, decisive=False)


def start(checkpoint: Path, folder: Path, *args: str) -> subprocess.Popen:
    """`seqlab translate` in ``folder`` (no params.yaml there), one line per chunk, writing out.txt."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "seqlab", "translate", "--model", str(checkpoint), "--output", "out.txt",
               "--chunk-size", "1", "--max-length", "4", "--no-progress", *args]
    # A shell that starts jobs in the background (nohup, &) hands them SIGINT ignored: restore Ctrl-C's default.
    return subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != "out.txt"]


def wait_for_written_temporary(folder: Path, proc: subprocess.Popen) -> None:
    """Until the run has written its first line to its temporary (so it is mid-file)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in temporaries(folder)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no output written; stderr: {proc.stderr.read().decode() if proc.poll() is not None else ''}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_the_output_as_it_was(checkpoint: Path, tmp_path: Path, signum: int) -> None:
    (tmp_path / "out.txt").write_text(OLD, encoding="utf-8")
    proc = start(checkpoint, tmp_path)
    proc.stdin.write(b"twenty-one\nseven\n")
    proc.stdin.flush()  # and keep stdin open: the run waits for more, mid-file
    wait_for_written_temporary(tmp_path, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == OLD
    assert temporaries(tmp_path) == []
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(("bad", "message"), [(b"\xff\xfe oops", "invalid UTF-8 at byte 0"),
                                              (b"seven\x00eight", "NUL byte at byte 5")], ids=["utf-8", "nul"])
def test_a_bad_input_line_names_itself_and_keeps_the_output(checkpoint: Path, tmp_path: Path, bad: bytes,
                                                            message: str) -> None:
    (tmp_path / "out.txt").write_text(OLD, encoding="utf-8")
    (tmp_path / "in.txt").write_bytes(b"twenty-one\nseven\n" + bad + b"\nfive\n")
    proc = start(checkpoint, tmp_path, "--input", "in.txt")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert stderr.decode().strip().splitlines() == [f"Error: in.txt:3: {message}" + (
        " (a binary or UTF-16 file?)" if "NUL" in message else "")]
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == OLD
    assert sorted(p.name for p in temporaries(tmp_path)) == ["in.txt"]


def test_bad_stdin_is_refused_like_prepare_refuses_it(checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["translate", "--model", str(checkpoint)], input=b"seven\nfi\x00ve\n")
    assert result.exit_code == 1
    assert "<stdin>:2: NUL byte at byte 2" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_immutable_output_is_one_line_and_no_temporary(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text(OLD, encoding="utf-8")
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(out)]
        expected = "out.txt: cannot replace it (Operation not permitted)"
    else:  # without CAP_LINUX_IMMUTABLE a read-only folder makes FILE just as unreplaceable
        tmp_path.chmod(0o555)
        undo = ["chmod", "755", str(tmp_path)]
        expected = "out.txt: cannot write there (Permission denied)"
    try:
        proc = start(checkpoint, tmp_path)
        _, stderr = proc.communicate(b"twenty-one\nseven\n", timeout=120)
    finally:
        subprocess.run(undo, check=True)
    assert proc.returncode == 1
    assert stderr.decode().strip().splitlines() == [f"Error: {expected}"]
    assert out.read_text(encoding="utf-8") == OLD
    assert temporaries(tmp_path) == []


def test_a_finished_run_replaces_the_output_and_keeps_its_permissions(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text(OLD, encoding="utf-8")
    out.chmod(0o640)
    proc = start(checkpoint, tmp_path)
    _, stderr = proc.communicate(b"twenty-one\n\nseven\n", timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert out.stat().st_mode & 0o777 == 0o640
    assert temporaries(tmp_path) == []


def test_open_atomic_keeps_the_file_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text(OLD, encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), open_atomic(path) as handle:
        handle.write("half")
        raise KeyboardInterrupt
    assert path.read_text(encoding="utf-8") == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_open_atomic_removes_its_temporary_when_the_replace_fails(tmp_path: Path) -> None:
    path = tmp_path / "out"
    (path / "inside").mkdir(parents=True)  # a non-empty folder cannot be replaced by a file
    with pytest.raises(DataError, match="out: cannot replace it"), open_atomic(path) as handle:
        handle.write("all of it\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_full_disk_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    with open("/dev/full", "w") as full:  # every write to it fails with ENOSPC
        proc = subprocess.run([sys.executable, "-m", "seqlab", "translate", "--model", str(checkpoint),
                               "--max-length", "3"], cwd=tmp_path, env=env, input=b"seven\n", stdout=full,
                              stderr=subprocess.PIPE, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "Error: No space left on device\n"
