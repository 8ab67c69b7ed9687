"""A training run's machine-local scratch: its resumable state, best checkpoint and log.

The state is not a DVC output: DVC never run-caches a stage with persistent
outputs, and the state is worth keeping only on the machine that trains. So a
run works in ``<paths.train_scratch>/<fingerprint>/`` (git-ignored under
``.dvc/tmp``), and :func:`publish` writes the stage's two outputs, the best
checkpoint and its dvclive log, together at the end: whatever restores the
model (``dvc checkout``, the run-cache) restores the log that describes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqlab.core.errors import SeqlabError
from seqlab.core.files import atomic_path, remove_leftovers

# Runs of other parameters kept besides the current one (newest first): enough to
# switch between a few experiments and resume each, bounded so scratch cannot grow forever.
KEEP_OTHERS = 2


class NoSpaceLeft(SeqlabError):
    """The disk filled up while training wrote a file."""


@dataclass(frozen=True)
class RunDir:
    """One run's scratch folder, named by the fingerprint of its parameters and data."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.pt"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def log(self) -> Path:
        return self.root / "log"


def run_dir(scratch: str | Path, fingerprint: str) -> RunDir:
    return RunDir(Path(scratch) / fingerprint[:16])


def prune(scratch: str | Path, *, keep: RunDir, others: int = KEEP_OTHERS) -> list[Path]:
    """Remove all but the ``others`` most recently used runs besides ``keep``; returns what went."""
    runs = [p for p in Path(scratch).iterdir() if p.is_dir() and p != keep.root] if Path(scratch).is_dir() else []
    runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[others:]:
        shutil.rmtree(old, ignore_errors=True)
    return runs[others:]


def check_writable(*paths: str | Path) -> None:
    """Fail now, in one line, if a file cannot be created next to each of ``paths``, not after an epoch."""
    for path in paths:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".seqlab-write-check."):
                pass
        except OSError as err:
            raise SeqlabError(f"train: cannot write {path}: {err.strerror or err}") from None


@contextlib.contextmanager
def no_space_message(folder: str | Path) -> Iterator[None]:
    """Turn a full disk under ``folder`` into one line that says so.

    torch.save given a path reports a failed write as a RuntimeError without the
    errno, so a RuntimeError counts as "no space" when the disk is then (nearly) full.
    """
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise NoSpaceLeft(f"train: no space left on device while writing {err.filename or folder}") from None
    except RuntimeError:
        if not _nearly_full(Path(folder)):
            raise
        raise NoSpaceLeft(f"train: no space left on device while writing under {folder}") from None


def _nearly_full(folder: Path) -> bool:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free < 1 << 20


def publish(run: RunDir, *, model: str | Path, log: str | Path) -> None:
    """Copy the run's best checkpoint and log to the stage's outputs, each atomically."""
    for path in (model, log):
        remove_leftovers(path)  # of a publish that was killed
    with no_space_message(Path(model).parent):
        with atomic_path(log) as tmp:
            shutil.copytree(run.log, tmp)
        with atomic_path(model) as tmp:
            shutil.copyfile(run.model, tmp)
    os.utime(run.root)  # the most recently used run: the last that prune removes
