"""Parallel corpora stored as tables: TSV, CSV or JSONL (plain or .gz), read with pandas in chunks.

:func:`iter_table` streams frames with columns ``src`` and ``tgt`` taken from the
named columns. Whatever is wrong with the file stops it with the file and the
line (or row) at fault: a missing column (listing those there are), a row with
the wrong number of fields, invalid UTF-8, a NUL byte, a missing or non-text
value, invalid JSON.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from seqlab.core.errors import ConfigError, DataError

SUFFIXES = {"tsv": (".tsv", ".tab"), "csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}


def table_format(path: str | Path, configured: str) -> str:
    """``configured`` unless it is ``auto``; then the format named by the suffix (before any .gz)."""
    if configured != "auto":
        return configured
    name = str(path).lower().removesuffix(".gz")
    for format, suffixes in SUFFIXES.items():
        if name.endswith(suffixes):
            return format
    raise ConfigError(f"prepare.table.format: cannot tell the format of {path} from its suffix; set tsv, csv or jsonl")


def iter_table(
    path: str | Path, *, format: str, src_column: str, tgt_column: str, chunk_size: int
) -> Iterator[pd.DataFrame]:
    """Frames of ``chunk_size`` rows with columns ``src`` and ``tgt``; see the module docstring for errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = 0
    try:
        chunks = _jsonl_chunks(path, chunk_size) if format == "jsonl" else _delimited_chunks(path, format, chunk_size)
        for chunk in chunks:
            src = _texts(chunk, src_column, path, format, first_row=rows)
            tgt = _texts(chunk, tgt_column, path, format, first_row=rows)
            rows += len(chunk)
            yield pd.DataFrame({"src": src, "tgt": tgt})
    except UnicodeDecodeError:
        raise DataError(f"{path}:{_first_bad_line(path, _utf8_error)}: invalid UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except pd.errors.ParserError as err:
        # pandas names the line: "Error tokenizing data. C error: Expected 2 fields in line 4, saw 3"
        raise DataError(f"{path}: {str(err).strip().removeprefix('Error tokenizing data. C error: ')}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read it ({err})") from None
    except ValueError as err:
        if format != "jsonl":
            raise
        line = _first_bad_line(path, _json_error)
        where = f"{path}:{line}: not a JSON object" if line else f"{path}: not valid JSONL"
        raise DataError(f"{where} ({err})") from None
    if rows == 0:
        raise DataError(f"{path}: no rows")


# ---------------------------------------------------------------- readers


def _delimited_chunks(path: Path, format: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    # TSV corpora are not quoted: a " in a sentence is text. Everything is read as
    # text (no "NA" -> NaN, no "007" -> 7), so a cell is exactly what the file holds;
    # a row missing its last fields reads them as empty (dropped and counted later).
    # Only \n ends a row, as in the parallel text files: a stray \r is text, and the
    # \r of a Windows line ending is left to cleaning (prepare.clean.crlf).
    options = dict(
        sep="\t" if format == "tsv" else ",",
        quoting=csv.QUOTE_NONE if format == "tsv" else csv.QUOTE_MINIMAL,
        lineterminator="\n",
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding="utf-8",
        encoding_errors="strict",
        compression="infer",
    )
    header = [str(name).removesuffix("\r") for name in pd.read_csv(path, nrows=0, **options).columns]
    # The header is read apart so that pandas counts the fields of the first data
    # row: with header=0 it would take one extra field as an index, silently.
    try:
        chunks = pd.read_csv(path, header=None, skiprows=1, chunksize=chunk_size, **options)
    except pd.errors.EmptyDataError:
        return  # a header and no rows
    for chunk in chunks:
        if chunk.shape[1] != len(header):
            raise DataError(f"{_where(path, format, 0)}: {chunk.shape[1]} fields but the header has {len(header)}")
        chunk.columns = header
        yield chunk


def _jsonl_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    # dtype=False: values stay as written, so a number where text belongs is caught below.
    yield from pd.read_json(path, lines=True, chunksize=chunk_size, dtype=False, encoding="utf-8",
                            encoding_errors="strict", compression="infer")


# ---------------------------------------------------------------- checks


def _where(path: Path, format: str, row: int) -> str:
    """Where the 0-based data ``row`` is: its line for TSV (header first) and JSONL; its row for CSV,
    whose quoted fields may span lines."""
    if format == "tsv":
        return f"{path}:{row + 2}"
    if format == "jsonl":
        return f"{path}:{row + 1}"
    return f"{path}: row {row + 1}"


def _texts(chunk: pd.DataFrame, column: str, path: Path, format: str, *, first_row: int) -> list[str]:
    """The text values of ``column``; a missing column, a missing or non-text value, or a NUL is an error."""
    if column not in chunk.columns:
        there = ", ".join(map(str, chunk.columns))
        if format == "jsonl":
            raise DataError(f"{_where(path, format, first_row)}: no key {column!r}; the keys are: {there}")
        raise DataError(f"{path}: no column {column!r} in the header; the columns are: {there}")
    values = chunk[column].tolist()
    for offset, value in enumerate(values):
        if not isinstance(value, str):
            what = "missing" if value is None or value != value else f"{type(value).__name__} {value!r}, not text"
            raise DataError(f"{_where(path, format, first_row + offset)}: {column!r} is {what}")
    for offset, value in enumerate(values):
        if "\0" in value:
            raise DataError(f"{_where(path, format, first_row + offset)}: NUL byte in {column!r} (a binary file?)")
    return values


def _utf8_error(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _json_error(line: bytes) -> bool:
    if not line.strip():
        return False
    try:
        return not isinstance(json.loads(line), dict)
    except ValueError:
        return True


def _first_bad_line(path: Path, is_bad: object) -> int:
    """The 1-based number of the first raw line for which ``is_bad`` holds, 0 if none.

    Only run after pandas has failed, to say where: pandas reports neither
    encoding nor JSON errors with a line number.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if is_bad(line):  # type: ignore[operator]
                return number
    return 0
