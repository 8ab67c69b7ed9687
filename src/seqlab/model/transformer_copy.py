"""Copying for the Transformer (pointer-generator, See et al. 2017) through a dedicated copy-attention head.

A single head from the decoder's final states over the encoder states gives
the copy distribution; it has no dropout, so its weights are a distribution in
training too (the cross-attention layers' weights are not, under attention
dropout). A learned gate mixes generating and copying, as the RNN's does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from seqlab.model.output_space import mix_copy_probs
from seqlab.model.transformer_layers import KeyValues


@dataclass(frozen=True)
class Copy:
    """p_gen: (N, T, 1) float32 probability of generating; attention: (N, T, S) the copy distribution."""

    p_gen: torch.Tensor
    attention: torch.Tensor


class CopyHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.gate = nn.Linear(3 * dim, 1)

    def project(self, memory: torch.Tensor) -> KeyValues:
        """memory: (n, S, D) -> keys (n, 1, S, D) and values (n, 1, S, D + S): the memory, for the context,
        beside an identity whose output columns are the attention weights themselves."""
        eye = torch.eye(memory.size(1), dtype=memory.dtype, device=memory.device)
        values = torch.cat((memory, eye.expand(memory.size(0), -1, -1)), dim=-1)
        return KeyValues(self.key(memory).unsqueeze(1), values.unsqueeze(1))

    def forward(self, hidden: torch.Tensor, embedded: torch.Tensor, kv: KeyValues, *, src_mask: torch.Tensor) -> Copy:
        """hidden, embedded: (N, T, D) the decoder's outputs and inputs; kv and src_mask (n, S): one row per
        source, shared by its N / n consecutive rows."""
        dim, sources = hidden.size(-1), kv.keys.size(0)
        query = self.query(hidden).reshape(sources, 1, -1, dim)  # a source's rows become its extra queries
        out = F.scaled_dot_product_attention(query, kv.keys, kv.values, attn_mask=src_mask[:, None, None, :])
        out = out.reshape(*hidden.shape[:2], -1)
        context, attention = out[..., :dim], out[..., dim:]
        p_gen = torch.sigmoid(self.gate(torch.cat((context, hidden, embedded), dim=-1)).float())
        return Copy(p_gen=p_gen, attention=attention)


def mix_copy(logits: torch.Tensor, copy: Copy, src: torch.Tensor) -> torch.Tensor:
    """logits: (N, T, V); src: (N, S) source piece ids (a joint vocabulary: they are output indices).
    Returns log(p_gen * P_vocab + (1 - p_gen) * P_copy), (N, T, V) float32."""
    return mix_copy_probs(logits, copy.p_gen, copy.attention, src)
