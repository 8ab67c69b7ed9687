"""The Transformer's blocks (Vaswani et al. 2017): multi-head attention, feed-forward, encoder and decoder layers.

Attention runs through ``torch.nn.functional.scaled_dot_product_attention``
(fused kernels on CPU and GPU). Keys and values are projected by the caller's
request and handed back to it (:class:`KeyValues`): the decoder's self-attention
cache and the cross-attention's per-source keys live in the search state, never
on the modules.

Shapes: B batch rows, T queries, S keys, H heads, D model width, Dh = D / H.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import ModelConfig
from seqlab.model.dropout import Dropout

if TYPE_CHECKING:
    from seqlab.model.step_cache import StepCache


@dataclass(frozen=True)
class KeyValues:
    """Projected keys and values, (B, H, S, Dh) each."""

    keys: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class Attended:
    """out: (B, T, D); weights: (B, T, S) averaged over heads, or None when not asked for."""

    out: torch.Tensor
    weights: torch.Tensor | None


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, heads: int, *, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, Dh)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def project(self, x: torch.Tensor) -> KeyValues:
        """x: (B, S, D) -> keys and values (B, H, S, Dh)."""
        return self.split_pair(self.key_value(x))

    def split_pair(self, projected: torch.Tensor) -> KeyValues:
        """The key_value projection (B, S, 2D) -> keys and values (B, H, S, Dh)."""
        keys, values = projected.chunk(2, dim=-1)
        return KeyValues(self._split(keys), self._split(values))

    def forward(self, x: torch.Tensor, kv: KeyValues, *, mask: torch.Tensor | None = None, causal: bool = False,
                weights: bool = False) -> Attended:
        """x: (B, T, D) queries; mask: (B, S) True on keys that take part, or None (all do)."""
        query = self._split(self.query(x))
        values = kv.values
        size = values.size(-1)
        if weights:
            # The weights come from the same fused call: an identity appended to the values
            # makes the extra output columns the attention matrix itself, (B, H, T, S).
            eye = torch.eye(values.size(2), dtype=values.dtype, device=values.device)
            values = torch.cat((values, eye.expand(*values.shape[:2], -1, -1)), dim=-1)
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(query, kv.keys, values, attn_mask=attn_mask, is_causal=causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        mixed = self.out(out[..., :size].transpose(1, 2).flatten(2))
        return Attended(mixed, out[..., size:].mean(dim=1) if weights else None)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, *, activation: str, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, hidden)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.dropout = Dropout(dropout)
        self.outer = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.outer(self.dropout(self.activation(self.inner(x))))


class Residual(nn.Module):
    """A sublayer's residual connection and layer norm, before (pre-norm) or after (post-norm):
    ``x = block.add(x, sublayer(block.inputs(x)))``."""

    def __init__(self, dim: int, *, pre_norm: bool, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pre_norm = pre_norm
        self.dropout = Dropout(dropout)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the sublayer reads: the normed stream (pre-norm) or the stream itself."""
        return self.norm(x) if self.pre_norm else x

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The stream after the sublayer's output ``y`` is added (and normed, post-norm)."""
        x = x + self.dropout(y)
        return x if self.pre_norm else self.norm(x)


def _blocks(config: ModelConfig, count: int) -> nn.ModuleList:
    return nn.ModuleList(
        Residual(config.model_dim, pre_norm=config.norm == "pre", dropout=config.dropout) for _ in range(count)
    )


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(config.model_dim, config.heads, dropout=config.attention_dropout)
        self.feed_forward = FeedForward(config.model_dim, config.ff_dim, activation=config.activation,
                                        dropout=config.activation_dropout)
        self.blocks = _blocks(config, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, S, D); mask: (B, S) True on tokens. Padded positions never reach a real one."""
        h = self.blocks[0].inputs(x)
        x = self.blocks[0].add(x, self.attention(h, self.attention.project(h), mask=mask).out)
        return self.blocks[1].add(x, self.feed_forward(self.blocks[1].inputs(x)))


@dataclass(frozen=True)
class DecoderLayerOutput:
    """x: (N, T, D); weights: cross-attention (N, T, S) or None."""

    x: torch.Tensor
    weights: torch.Tensor | None


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim, heads = config.model_dim, config.heads
        self.self_attention = MultiHeadAttention(dim, heads, dropout=config.attention_dropout)
        self.cross_attention = MultiHeadAttention(dim, heads, dropout=config.attention_dropout)
        self.feed_forward = FeedForward(dim, config.ff_dim, activation=config.activation,
                                        dropout=config.activation_dropout)
        self.blocks = _blocks(config, 3)

    def forward(self, x: torch.Tensor, *, memory: KeyValues, src_mask: torch.Tensor, cache: StepCache | None = None,
                index: int = 0, weights: bool = False) -> DecoderLayerOutput:
        """x: (N, T, D) the next T positions; memory: this layer's cross keys/values (n, H, S, Dh) and
        src_mask: (n, S), one row per source, shared by the N / n consecutive rows that decode it.

        cache: the earlier positions' keys/values, advanced for one new position (T = 1), in which this
        layer (decoder layer ``index``) stores its own; None for teacher forcing from position 0
        (causal self-attention over x).
        """
        assert cache is None or x.size(1) == 1, "a cached step feeds one position"
        attend_self, attend_source, feed_forward = self.blocks
        h = attend_self.inputs(x)
        projected = self.self_attention.key_value(h)  # (N, T, 2D)
        seen = self.self_attention.split_pair(projected) if cache is None else cache.write(index, projected)
        # Several positions at once come only from position 0 (teacher forcing) and need the causal mask;
        # an incremental step's one query may see every cached position.
        x = attend_self.add(x, self.self_attention(h, seen, causal=h.size(1) > 1).out)
        h = attend_source.inputs(x)
        # The rows of one source become extra queries of that source, (N, T) -> (n, N / n * T):
        # beams share the source's keys instead of copying them.
        cross = self.cross_attention(h.reshape(memory.keys.size(0), -1, h.size(-1)), memory, mask=src_mask,
                                     weights=weights)
        x = attend_source.add(x, cross.out.reshape(h.shape))
        x = feed_forward.add(x, self.feed_forward(feed_forward.inputs(x)))
        attention = None if cross.weights is None else cross.weights.reshape(*h.shape[:2], -1)
        return DecoderLayerOutput(x=x, weights=attention)


class Positions(nn.Module):
    """Position encodings, sinusoidal (fixed) or learned, for at most ``config.max_positions`` positions."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.limit, dim = config.max_positions, config.model_dim
        self.learned = nn.Embedding(self.limit, dim) if config.positions == "learned" else None
        table = None
        if self.learned is None:
            position = torch.arange(self.limit, dtype=torch.float32).unsqueeze(1)
            rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
            table = torch.zeros(self.limit, dim)
            table[:, 0::2] = torch.sin(position * rate)
            table[:, 1::2] = torch.cos(position * rate)[:, : dim // 2]
        self.register_buffer("table", table, persistent=False)

    def forward(self, start: int, length: int) -> torch.Tensor:
        """(length, D) encodings of positions start .. start + length - 1."""
        if start + length > self.limit:
            raise ConfigError(f"model.max_positions: position {start + length - 1} asked for, the model has {self.limit}")
        if self.learned is not None:
            return self.learned.weight[start : start + length]
        return self.table[start : start + length]
