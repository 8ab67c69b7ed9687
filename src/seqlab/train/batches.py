"""Training batches: encoded splits grouped by length into token-bounded, seeded-shuffled batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.model.batch import Batch, make_batch
from seqlab.preprocess.shards import read_encoded, sample_count, sample_split


@dataclass(frozen=True)
class EncodedSplit:
    """Piece-id arrays of one split, as preprocess wrote them."""

    src: Sequence[np.ndarray]
    tgt: Sequence[np.ndarray]

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(s) for s in self.src]), np.array([len(t) for t in self.tgt])

    def batch(self, indices: np.ndarray) -> Batch:
        return make_batch([self.src[i] for i in indices], [self.tgt[i] for i in indices])


@dataclass(frozen=True)
class SplitSummary:
    """What a run needs of a split before its epochs: the lengths of each side (N,), which plan the
    batches, and the target pieces it uses (U,), which ``model.output_vocab: target`` keeps."""

    src_lengths: np.ndarray
    tgt_lengths: np.ndarray
    targets: np.ndarray


def summarize(split: EncodedSplit) -> SplitSummary:
    src, tgt = split.lengths()
    used = np.unique(np.concatenate(split.tgt)) if len(split.tgt) else np.zeros(0, dtype=np.int32)
    return SplitSummary(src, tgt, used)


class SampledSplits(Sequence[EncodedSplit]):
    """The train split's subword samples, read when used and only one kept: each is as large as
    the split itself, so a run holds two splits in memory however many samples there are.
    Each sample's :class:`SplitSummary` is kept once it has been read (the run's fingerprint reads
    every sample), so sizing the output layer and planning the batches read none again."""

    def __init__(self, count: int, *, load: Callable[[int], EncodedSplit]) -> None:
        self._count, self._load = count, load
        self._cached: tuple[int, EncodedSplit] | None = None
        self._summaries: dict[int, SplitSummary] = {}

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, number: int) -> EncodedSplit:  # type: ignore[override]  # no slices
        if not 0 <= number < self._count:
            raise IndexError(number)
        if self._cached is None or self._cached[0] != number:
            self._cached = None  # freed before the next one is read
            self._cached = (number, self._load(number))
            if number not in self._summaries:
                self._summaries[number] = summarize(self._cached[1])
        return self._cached[1]

    def summary(self, number: int) -> SplitSummary:
        if number not in self._summaries:
            self[number]
        return self._summaries[number]


def summaries(samples: Sequence[EncodedSplit]) -> list[SplitSummary]:
    """Each subword sample's summary, reading from disk only those the run has not read yet."""
    if isinstance(samples, SampledSplits):
        return [samples.summary(number) for number in range(len(samples))]
    return [summarize(sample) for sample in samples]


def sampled_splits(directory: str | Path) -> SampledSplits:
    """The subword samples preprocess wrote to ``directory`` (none when it wrote none), read when used."""
    return SampledSplits(sample_count(directory),
                         load=lambda number: EncodedSplit(*read_encoded(directory, sample_split(number))))


def epoch_split(split: EncodedSplit, samples: Sequence[EncodedSplit], epoch: int) -> EncodedSplit:
    """What epoch ``epoch`` (from 1) trains on: the subword samples in turn, or the split itself."""
    return samples[(epoch - 1) % len(samples)] if samples else split


def bucket_indices(
    src_lengths: np.ndarray, tgt_lengths: np.ndarray, *, batch_tokens: int, generator: torch.Generator | None
) -> list[np.ndarray]:
    """Group pair indices into batches of at most ``batch_tokens`` padded tokens.

    Pairs are sorted by length so a batch wastes little padding; with a
    generator, ties are broken randomly and the batch order is shuffled, so
    each epoch sees different batches in a different, reproducible order.
    """
    n = len(src_lengths)
    if generator is not None:
        noise = torch.randperm(n, generator=generator).numpy()
    else:
        noise = np.arange(n)
    order = np.lexsort((noise, src_lengths, tgt_lengths))
    batches, start, longest = [], 0, 0
    for pos, index in enumerate(order):
        longest_if_added = max(longest, int(tgt_lengths[index]) + 1, int(src_lengths[index]))
        if pos > start and longest_if_added * (pos - start + 1) > batch_tokens:
            batches.append(order[start:pos])
            start, longest_if_added = pos, max(int(tgt_lengths[index]) + 1, int(src_lengths[index]))
        longest = longest_if_added
    if start < n:
        batches.append(order[start:])
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
