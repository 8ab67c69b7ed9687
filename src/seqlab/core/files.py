"""Atomic outputs: a stage that fails leaves no half-written file or directory."""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from seqlab.core.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path``.

    Works for files and directories alike: the caller writes whatever it likes
    at the yielded path. On error the temporary is removed and ``path`` is
    left untouched; an unwritable folder or a ``path`` that cannot be replaced
    (immutable, say) is a DataError naming it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except PermissionError as err:
        raise DataError(f"{path}: cannot write there ({err.strerror})") from None
    target = tmp / path.name
    try:
        yield target
        try:
            _swap(target, path, old=tmp / f"{path.name}.old")
        except PermissionError as err:
            raise DataError(f"{path}: cannot replace it ({err.strerror})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(target: Path, path: Path, *, old: Path) -> None:
    """Put ``target`` where ``path`` is, a file or a directory."""
    if path.is_dir() and not path.is_symlink():
        # Move the old directory aside rather than deleting it first, so that a
        # failed swap (say, nothing was written at ``target``) can put it back.
        os.replace(path, old)
        try:
            os.replace(target, path)
        except BaseException:
            os.replace(old, path)
            raise
    else:
        os.replace(target, path)


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text file to stream into; its contents replace ``path`` only when the block succeeds.

    On any error, Ctrl-C included, the temporary sibling is removed and ``path`` keeps
    what it held (SIGTERM too, inside :func:`sigterm_as_interrupt`).
    The temporary is made on entry, so an unwritable folder fails before any work is
    done; that and a ``path`` that cannot be replaced (immutable, say) are DataErrors.
    """
    path = Path(path)
    try:
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="\n", dir=path.parent,
                                             prefix=f".{path.name}.", suffix=".tmp", delete=False)
    except OSError as err:
        raise DataError(f"{path}: cannot write there ({err.strerror})") from None
    try:
        os.chmod(handle.name, _file_mode(path))  # a temporary is private; the output should not be
        with handle:
            yield handle
        try:
            os.replace(handle.name, path)
        except OSError as err:
            raise DataError(f"{path}: cannot replace it ({err.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM ends the process like Ctrl-C, so ``open_atomic`` removes its temporary."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _file_mode(path: Path) -> int:
    """The permissions ``path`` has, or those a new file gets under the umask."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_leftovers(path: str | Path) -> None:
    """Remove the temporaries of :func:`atomic_path` that a killed writer of ``path`` left behind.

    ``path`` itself is never touched. Call it only where no other process may be
    writing ``path`` at the same moment (a DVC stage holds the repository's lock).
    """
    path = Path(path)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
