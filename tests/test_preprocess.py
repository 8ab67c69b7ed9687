"""Tests for seqlab.preprocess: encoding to int32 ids and counted filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqlab.config import PreprocessConfig, TokenizerConfig
from seqlab.data import ParallelText
from seqlab.preprocess import SplitStats, encode, filter_pairs, read_encoded
from seqlab.tokenizer import Tokenizer, train_tokenizer

WORDS = ParallelText(
    src=["one", "two", "three", "twenty-one", "one hundred", "first"] * 3,
    tgt=["un", "deux", "trois", "vingt et un", "cent", "premier"] * 3,
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(WORDS, TokenizerConfig(vocab_size=30, model_type="char"), seed=1)


def ids(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def frame_of(pairs: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame({"src_ids": [s for s, _ in pairs], "tgt_ids": [t for _, t in pairs]})


# ---------------------------------------------------------------- encode


def test_encode_gives_int32_arrays(tokenizer: Tokenizer) -> None:
    text = ParallelText(src=["one", "twenty-one", ""], tgt=["un", "vingt et un", "deux"])
    frame = encode(text, tokenizer)
    assert list(frame.columns) == ["src", "tgt", "src_ids", "tgt_ids"]
    assert len(frame) == 3
    assert frame["src"].tolist() == text.src
    for column in ("src_ids", "tgt_ids"):
        for value in frame[column]:
            assert isinstance(value, np.ndarray)
            assert value.dtype == np.int32
            assert value.ndim == 1
    assert frame["src_ids"][0].tolist() == tokenizer.encode_src(["one"])[0]
    assert frame["tgt_ids"][1].tolist() == tokenizer.encode_tgt(["vingt et un"])[0]
    assert len(frame["src_ids"][2]) == 0  # an empty line encodes to no pieces
    assert tokenizer.decode_tgt([frame["tgt_ids"][1].tolist()]) == ["vingt et un"]


# ---------------------------------------------------------------- filter_pairs


def test_filter_pairs_counts_each_reason() -> None:
    config = PreprocessConfig(max_src_len=3, max_tgt_len=2)
    frame = frame_of(
        [
            (ids(4, 5), ids(6)),  # kept
            (ids(), ids(6)),  # empty source
            (ids(4), ids()),  # empty target
            (ids(), ids()),  # both empty: counted once, as empty
            (ids(4, 5, 6, 7), ids(6)),  # source too long (4 > 3)
            (ids(4), ids(5, 6, 7)),  # target too long (3 > 2)
            (ids(4, 5, 6, 7), ids(5, 6, 7)),  # both too long: counted once
            (ids(), ids(5, 6, 7)),  # empty and too long: counted as empty only
            (ids(4, 5, 6), ids(7, 8)),  # exactly at both limits: kept
        ]
    )
    kept, stats = filter_pairs(frame, config)
    assert stats == SplitStats(input=9, kept=2, dropped_empty=4, dropped_too_long=3)
    assert stats.input == stats.kept + stats.dropped_empty + stats.dropped_too_long
    assert list(kept.columns) == ["src_ids", "tgt_ids"]
    assert list(kept.index) == [0, 1]
    assert [row.tolist() for row in kept["src_ids"]] == [[4, 5], [4, 5, 6]]
    assert [row.tolist() for row in kept["tgt_ids"]] == [[6], [7, 8]]


def test_filter_pairs_keeps_everything_when_clean() -> None:
    frame = frame_of([(ids(4), ids(5)), (ids(4, 5), ids(5, 6))])
    kept, stats = filter_pairs(frame, PreprocessConfig())
    assert stats == SplitStats(input=2, kept=2, dropped_empty=0, dropped_too_long=0)
    assert [row.tolist() for row in kept["tgt_ids"]] == [[5], [5, 6]]


def test_filter_pairs_drops_extra_columns(tokenizer: Tokenizer) -> None:
    frame = encode(ParallelText(src=["one", ""], tgt=["un", "deux"]), tokenizer)
    kept, stats = filter_pairs(frame, PreprocessConfig())
    assert list(kept.columns) == ["src_ids", "tgt_ids"]
    assert stats == SplitStats(input=2, kept=1, dropped_empty=1, dropped_too_long=0)


def test_filter_pairs_does_not_modify_input() -> None:
    frame = frame_of([(ids(), ids(5)), (ids(4), ids(5))])
    filter_pairs(frame, PreprocessConfig())
    assert len(frame) == 2
    assert list(frame.columns) == ["src_ids", "tgt_ids"]


def test_parquet_round_trip(tmp_path: Path, tokenizer: Tokenizer) -> None:
    kept, _ = filter_pairs(encode(WORDS, tokenizer), PreprocessConfig())
    path = tmp_path / "train.parquet"
    kept.to_parquet(path)
    src, tgt = read_encoded(str(path))
    assert len(src) == len(tgt) == len(WORDS)
    assert [s.tolist() for s in src] == [s.tolist() for s in kept["src_ids"]]
    assert [t.tolist() for t in tgt] == [t.tolist() for t in kept["tgt_ids"]]
