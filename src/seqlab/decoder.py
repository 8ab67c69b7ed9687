"""The LSTM decoder with input feeding (Luong et al. 2015) over Bahdanau attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.attention import BahdanauAttention


@dataclass(frozen=True)
class DecoderState:
    """Everything one decoding step needs, for N rows (sentences, or sentences x beams).

    hidden, cell: (L, N, H) recurrent state; feed: (N, H) previous attentional
    vector (input feeding); memory: (N, S, 2H) encoder states; proj_keys:
    (N, S, A) attention keys, projected once; src_mask: (N, S) True on tokens.
    """

    hidden: torch.Tensor
    cell: torch.Tensor
    feed: torch.Tensor
    memory: torch.Tensor
    proj_keys: torch.Tensor
    src_mask: torch.Tensor

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` of every field (drop finished sentences, expand to beams)."""
        return DecoderState(
            hidden=self.hidden.index_select(1, index),
            cell=self.cell.index_select(1, index),
            feed=self.feed.index_select(0, index),
            memory=self.memory.index_select(0, index),
            proj_keys=self.proj_keys.index_select(0, index),
            src_mask=self.src_mask.index_select(0, index),
        )

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Reorder the recurrent fields only; ``index`` must stay within each sentence's rows.

        The encoder-side fields are identical across a sentence's beams, so
        following beam back-pointers need not copy them.
        """
        return DecoderState(
            hidden=self.hidden.index_select(1, index),
            cell=self.cell.index_select(1, index),
            feed=self.feed.index_select(0, index),
            memory=self.memory,
            proj_keys=self.proj_keys,
            src_mask=self.src_mask,
        )


class Decoder(nn.Module):
    def __init__(
        self, *, embed_dim: int, hidden_dim: int, memory_dim: int, attention_dim: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(
            nn.LSTMCell(embed_dim + hidden_dim if i == 0 else hidden_dim, hidden_dim) for i in range(layers)
        )
        self.attention = BahdanauAttention(query_dim=hidden_dim, key_dim=memory_dim, attention_dim=attention_dim)
        self.combine = nn.Linear(hidden_dim + memory_dim, hidden_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.hidden_dim = hidden_dim

    def step(self, embedded: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One target position.

        embedded: (N, E) previous token's embedding. Returns the attentional
        vector (N, H), the next state, and the attention weights (N, S).
        """
        x = torch.cat((embedded, state.feed), dim=-1)
        hiddens, cells = [], []
        for layer, cell in enumerate(self.cells):
            h, c = cell(x, (state.hidden[layer], state.cell[layer]))
            hiddens.append(h)
            cells.append(c)
            x = self.dropout(h)
        attended = self.attention(h, state.proj_keys, state.memory, state.src_mask)
        feed = torch.tanh(self.combine(torch.cat((h, attended.context), dim=-1)))
        next_state = DecoderState(
            hidden=torch.stack(hiddens),
            cell=torch.stack(cells),
            feed=feed,
            memory=state.memory,
            proj_keys=state.proj_keys,
            src_mask=state.src_mask,
        )
        return feed, next_state, attended.weights
