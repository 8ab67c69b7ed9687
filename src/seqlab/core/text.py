"""Corpus text: line-aligned text files read and written (the number generator is in ``prepare.numbers``).

A corpus is three splits of line-aligned source/target text. The ``prepare``
stage builds one from ``params.yaml`` and writes it as ``<split>.src`` and
``<split>.tgt`` files with a :class:`CorpusWriter`; the later stages stream it
back with :func:`iter_parallel` (or read it whole with :func:`read_corpus`).
Every reader checks its input: missing and empty files, line counts, UTF-8.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import pandas as pd

from seqlab.core.data_config import SPLITS
from seqlab.core.errors import DataError


@dataclass(frozen=True)
class ParallelText:
    """Aligned sentence pairs: ``src[i]`` translates to ``tgt[i]``."""

    src: list[str]
    tgt: list[str]

    def __post_init__(self) -> None:
        assert len(self.src) == len(self.tgt), "sides must be aligned"

    def __len__(self) -> int:
        return len(self.src)


@dataclass(frozen=True)
class Corpus:
    train: ParallelText
    valid: ParallelText
    test: ParallelText

    def split(self, name: str) -> ParallelText:
        return getattr(self, name)


# ---------------------------------------------------------------- text files


def open_text(path: str | Path) -> BinaryIO:
    """``path`` opened for reading bytes, through gzip when it ends in .gz."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_raw(handle: BinaryIO, path: Path, count: int) -> list[bytes]:
    """Up to ``count`` raw lines; an unreadable file (a broken .gz, say) names itself."""
    try:
        return list(itertools.islice(handle, count))
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read it ({err})") from None


def _decode(raw: list[bytes], path: Path, first: int) -> list[str]:
    """Decode a non-empty chunk of raw lines whose first is line ``first``; a bad line names itself.

    The chunk is decoded whole, which is fast; only when that fails (or finds a NUL)
    are lines decoded one by one to find the culprit. A NUL is refused because
    it is valid UTF-8 yet almost always means a binary or UTF-16 file.
    """
    try:
        text = b"".join(raw).decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        for number, line in enumerate(raw, start=first):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                utf16 = number == 1 and line[:2] in (b"\xff\xfe", b"\xfe\xff")  # its byte-order mark
                hint = " (a UTF-16 file? convert it to UTF-8)" if utf16 else ""
                raise DataError(f"{path}:{number}: invalid UTF-8 at byte {err.start}{hint}") from None
            if b"\0" in line:
                raise DataError(f"{path}:{number}: NUL byte at byte {line.index(0)} (a binary or UTF-16 file?)")
    lines = text.split("\n")
    if raw[-1].endswith(b"\n"):
        lines.pop()  # the empty string after the final newline
    return lines


def iter_line_chunks(path: str | Path, *, chunk_size: int) -> Iterator[list[str]]:
    """Lines of a UTF-8 text file (plain or .gz) without their ``\\n``, ``chunk_size`` at a time."""
    path = Path(path)
    with open_text(path) as handle:
        yield from iter_stream_chunks(handle, name=str(path), chunk_size=chunk_size)


def iter_stream_chunks(handle: BinaryIO, *, name: str, chunk_size: int) -> Iterator[list[str]]:
    """Lines of an open byte stream (a pipe too) without their ``\\n``, ``chunk_size`` at a time.

    Checked as files are: invalid UTF-8 or a NUL is a DataError naming ``name`` and the line.
    """
    first = 1
    while raw := _read_raw(handle, Path(name), chunk_size):
        yield _decode(raw, Path(name), first)
        first += len(raw)


def iter_lines(path: str | Path) -> Iterator[str]:
    """Lines of a UTF-8 text file, one at a time (a trailing ``\\r`` is kept)."""
    for chunk in iter_line_chunks(path, chunk_size=10_000):
        yield from chunk


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz), without their line endings (``\\r\\n`` too)."""
    return [line.removesuffix("\r") for line in iter_lines(path)]


def _count_rest(handle: BinaryIO, path: Path) -> int:
    count = 0
    while chunk := _read_raw(handle, path, 100_000):
        count += len(chunk)
    return count


def iter_parallel(src_path: str | Path, tgt_path: str | Path, *, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Line-aligned files read in step: frames with columns ``src`` and ``tgt``, ``chunk_size`` rows each.

    Different line counts are an error naming both files and both counts (found
    when the shorter one ends; the caller writes atomically, so nothing is kept).
    Two empty files are an error too. Lines keep any ``\\r``: cleaning decides.
    """
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    with open_text(src_path) as src, open_text(tgt_path) as tgt:
        first = 1
        while True:
            src_raw, tgt_raw = _read_raw(src, src_path, chunk_size), _read_raw(tgt, tgt_path, chunk_size)
            # Decoded before the counts are compared: a UTF-16 file (whose NUL bytes
            # hold extra newlines) is better reported as such than as misaligned.
            src_lines = _decode(src_raw, src_path, first) if src_raw else []
            tgt_lines = _decode(tgt_raw, tgt_path, first) if tgt_raw else []
            if len(src_raw) != len(tgt_raw):
                n_src = first - 1 + len(src_raw) + _count_rest(src, src_path)
                n_tgt = first - 1 + len(tgt_raw) + _count_rest(tgt, tgt_path)
                raise DataError(
                    f"{src_path} has {n_src:,} lines but {tgt_path} has {n_tgt:,}; they must be line-aligned"
                )
            if not src_raw:
                break
            yield pd.DataFrame({"src": src_lines, "tgt": tgt_lines})
            first += len(src_raw)
    if first == 1:
        raise DataError(f"{src_path}: empty file")


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> ParallelText:
    """A pair of line-aligned files, whole (lines without ``\\r\\n``); see :func:`iter_parallel`."""
    src: list[str] = []
    tgt: list[str] = []
    for chunk in iter_parallel(src_path, tgt_path, chunk_size=100_000):
        src.extend(line.removesuffix("\r") for line in chunk["src"])
        tgt.extend(line.removesuffix("\r") for line in chunk["tgt"])
    return ParallelText(src=src, tgt=tgt)


# ---------------------------------------------------------------- on disk


class CorpusWriter:
    """Appends pairs to ``<split>.src`` and ``<split>.tgt`` under a directory; a context manager.

    Lines are written as they come, so a corpus of any size streams through. A
    text holding a newline would shift every later pair; cleaning removes them,
    and this refuses any that remain.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._handles: dict[str, TextIO] = {}

    def __enter__(self) -> CorpusWriter:
        self.directory.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            for side in ("src", "tgt"):
                path = self.directory / f"{split}.{side}"
                self._handles[path.name] = open(path, "w", encoding="utf-8", newline="\n")
        return self

    def write(self, split: str, frame: pd.DataFrame) -> None:
        for side in ("src", "tgt"):
            assert not frame[side].str.contains("\n", regex=False).any(), "cleaning must remove newlines inside a text"
            lines = frame[side].tolist()
            if lines:
                self._handles[f"{split}.{side}"].write("\n".join(lines) + "\n")

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles.values():
            handle.close()


def write_corpus(corpus: Corpus, directory: Path) -> None:
    """Write ``<split>.src`` and ``<split>.tgt`` under ``directory``."""
    with CorpusWriter(directory) as writer:
        for split in SPLITS:
            text = corpus.split(split)
            writer.write(split, pd.DataFrame({"src": text.src, "tgt": text.tgt}))


def read_corpus(directory: str | Path) -> Corpus:
    """The corpus that ``prepare`` wrote to ``directory``, whole (small corpora and tests)."""
    directory = Path(directory)
    train, valid, test = (read_parallel(directory / f"{s}.src", directory / f"{s}.tgt") for s in SPLITS)
    return Corpus(train=train, valid=valid, test=test)
