"""Token-based batches: length bucketing, seeded shuffling, padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqlab.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass(frozen=True)
class Batch:
    """Padded tensors for teacher forcing.

    src: (B, S) source ids; src_lengths: (B,); tgt_in: (B, T) BOS + target;
    tgt_out: (B, T) target + EOS; padding is PAD_ID everywhere.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    @property
    def n_tokens(self) -> int:
        """Target tokens, padding excluded: the unit of loss and throughput."""
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out)))


def pad(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) right-padded ids and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    out = torch.full((len(sequences), max(int(lengths.max()), 1)), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        # np.array copies: the ids may be read-only Arrow buffers, which torch warns about.
        out[row, : len(seq)] = torch.from_numpy(np.array(seq, dtype=np.int64))
    return out, lengths


def make_batch(src: Sequence[np.ndarray], tgt: Sequence[np.ndarray]) -> Batch:
    src_ids, src_lengths = pad(src)
    tgt_in, _ = pad([np.concatenate(([BOS_ID], t)) for t in tgt])
    tgt_out, _ = pad([np.concatenate((t, [EOS_ID])) for t in tgt])
    return Batch(src=src_ids, src_lengths=src_lengths, tgt_in=tgt_in, tgt_out=tgt_out)


@dataclass(frozen=True)
class EncodedSplit:
    """Piece-id arrays of one split, as preprocess wrote them."""

    src: Sequence[np.ndarray]
    tgt: Sequence[np.ndarray]

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(s) for s in self.src]), np.array([len(t) for t in self.tgt])

    def batch(self, indices: np.ndarray) -> Batch:
        return make_batch([self.src[i] for i in indices], [self.tgt[i] for i in indices])


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
