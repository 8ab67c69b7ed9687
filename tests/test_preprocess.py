"""Tests for seqlab.preprocess: encoding to int32 ids, counted filtering, parquet shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqlab.core.data_config import PreprocessConfig, TokenizerConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.text import ParallelText
from seqlab.preprocess.encode import SplitStats, encode, encode_threads, filter_pairs
from seqlab.preprocess.shards import read_encoded, shard_path, write_shard
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


def pairs(text: ParallelText) -> pd.DataFrame:
    return pd.DataFrame({"src": text.src, "tgt": text.tgt})


def test_encode_gives_int32_lists(tokenizer: Tokenizer) -> None:
    text = ParallelText(src=["one", "twenty-one", ""], tgt=["un", "vingt et un", "deux"])
    frame = encode(pairs(text), tokenizer)
    assert list(frame.columns) == ["src", "tgt", "src_ids", "tgt_ids"]
    assert len(frame) == 3
    assert frame["src"].tolist() == text.src
    for column in ("src_ids", "tgt_ids"):
        assert str(frame[column].dtype) == "list<item: int32>[pyarrow]"
    assert frame["src_ids"][0] == tokenizer.encode_src(["one"])[0]
    assert frame["tgt_ids"][1] == tokenizer.encode_tgt(["vingt et un"])[0]
    assert len(frame["src_ids"][2]) == 0  # an empty line encodes to no pieces
    assert tokenizer.decode_tgt([frame["tgt_ids"][1]]) == ["vingt et un"]


def test_encode_keeps_the_index_and_threads_do_not_matter(tokenizer: Tokenizer) -> None:
    frame = pairs(WORDS).iloc[3:9]
    one, two = encode(frame, tokenizer, threads=1), encode(frame, tokenizer, threads=2)
    assert list(one.index) == list(frame.index)
    assert one.equals(two)


def test_encode_threads() -> None:
    assert encode_threads(3) == 3
    assert encode_threads(0) >= 1
    with pytest.raises(ConfigError, match=r"preprocess\.threads"):
        PreprocessConfig(threads=-1)
    with pytest.raises(ConfigError, match=r"preprocess\.shard_size"):
        PreprocessConfig(shard_size=0)


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
    frame = encode(pairs(ParallelText(src=["one", ""], tgt=["un", "deux"])), tokenizer)
    kept, stats = filter_pairs(frame, PreprocessConfig())
    assert list(kept.columns) == ["src_ids", "tgt_ids"]
    assert stats == SplitStats(input=2, kept=1, dropped_empty=1, dropped_too_long=0)


def test_filter_pairs_on_encoded_frames(tokenizer: Tokenizer) -> None:
    frame = encode(pairs(ParallelText(src=["one hundred", "one"], tgt=["cent", "un"])), tokenizer)
    kept, stats = filter_pairs(frame, PreprocessConfig(max_src_len=5))  # "one hundred" is 11 characters
    assert stats == SplitStats(input=2, kept=1, dropped_empty=0, dropped_too_long=1)
    assert kept["src_ids"][0] == tokenizer.encode_src(["one"])[0]


def test_filter_pairs_does_not_modify_input() -> None:
    frame = frame_of([(ids(), ids(5)), (ids(4), ids(5))])
    filter_pairs(frame, PreprocessConfig())
    assert len(frame) == 2
    assert list(frame.columns) == ["src_ids", "tgt_ids"]


def test_shards_round_trip_in_order(tmp_path: Path, tokenizer: Tokenizer) -> None:
    frame = pairs(WORDS)
    for number, start in enumerate(range(0, len(frame), 7)):  # 18 pairs: shards of 7, 7 and 4
        kept, _ = filter_pairs(encode(frame.iloc[start : start + 7], tokenizer), PreprocessConfig())
        write_shard(kept, shard_path(tmp_path, "train", number))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"train-0000{i}.parquet" for i in range(3)]
    src, tgt = read_encoded(tmp_path, "train")
    assert len(src) == len(tgt) == len(WORDS)
    assert all(isinstance(s, np.ndarray) and s.dtype == np.int32 for s in src + tgt)
    assert [s.tolist() for s in src] == tokenizer.encode_src(WORDS.src)
    assert [t.tolist() for t in tgt] == tokenizer.encode_tgt(WORDS.tgt)


def test_hand_built_frame_round_trips(tmp_path: Path) -> None:
    kept, _ = filter_pairs(frame_of([(ids(4, 5), ids(6)), (ids(7), ids(8, 9))]), PreprocessConfig())
    write_shard(kept, shard_path(tmp_path, "valid", 0))
    src, tgt = read_encoded(str(tmp_path), "valid")
    assert [s.tolist() for s in src] == [[4, 5], [7]]
    assert [t.tolist() for t in tgt] == [[6], [8, 9]]


def test_empty_shard_round_trips(tmp_path: Path) -> None:
    kept, _ = filter_pairs(frame_of([(ids(), ids(6))]), PreprocessConfig())
    write_shard(kept, shard_path(tmp_path, "train", 0))
    assert read_encoded(tmp_path, "train") == ([], [])


def test_no_shards_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no valid-\*\.parquet shards; run the preprocess stage"):
        read_encoded(tmp_path, "valid")
