"""The model's input: padded id tensors for teacher forcing (a :class:`Batch`) and for search."""

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
