"""Encode corpus splits to piece ids in parquet shards, dropping (and counting) unusable pairs.

The steps are pure DataFrame -> DataFrame functions over one chunk at a time;
the stage streams each split through them and writes every chunk as one shard,
``<split>-00000.parquet``, ``<split>-00001.parquet``, ..., so memory stays
bounded by the shard size whatever the corpus size. Ids are Arrow lists of
int32 from end to end: no Python object per sentence is kept.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqlab.core.data_config import PreprocessConfig
from seqlab.core.errors import DataError
from seqlab.tokenizer import Side, Tokenizer, seed_sampling

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
#
# A unigram tokenizer's samples are drawn from each line's ``subword_nbest`` best segmentations
# with P(x) proportional to P(x) ** alpha (Kudo, 2018, section 3.3): sentencepiece gives the n-best
# and the piece scores, deterministically, and the draw is seqlab's, from generators seeded by the
# stage seed, the shard, the side and the sample's number. sentencepiece 0.2's own sampler (used
# for BPE-dropout, and for unigram with subword_nbest -1) draws differently in every process
# whatever its seed, so its samples differ each time preprocess runs.

NBEST_CHUNK = 5_000  # pairs whose n-best lists are held at once (64 x ~15 ids a side each)


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
    Columns ``src_ids`` and ``tgt_ids`` of one segmentation of each drawn by sentencepiece's sampler
    (see ``Tokenizer.sample_src``)."""
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


def pick_segmentations(candidates: list[list[list[int]]], piece_scores: np.ndarray, *, alpha: float, limit: int,
                       uniform: np.ndarray) -> np.ndarray:
    """(K, n): which of line i's candidates sample k takes, or -1 where none has at most ``limit`` pieces.

    candidates: n lists of segmentations (piece ids); piece_scores: (V,) log-probabilities;
    uniform: (K, n) draws in [0, 1). Among a line's candidates within the limit, x is taken with
    probability P(x) ** alpha / sum P(y) ** alpha: inverse-CDF sampling, all lines at once.
    """
    counts = np.fromiter(map(len, candidates), np.int64, len(candidates))
    lengths = np.fromiter((len(x) for c in candidates for x in c), np.int64, int(counts.sum()))
    ids = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(candidates)), np.int64,
                      int(lengths.sum()))
    sums = np.concatenate(([0.0], np.cumsum(piece_scores[ids])))
    ends = np.cumsum(lengths)
    logits = np.where(lengths <= limit, alpha * (sums[ends] - sums[ends - lengths]), -np.inf)
    rows = np.repeat(np.arange(len(candidates)), counts)
    columns = np.arange(len(lengths)) - np.repeat(np.cumsum(counts) - counts, counts)
    table = np.full((len(candidates), max(int(counts.max(initial=0)), 1)), -np.inf)
    table[rows, columns] = logits
    top = table.max(axis=1, keepdims=True)
    cdf = np.cumsum(np.exp(table - np.where(np.isfinite(top), top, 0.0)), axis=1)  # (n, C)
    total = cdf[:, -1]
    picks = (cdf[None] <= (uniform * total)[:, :, None]).sum(axis=2)  # the first place the CDF passes u
    return np.where(total > 0, np.minimum(picks, np.maximum(counts - 1, 0)), -1)


def _draw(lines: list[str], best: pd.Series, uniform: np.ndarray, *, side: Side, tokenizer: Tokenizer,
          config: PreprocessConfig) -> tuple[list[list[list[int]]], int]:
    """drawn[k][i]: line i's segmentation in sample k (uniform: (K, n)), from its n-best; and how many
    draws found no candidate within the length limit and so keep the best segmentation ``best``."""
    limit = config.max_src_len if side == "src" else config.max_tgt_len
    candidates = tokenizer.nbest(side, lines, size=config.subword_nbest)
    picks = pick_segmentations(candidates, tokenizer.piece_scores(side), alpha=config.subword_alpha, limit=limit,
                               uniform=uniform)
    drawn = [[c[p] if p >= 0 else list(best.iloc[i]) for i, (c, p) in enumerate(zip(candidates, row))] for row in picks]
    return drawn, int((picks < 0).sum())


def write_nbest_samples(pairs: pd.DataFrame, directory: Path, shard: int, *, tokenizer: Tokenizer,
                        config: PreprocessConfig, seed: int) -> int:
    """``config.subword_samples`` segmentations of shard ``shard``'s kept ``pairs`` (``src``, ``tgt`` and
    their best ``src_ids``, ``tgt_ids``), each side drawn from its ``config.subword_nbest`` best
    (:func:`pick_segmentations`), the same on every run; each written as shard ``shard`` of its own
    split, NBEST_CHUNK pairs at a time. Returns the draws that kept the best segmentation."""
    count, kept_best = config.subword_samples, 0
    uniform = {side: np.stack([np.random.default_rng([seed % 2**64, shard, number, k]).random(len(pairs))
                               for k in range(count)]) for number, side in enumerate(("src", "tgt"))}
    schema = pa.schema([("src_ids", IDS), ("tgt_ids", IDS)])
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(pq.ParquetWriter(shard_path(directory, sample_split(k), shard), schema))
                   for k in range(count)]
        for start in range(0, len(pairs), NBEST_CHUNK):
            chunk, columns = pairs.iloc[start : start + NBEST_CHUNK], {}
            for side in ("src", "tgt"):
                columns[side], kept = _draw(chunk[side].tolist(), chunk[f"{side}_ids"],
                                            uniform[side][:, start : start + NBEST_CHUNK], side=side,
                                            tokenizer=tokenizer, config=config)
                kept_best += kept
            for k, writer in enumerate(writers):
                writer.write_table(pa.table({"src_ids": pa.array(columns["src"][k], type=IDS),
                                             "tgt_ids": pa.array(columns["tgt"][k], type=IDS)}, schema=schema))
    return kept_best


def write_samples(pairs: pd.DataFrame, directory: Path, shard: int, *, tokenizer: Tokenizer,
                  config: PreprocessConfig, seed: int, unigram: bool) -> int:
    """``config.subword_samples`` segmentations of one shard's kept ``pairs``, each written as shard
    ``shard`` of its own split: from the n-best for a unigram tokenizer (:func:`write_nbest_samples`)
    unless ``subword_nbest`` is -1, else by sentencepiece's sampler (:func:`sample`). Returns the sides
    that kept their best segmentation."""
    if unigram and config.subword_nbest > 0:
        return write_nbest_samples(pairs, directory, shard, tokenizer=tokenizer, config=config, seed=seed)
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
