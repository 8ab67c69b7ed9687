"""Tests for seqlab.core.text: the number-phrase generator and parallel text files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from num2words import num2words

from seqlab.core.data_config import SPLITS, NumbersConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.text import (
    Corpus,
    CorpusWriter,
    ParallelText,
    iter_line_chunks,
    iter_lines,
    iter_parallel,
    read_corpus,
    read_lines,
    read_parallel,
    write_corpus,
)
from seqlab.prepare.numbers import generate_numbers

SMALL = NumbersConfig(train_size=150, valid_size=20, test_size=20)


@pytest.fixture(scope="module")
def small_corpus() -> Corpus:
    return generate_numbers(SMALL, seed=1234)


# ---------------------------------------------------------------- numbers


def test_generate_numbers_is_deterministic(small_corpus: Corpus) -> None:
    again = generate_numbers(SMALL, seed=1234)
    assert again == small_corpus


def test_generate_numbers_depends_on_seed(small_corpus: Corpus) -> None:
    other = generate_numbers(SMALL, seed=99)
    assert other.valid.src != small_corpus.valid.src


def test_generate_numbers_sizes_are_exact(small_corpus: Corpus) -> None:
    assert (len(small_corpus.train), len(small_corpus.valid), len(small_corpus.test)) == (150, 20, 20)
    for split in SPLITS:
        text = small_corpus.split(split)
        assert len(text.src) == len(text.tgt)
        assert all(line and "\n" not in line for line in text.src + text.tgt)


def test_no_source_sentence_in_two_splits(small_corpus: Corpus) -> None:
    train, valid, test = (set(small_corpus.split(s).src) for s in SPLITS)
    assert len(train) == 150 and len(valid) == 20 and len(test) == 20  # no duplicates inside a split either
    assert not train & valid
    assert not train & test
    assert not valid & test


def test_cardinals_below_100_are_in_train(small_corpus: Corpus) -> None:
    pairs = dict(zip(small_corpus.train.src, small_corpus.train.tgt))
    assert pairs["twenty-one"] == "vingt et un"
    assert pairs["zero"] == "zéro"
    assert pairs["ninety-nine"] == "quatre-vingt-dix-neuf"
    for value in range(100):
        assert num2words(value, lang="en") in pairs


def test_languages_are_configurable() -> None:
    corpus = generate_numbers(NumbersConfig(src_lang="fr", tgt_lang="de", train_size=110, valid_size=5, test_size=5), seed=3)
    pairs = dict(zip(corpus.train.src, corpus.train.tgt))
    assert pairs["trois"] == "drei"


@pytest.mark.parametrize("key", ["src_lang", "tgt_lang"])
def test_unknown_language_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"prepare\.numbers\.{key}: 'xx' is not a language"):
        NumbersConfig(train_size=10, valid_size=2, test_size=2, **{key: "xx"})


def test_max_value_too_small() -> None:
    # Cardinals and ordinals below 2 and the ~1100 years cannot make 1220 distinct pairs.
    config = NumbersConfig(train_size=1200, valid_size=10, test_size=10, max_value=2)
    with pytest.raises(ConfigError, match=r"prepare\.numbers\.max_value: 2 is too small for 1220 distinct pairs"):
        generate_numbers(config, seed=1)


# ---------------------------------------------------------------- reading files


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_read_lines_plain(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "a.txt", "un\ndeux\n\ntrois\n".encode())
    assert read_lines(path) == ["un", "deux", "", "trois"]


def test_read_lines_without_final_newline(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "a.txt", b"one\ntwo")
    assert read_lines(path) == ["one", "two"]


def test_read_lines_gzip(tmp_path: Path) -> None:
    path = tmp_path / "a.txt.gz"
    with gzip.open(path, "wb") as handle:
        handle.write("vingt et un\nzéro\n".encode())
    assert read_lines(path) == ["vingt et un", "zéro"]


def test_read_lines_strips_crlf(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "a.txt", b"one\r\ntwo\r\n")
    assert read_lines(path) == ["one", "two"]


def test_read_lines_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "bad.txt", b"ok\nfine\nbad \xff byte\n")
    with pytest.raises(DataError) as info:
        read_lines(path)
    assert str(info.value).startswith(f"{path}:3: invalid UTF-8")


def test_read_lines_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.txt: file not found"):
        read_lines(tmp_path / "missing.txt")


def test_read_lines_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_lines(tmp_path)


def test_read_lines_empty_file(tmp_path: Path) -> None:
    assert read_lines(write_bytes(tmp_path / "empty.txt", b"")) == []


def test_read_parallel(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"one\ntwo\n")
    tgt = write_bytes(tmp_path / "a.tgt", b"un\r\ndeux\r\n")
    text = read_parallel(src, tgt)
    assert text == ParallelText(src=["one", "two"], tgt=["un", "deux"])
    assert len(text) == 2


def test_read_parallel_different_line_counts_names_both(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"one\ntwo\nthree\n")
    tgt = write_bytes(tmp_path / "a.tgt", b"un\ndeux\n")
    with pytest.raises(DataError) as info:
        read_parallel(src, tgt)
    message = str(info.value)
    assert f"{src} has 3 lines" in message
    assert f"{tgt} has 2" in message


def test_read_parallel_empty_files(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"")
    tgt = write_bytes(tmp_path / "a.tgt", b"")
    with pytest.raises(DataError, match=r"a\.src: empty file"):
        read_parallel(src, tgt)


def test_read_parallel_missing_target(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"one\n")
    with pytest.raises(DataError, match=r"a\.tgt: file not found"):
        read_parallel(src, tmp_path / "a.tgt")


def test_read_lines_nul_byte_names_file_and_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "bin.txt", b"ok\nfi\x00ne\n")
    with pytest.raises(DataError, match=r"bin\.txt:2: NUL byte at byte 2"):
        read_lines(path)


def test_read_lines_utf16_gets_a_hint(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "utf16.txt", "hello\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"utf16\.txt:1: invalid UTF-8 at byte 0 \(a UTF-16 file\?"):
        read_lines(path)


def test_read_lines_broken_gzip_names_file(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "a.txt.gz", b"this is not gzip\n")
    with pytest.raises(DataError, match=r"a\.txt\.gz: cannot read it"):
        read_lines(path)
    whole = gzip.compress(b"one\ntwo\n" * 1000)
    truncated = write_bytes(tmp_path / "cut.gz", whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: cannot read it"):
        read_lines(truncated)


def test_iter_line_chunks_numbers_lines_across_chunks(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "a.txt", b"1\n2\n3\n4\n5 \xff\n")
    chunks = iter_line_chunks(path, chunk_size=2)
    assert next(chunks) == ["1", "2"]
    assert next(chunks) == ["3", "4"]
    with pytest.raises(DataError, match=r"a\.txt:5: invalid UTF-8 at byte 2"):
        next(chunks)


def test_iter_lines_keeps_carriage_returns(tmp_path: Path) -> None:
    # Cleaning (prepare.clean.crlf) decides about them; read_lines, for plain text, drops them.
    path = write_bytes(tmp_path / "a.txt", b"one\r\ntwo\r\n")
    assert list(iter_lines(path)) == ["one\r", "two\r"]
    assert read_lines(path) == ["one", "two"]


def test_iter_parallel_chunks(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"1\n2\n3\n")
    tgt = write_bytes(tmp_path / "a.tgt", b"un\ndeux\ntrois")
    chunks = list(iter_parallel(src, tgt, chunk_size=2))
    assert [c.to_dict("list") for c in chunks] == [
        {"src": ["1", "2"], "tgt": ["un", "deux"]},
        {"src": ["3"], "tgt": ["trois"]},
    ]


@pytest.mark.parametrize("chunk_size", [1, 2, 1000])
def test_iter_parallel_counts_both_files_whatever_the_chunk(tmp_path: Path, chunk_size: int) -> None:
    src = write_bytes(tmp_path / "a.src", b"x\n" * 5)
    tgt = write_bytes(tmp_path / "a.tgt", b"y\n" * 3)
    with pytest.raises(DataError, match=rf"{src} has 5 lines but {tgt} has 3; they must be line-aligned"):
        list(iter_parallel(src, tgt, chunk_size=chunk_size))
    with pytest.raises(DataError, match=rf"{tgt} has 3 lines but {src} has 5"):
        list(iter_parallel(tgt, src, chunk_size=chunk_size))


def test_iter_parallel_one_empty_file(tmp_path: Path) -> None:
    src = write_bytes(tmp_path / "a.src", b"")
    tgt = write_bytes(tmp_path / "a.tgt", b"y\n")
    with pytest.raises(DataError, match=r"a\.src has 0 lines but .*a\.tgt has 1"):
        list(iter_parallel(src, tgt, chunk_size=10))


# ---------------------------------------------------------------- on disk


def test_write_read_corpus_round_trip(tmp_path: Path) -> None:
    corpus = Corpus(
        train=ParallelText(src=["one", "two", "twenty-one"], tgt=["un", "deux", "vingt et un"]),
        valid=ParallelText(src=["three"], tgt=["trois"]),
        test=ParallelText(src=["zero", "first"], tgt=["zéro", "premier"]),
    )
    directory = tmp_path / "nested" / "corpus"
    write_corpus(corpus, directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"{s}.{side}" for s in SPLITS for side in ("src", "tgt"))
    assert (directory / "test.tgt").read_text(encoding="utf-8") == "zéro\npremier\n"
    assert read_corpus(directory) == corpus


def test_write_read_generated_corpus(tmp_path: Path, small_corpus: Corpus) -> None:
    write_corpus(small_corpus, tmp_path)
    assert read_corpus(str(tmp_path)) == small_corpus


def test_read_corpus_missing_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train\.src: file not found"):
        read_corpus(tmp_path)


def test_corpus_writer_appends_chunks(tmp_path: Path) -> None:
    import pandas as pd

    with CorpusWriter(tmp_path / "corpus") as writer:
        writer.write("train", pd.DataFrame({"src": ["a", "b"], "tgt": ["x", "y"]}))
        writer.write("train", pd.DataFrame({"src": ["c"], "tgt": ["z"]}))
    assert (tmp_path / "corpus/train.src").read_text() == "a\nb\nc\n"
    assert (tmp_path / "corpus/test.tgt").read_text() == ""  # every split's files exist


def test_corpus_writer_refuses_a_newline_inside_a_text(tmp_path: Path) -> None:
    import pandas as pd

    with CorpusWriter(tmp_path) as writer, pytest.raises(AssertionError, match="newlines"):
        writer.write("train", pd.DataFrame({"src": ["a\nb"], "tgt": ["x"]}))
