"""Encode corpus splits to piece ids with pandas, dropping (and counting) unusable pairs.

The steps are pure DataFrame -> DataFrame functions; the stage writes the
result as one parquet file per split plus a stats file of what was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqlab.config import PreprocessConfig
from seqlab.data import ParallelText
from seqlab.tokenizer import Tokenizer

ENCODED_SPLITS = ("train", "valid")  # the test split is decoded from raw text, never filtered


@dataclass(frozen=True)
class SplitStats:
    """How many pairs came in, were kept, and were dropped for which reason."""

    input: int
    kept: int
    dropped_empty: int
    dropped_too_long: int


def encode(text: ParallelText, tokenizer: Tokenizer) -> pd.DataFrame:
    """Columns ``src_ids`` and ``tgt_ids``: int32 piece ids, one row per pair."""
    frame = pd.DataFrame({"src": text.src, "tgt": text.tgt})
    frame["src_ids"] = [np.asarray(ids, dtype=np.int32) for ids in tokenizer.encode_src(text.src)]
    frame["tgt_ids"] = [np.asarray(ids, dtype=np.int32) for ids in tokenizer.encode_tgt(text.tgt)]
    return frame


def filter_pairs(frame: pd.DataFrame, config: PreprocessConfig) -> tuple[pd.DataFrame, SplitStats]:
    """Drop pairs with an empty side, then pairs longer than the configured limits."""
    src_len = frame["src_ids"].map(len)
    tgt_len = frame["tgt_ids"].map(len)
    empty = (src_len == 0) | (tgt_len == 0)
    too_long = ~empty & ((src_len > config.max_src_len) | (tgt_len > config.max_tgt_len))
    kept = frame.loc[~(empty | too_long), ["src_ids", "tgt_ids"]].reset_index(drop=True)
    stats = SplitStats(
        input=len(frame),
        kept=len(kept),
        dropped_empty=int(empty.sum()),
        dropped_too_long=int(too_long.sum()),
    )
    return kept, stats


def read_encoded(path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Source and target id arrays of an encoded split."""
    frame = pd.read_parquet(path)
    return list(frame["src_ids"]), list(frame["tgt_ids"])
