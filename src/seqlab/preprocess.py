"""Encode corpus splits to piece ids in parquet shards, dropping (and counting) unusable pairs.

The steps are pure DataFrame -> DataFrame functions over one chunk at a time;
the stage streams each split through them and writes every chunk as one shard,
``<split>-00000.parquet``, ``<split>-00001.parquet``, ..., so memory stays
bounded by the shard size whatever the corpus size. Ids are Arrow lists of
int32 from end to end: no Python object per sentence is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqlab.core.data_config import PreprocessConfig
from seqlab.core.errors import DataError
from seqlab.tokenizer import Tokenizer, seed_sampling

ENCODED_SPLITS = ("train", "valid")  # the test split is decoded from raw text, never filtered
IDS = pa.list_(pa.int32())


@dataclass(frozen=True)
class SplitStats:
    """How many pairs came in, were kept, and were dropped for which reason."""

    input: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_too_long: int = 0

    def __add__(self, other: SplitStats) -> SplitStats:
        return SplitStats(
            input=self.input + other.input,
            kept=self.kept + other.kept,
            dropped_empty=self.dropped_empty + other.dropped_empty,
            dropped_too_long=self.dropped_too_long + other.dropped_too_long,
        )


def encode_threads(threads: int) -> int:
    """``preprocess.threads``, with 0 meaning one per CPU core this process may use."""
    if threads:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ids_column(ids: list[list[int]], index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(ids, type=IDS)), index=index)


def encode(frame: pd.DataFrame, tokenizer: Tokenizer, *, threads: int = 1) -> pd.DataFrame:
    """Columns ``src_ids`` and ``tgt_ids`` (Arrow lists of int32 piece ids) added to ``frame``'s ``src``, ``tgt``.

    sentencepiece encodes the whole column on ``threads`` threads in C++.
    """
    return frame.assign(
        src_ids=_ids_column(tokenizer.encode_src(frame["src"].tolist(), threads=threads), frame.index),
        tgt_ids=_ids_column(tokenizer.encode_tgt(frame["tgt"].tolist(), threads=threads), frame.index),
    )


def _lengths(ids: pd.Series) -> np.ndarray:
    if isinstance(ids.dtype, pd.ArrowDtype):
        return ids.list.len().to_numpy(dtype=np.int64)
    return ids.map(len).to_numpy(dtype=np.int64)  # arrays in an object column (hand-built frames)


def _reasons(frame: pd.DataFrame, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: whether a side is empty, and whether (not empty) a side is over its limit."""
    src_len, tgt_len = _lengths(frame["src_ids"]), _lengths(frame["tgt_ids"])
    empty = (src_len == 0) | (tgt_len == 0)
    return empty, ~empty & ((src_len > config.max_src_len) | (tgt_len > config.max_tgt_len))


def usable(frame: pd.DataFrame, config: PreprocessConfig) -> np.ndarray:
    """The pairs :func:`filter_pairs` keeps, as a boolean mask over ``frame``'s rows."""
    empty, too_long = _reasons(frame, config)
    return ~(empty | too_long)


def filter_pairs(frame: pd.DataFrame, config: PreprocessConfig) -> tuple[pd.DataFrame, SplitStats]:
    """Drop pairs with an empty side, then pairs longer than the configured limits."""
    empty, too_long = _reasons(frame, config)
    kept = frame.loc[~(empty | too_long), ["src_ids", "tgt_ids"]].reset_index(drop=True)
    stats = SplitStats(
        input=len(frame),
        kept=len(kept),
        dropped_empty=int(empty.sum()),
        dropped_too_long=int(too_long.sum()),
    )
    return kept, stats


# ---------------------------------------------------------------- subword regularization


def sample_split(number: int) -> str:
    """The shards' name of the train split's ``number``-th sampled segmentation (from 0)."""
    return f"train.sample{number:03d}"


@dataclass(frozen=True)
class Sampled:
    """A sampled segmentation of kept pairs; ``kept_best``: sides that sampled over their length
    limit and so keep the best segmentation (the pair is never dropped: every sample holds the
    same pairs as the split)."""

    frame: pd.DataFrame
    kept_best: int


def sample(pairs: pd.DataFrame, tokenizer: Tokenizer, *, alpha: float, config: PreprocessConfig) -> Sampled:
    """pairs: the kept rows of :func:`encode`'s frame (``src``, ``tgt``, ``src_ids``, ``tgt_ids``).
    Columns ``src_ids`` and ``tgt_ids`` of one sampled segmentation of each (see ``Tokenizer.sample_src``)."""
    src = tokenizer.sample_src(pairs["src"].tolist(), alpha=alpha)
    tgt = tokenizer.sample_tgt(pairs["tgt"].tolist(), alpha=alpha)
    kept_best = 0
    for i, (s, t) in enumerate(zip(src, tgt)):  # the best ids are read only for the few over the limit
        if len(s) > config.max_src_len:
            src[i], kept_best = list(pairs["src_ids"].iloc[i]), kept_best + 1
        if len(t) > config.max_tgt_len:
            tgt[i], kept_best = list(pairs["tgt_ids"].iloc[i]), kept_best + 1
    index = pd.RangeIndex(len(pairs))
    return Sampled(pd.DataFrame({"src_ids": _ids_column(src, index), "tgt_ids": _ids_column(tgt, index)}), kept_best)


def write_samples(pairs: pd.DataFrame, directory: Path, shard: int, *, tokenizer: Tokenizer,
                  config: PreprocessConfig, seed: int) -> int:
    """``config.subword_samples`` sampled segmentations of one shard's kept ``pairs`` (as :func:`sample`),
    each written as shard ``shard`` of its own split; returns the sides that kept their best segmentation."""
    kept_best = 0
    for number in range(config.subword_samples):
        seed_sampling(seed + 1_000_003 * number + shard)
        drawn = sample(pairs, tokenizer, alpha=config.subword_alpha, config=config)
        write_shard(drawn.frame, shard_path(directory, sample_split(number), shard))
        kept_best += drawn.kept_best
    return kept_best


# ---------------------------------------------------------------- shards on disk


def shard_path(directory: str | Path, split: str, number: int) -> Path:
    return Path(directory) / f"{split}-{number:05d}.parquet"


def write_shard(frame: pd.DataFrame, path: Path) -> None:
    """One shard: columns ``src_ids`` and ``tgt_ids`` as parquet lists of int32."""
    table = pa.table({name: pa.array(frame[name], type=IDS) for name in ("src_ids", "tgt_ids")})
    pq.write_table(table, path)


def _arrays(column: pa.ChunkedArray) -> list[np.ndarray]:
    """One int32 array per row: views into one flat buffer per parquet chunk (fast, compact)."""
    out: list[np.ndarray] = []
    for chunk in column.chunks:
        values = chunk.flatten().to_numpy(zero_copy_only=False)
        ends = np.cumsum(chunk.value_lengths().to_numpy(zero_copy_only=False))
        out.extend(np.split(values, ends[:-1]) if len(chunk) else [])
    return out


def read_encoded(directory: str | Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Source and target id arrays of an encoded split, its shards read in order."""
    paths = sorted(Path(directory).glob(f"{split}-*.parquet"))
    if not paths:
        raise DataError(f"{directory}: no {split}-*.parquet shards; run the preprocess stage")
    table = pa.concat_tables(pq.read_table(path, columns=["src_ids", "tgt_ids"]) for path in paths)
    return _arrays(table.column("src_ids")), _arrays(table.column("tgt_ids"))


def sample_count(directory: str | Path) -> int:
    """How many sampled segmentations of the train split preprocess wrote (0: subword regularization off);
    each is read with ``read_encoded(directory, sample_split(number))``."""
    names = {path.name.rsplit("-", 1)[0] for path in Path(directory).glob("train.sample*-*.parquet")}
    if names != {sample_split(number) for number in range(len(names))}:
        raise DataError(f"{directory}: the subword samples are not numbered 0 to {len(names) - 1}; "
                        "run the preprocess stage again")
    return len(names)
