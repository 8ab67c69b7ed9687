"""The recurrent encoder: a (bi)directional LSTM or GRU over embedded source pieces."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.dropout import Dropout

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class EncoderOutput:
    """memory: (B, S, D) per-position states, D = H x directions;
    final_h: (B, D) last layer's final hidden state (both directions joined);
    final_c: (B, D) its LSTM cell state, or None for a GRU."""

    memory: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor | None


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        embed_dim: int,
        hidden_dim: int,
        layers: int,
        dropout: float,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        self.rnn = RNNS[rnn_type](
            embed_dim,
            hidden_dim,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.output_dim = self.directions * hidden_dim

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """embedded: (B, S, E); lengths: (B,) on any device.

        Packing makes each sentence's states independent of the padding around
        it, which is what lets a sentence decode the same alone or in a batch.
        """
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        h, c = final if isinstance(final, tuple) else (final, None)
        return EncoderOutput(
            memory=self.dropout(memory), final_h=self._last_layer(h), final_c=None if c is None else self._last_layer(c)
        )

    def _last_layer(self, state: torch.Tensor) -> torch.Tensor:
        """(layers * directions, B, H) -> (B, directions * H) for the top layer."""
        return torch.cat(tuple(state[-self.directions :]), dim=-1)
