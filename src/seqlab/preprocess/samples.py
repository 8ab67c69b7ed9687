"""Subword regularization: sampled segmentations of the train split, one shard per shard of the split.

A unigram tokenizer's samples are drawn from each line's ``subword_nbest`` best segmentations
with P(x) proportional to P(x) ** alpha (Kudo, 2018, section 3.3): sentencepiece gives the n-best
and the piece scores, deterministically, and the draw is seqlab's, from generators seeded by the
stage seed, the shard, the side and the sample's number, so neither the number of worker processes
(``preprocess.threads``) nor a rerun changes a byte. sentencepiece 0.2's own sampler (used for
BPE-dropout, and for unigram with subword_nbest -1) draws differently in every process whatever its
seed, so its samples differ each time preprocess runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqlab.core.data_config import PreprocessConfig
from seqlab.preprocess.encode import encode_threads, ids_column
from seqlab.preprocess.shards import IDS, sample_split, shard_path, write_shard
from seqlab.preprocess.workers import ordered_map
from seqlab.tokenizer import Side, Tokenizer, seed_sampling

# Pairs drawn as one task (both sides, each in a worker of its own), written as one row group of
# each sample's shard: a side's n-best lists of a chunk are held at once (64 x ~15 ids a line).
NBEST_CHUNK = 5_000
SIDES: tuple[Side, Side] = ("src", "tgt")


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
    return Sampled(pd.DataFrame({"src_ids": ids_column(src, index), "tgt_ids": ids_column(tgt, index)}), kept_best)


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



@dataclass(frozen=True)
class Drawn:
    """One side of n lines in K samples: ``lengths`` (K, n) pieces of each segmentation, ``values``
    their piece ids end to end, sample after sample (arrays, which pass between processes fast);
    ``kept_best``: draws with no candidate within the length limit, which keep the best segmentation."""

    lengths: np.ndarray
    values: np.ndarray
    kept_best: int

    @functools.cached_property
    def _starts(self) -> np.ndarray:
        """(K + 1,) where each sample's ids begin in ``values``."""
        return np.concatenate(([0], np.cumsum(self.lengths.sum(axis=1))))

    def column(self, k: int) -> pa.Array:
        """Sample k's segmentations as :data:`IDS`."""
        offsets = np.concatenate(([0], np.cumsum(self.lengths[k]))).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(self.values[self._starts[k] : self._starts[k + 1]]))


def draw(tokenizer: Tokenizer, lines: list[str], best: list, uniform: np.ndarray, side: Side,
         config: PreprocessConfig) -> Drawn:
    """Each line's segmentation in each of K samples (uniform: (K, n) draws), from its n-best; the
    best segmentation ``best[i]`` where none is within the length limit."""
    limit = config.max_src_len if side == "src" else config.max_tgt_len
    candidates = tokenizer.nbest(side, lines, size=config.subword_nbest)
    picks = pick_segmentations(candidates, tokenizer.piece_scores(side), alpha=config.subword_alpha, limit=limit,
                               uniform=uniform)
    drawn = [c[p] if p >= 0 else best[i] for row in picks for i, (c, p) in enumerate(zip(candidates, row))]
    lengths = np.fromiter(map(len, drawn), np.int64, len(drawn)).reshape(picks.shape)
    values = np.fromiter(itertools.chain.from_iterable(drawn), np.int32, int(lengths.sum()))
    return Drawn(lengths, values, int((picks < 0).sum()))


def write_nbest_samples(pairs: pd.DataFrame, directory: Path, shard: int, *, tokenizer: Tokenizer,
                        config: PreprocessConfig, seed: int, chunk: int = NBEST_CHUNK) -> int:
    """``config.subword_samples`` segmentations of shard ``shard``'s kept ``pairs`` (``src``, ``tgt`` and
    their best ``src_ids``, ``tgt_ids``), each side drawn from its ``config.subword_nbest`` best
    (:func:`draw`), the same on every run; each written as shard ``shard`` of its own split, ``chunk``
    pairs a row group. A shard of more than one chunk is drawn on ``preprocess.threads`` processes.
    Returns the draws that kept the best segmentation."""
    count, kept_best = config.subword_samples, 0
    uniform = {side: np.stack([np.random.default_rng([seed % 2**64, shard, number, k]).random(len(pairs))
                               for k in range(count)]) for number, side in enumerate(SIDES)}
    starts = range(0, len(pairs), chunk)
    tasks = ((pairs[side].iloc[start : start + chunk].tolist(), pairs[f"{side}_ids"].iloc[start : start + chunk].tolist(),
              uniform[side][:, start : start + chunk], side, config) for start in starts for side in SIDES)
    workers = encode_threads(config.threads) if len(starts) > 1 else 1
    schema = pa.schema([("src_ids", IDS), ("tgt_ids", IDS)])
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(pq.ParquetWriter(shard_path(directory, sample_split(k), shard), schema))
                   for k in range(count)]
        # A fresh Tokenizer pickles as its model bytes alone, without the processors it has built.
        drawn = stack.enter_context(contextlib.closing(
            ordered_map(draw, tasks, shared=dataclasses.replace(tokenizer), workers=workers)))
        for src, tgt in zip(drawn, drawn):  # each chunk's two sides, one after the other
            for k, writer in enumerate(writers):
                writer.write_table(pa.table({"src_ids": src.column(k), "tgt_ids": tgt.column(k)}, schema=schema))
            kept_best += src.kept_best + tgt.kept_best
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


