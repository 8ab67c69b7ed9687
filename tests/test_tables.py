"""Tests for seqlab.prepare.tables: TSV, CSV and JSONL corpora read in chunks, and their errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from seqlab.core.errors import ConfigError, DataError
from seqlab.prepare.tables import iter_table, table_format


def write(path: Path, data: str | bytes) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def read(path: Path, *, src: str = "de", tgt: str = "en", chunk_size: int = 2) -> list[dict]:
    chunks = iter_table(path, format=table_format(path, "auto"), src_column=src, tgt_column=tgt, chunk_size=chunk_size)
    return [chunk.to_dict("list") for chunk in chunks]


@pytest.mark.parametrize(
    ("name", "format"),
    [("a.tsv", "tsv"), ("a.TSV.gz", "tsv"), ("a.tab", "tsv"), ("a.csv", "csv"), ("a.csv.gz", "csv"),
     ("a.jsonl", "jsonl"), ("a.ndjson.gz", "jsonl")],
)
def test_format_from_suffix(name: str, format: str) -> None:
    assert table_format(name, "auto") == format


def test_configured_format_wins_and_unknown_suffix_names_the_key() -> None:
    assert table_format("corpus.txt", "tsv") == "tsv"
    with pytest.raises(ConfigError, match=r"prepare\.table\.format: cannot tell the format of corpus\.txt"):
        table_format("corpus.txt", "auto")


def test_tsv_in_chunks_with_extra_columns_and_quotes(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", 'id\tde\ten\n1\tein "Hund"\ta "dog"\n2\tzwei\ttwo\n3\tdrei\tthree\n')
    assert read(path) == [
        {"src": ['ein "Hund"', "zwei"], "tgt": ['a "dog"', "two"]},  # TSV is not quoted: quotes are text
        {"src": ["drei"], "tgt": ["three"]},
    ]


def test_windows_line_endings_are_left_to_cleaning(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "de\ten\r\nein\rHund\ta dog\r\n")
    assert read(path) == [{"src": ["ein\rHund"], "tgt": ["a dog\r"]}]  # only \n ends a row


def test_values_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "de\ten\nNA\t007\n")
    assert read(path) == [{"src": ["NA"], "tgt": ["007"]}]


def test_csv_quoted_fields_and_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv.gz", 'de,en\n"eins, zwei","one, two"\n"zeile\nzwei",line\n')
    assert read(path) == [{"src": ["eins, zwei", "zeile\nzwei"], "tgt": ["one, two", "line"]}]


def test_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"de": "Hund", "en": "dog", "n": 1}\n{"de": "Katze", "en": "cat"}\n')
    assert read(path, chunk_size=10) == [{"src": ["Hund", "Katze"], "tgt": ["dog", "cat"]}]


def test_unknown_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "de\tenglish\nx\ty\n")
    with pytest.raises(DataError, match=r"a\.tsv: no column 'en' in the header; the columns are: de, english"):
        read(path)


def test_unknown_jsonl_key_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"de": "a", "en": "b"}\n{"de": "c", "en": "d"}\n{"de": "e"}\n')
    with pytest.raises(DataError, match=r"a\.jsonl:3: no key 'en'; the keys are: de"):
        read(path)
    with pytest.raises(DataError, match=r"a\.jsonl:3: 'en' is missing"):
        read(path, chunk_size=10)


def test_non_text_jsonl_value_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"de": "a", "en": "b"}\n{"de": "c", "en": 5}\n')
    with pytest.raises(DataError, match=r"a\.jsonl:2: 'en' is int 5, not text"):
        read(path)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"de": "a", "en": "b"}\n{"de": "c", "en": \n')
    with pytest.raises(DataError, match=r"a\.jsonl:2: not a JSON object"):
        read(path)


def test_row_with_an_extra_field_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "de\ten\na\tb\nc\td\te\n")
    with pytest.raises(DataError, match=r"a\.tsv: Expected 2 fields in line 3, saw 3"):
        read(path)
    first = write(tmp_path / "b.tsv", "de\ten\na\tb\tc\n")  # pandas would take a first extra field as an index
    with pytest.raises(DataError, match=r"b\.tsv:2: 3 fields but the header has 2"):
        read(first)


def test_short_row_reads_as_empty(tmp_path: Path) -> None:
    # A missing last field is an empty text, which cleaning drops and counts.
    path = write(tmp_path / "a.tsv", "de\ten\na\tb\nc\n")
    assert read(path) == [{"src": ["a", "c"], "tgt": ["b", ""]}]


@pytest.mark.parametrize("name", ["a.tsv", "a.jsonl"])
def test_invalid_utf8_names_the_line(tmp_path: Path, name: str) -> None:
    body = b"de\ten\nok\tfine\nbad\t\xff\n" if name.endswith("tsv") else b'{"de": "a", "en": "b"}\n{"de": "\xff", "en": "b"}\n'
    path = write(tmp_path / name, body)
    line = 3 if name.endswith("tsv") else 2
    with pytest.raises(DataError, match=rf"{name}:{line}: invalid UTF-8"):
        read(path)


def test_nul_byte_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", b"de\ten\nok\tfine\nbad\tnul\x00\n")
    with pytest.raises(DataError, match=r"a\.tsv:3: NUL byte in 'en'"):
        read(path)


@pytest.mark.parametrize(("body", "message"), [("", "empty file"), ("de\ten\n", "no rows")])
def test_empty_tables(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(DataError, match=rf"a\.tsv: {message}"):
        read(write(tmp_path / "a.tsv", body))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.tsv: file not found"):
        read(tmp_path / "nope.tsv")


def test_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"a\.tsv\.gz: cannot read it"):
        read(path)
