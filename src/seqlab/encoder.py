"""The recurrent encoder: a (bi)directional LSTM over embedded source pieces."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass(frozen=True)
class EncoderOutput:
    """memory: (B, S, 2H) per-position states; final_h, final_c: (B, 2H) last layer's final states."""

    memory: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor


class Encoder(nn.Module):
    def __init__(self, *, embed_dim: int, hidden_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.rnn = nn.LSTM(
            embed_dim,
            hidden_dim,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden_dim

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded: (B, S, E); lengths: (B,) on any device.

        Packing makes each sentence's states independent of the padding around
        it, which is what lets a sentence decode the same alone or in a batch.
        """
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        # h, c: (layers * 2, B, H); the last layer's forward and backward states.
        final_h = torch.cat((h[-2], h[-1]), dim=-1)
        final_c = torch.cat((c[-2], c[-1]), dim=-1)
        return EncoderOutput(memory=self.dropout(memory), final_h=final_h, final_c=final_c)
