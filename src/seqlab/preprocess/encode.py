"""Encode corpus splits to piece ids, dropping (and counting) unusable pairs.

The steps are pure DataFrame -> DataFrame functions over one chunk at a time; the stage streams
each split through them and writes every chunk as one shard (:mod:`seqlab.preprocess.shards`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from seqlab.core.data_config import PreprocessConfig
from seqlab.preprocess.shards import IDS
from seqlab.tokenizer import Tokenizer


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


def ids_column(ids: list[list[int]], index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(ids, type=IDS)), index=index)


def encode(frame: pd.DataFrame, tokenizer: Tokenizer, *, threads: int = 1) -> pd.DataFrame:
    """Columns ``src_ids`` and ``tgt_ids`` (Arrow lists of int32 piece ids) added to ``frame``'s ``src``, ``tgt``.

    sentencepiece encodes the whole column on ``threads`` threads in C++.
    """
    return frame.assign(
        src_ids=ids_column(tokenizer.encode_src(frame["src"].tolist(), threads=threads), frame.index),
        tgt_ids=ids_column(tokenizer.encode_tgt(frame["tgt"].tolist(), threads=threads), frame.index),
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

