"""Attention over encoder states: Bahdanau (additive), Luong dot and general, and none.

The caller projects the keys once per source batch with ``project_keys`` and
passes them to every step; no module keeps state between calls. Padding gets
exactly zero weight. A new kind subclasses :class:`Attention`: the decoder's
step reaches every kind through ``query_weight`` and ``attend`` alone.

Queries come in N = n x W rows for n sources: the W consecutive rows of a
source (its beams) share one copy of its keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.model.tape import WeightGradTape


@dataclass(frozen=True)
class AttentionOutput:
    """context: (N, Dv) weighted sum of values; weights: (N, S), zero on padding."""

    context: torch.Tensor
    weights: torch.Tensor


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scores: (..., S); mask: broadcastable to it. -inf before the softmax gives padding exactly zero, not merely small."""
    return torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1)


def _output(weights: torch.Tensor, values: torch.Tensor, tape: WeightGradTape | None) -> AttentionOutput:
    """weights: (n, W, S); values: (n, S, Dv) -> context (N, Dv) and weights (N, S), N = n x W.
    With a tape, ``values`` must be the tape's: their gradient is deferred to it."""
    context = torch.bmm(weights, values) if tape is None or tape.values is None else tape.attend(weights)
    return AttentionOutput(context=context.view(-1, values.size(-1)), weights=weights.view(-1, weights.size(-1)))


class Attention(nn.Module):
    """What the decoder's step calls: a query through :meth:`query_weight` (the step makes that
    product, so training can fuse it with others), then :meth:`attend`."""

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys: (n, S, Dk) -> (n, S, A), once per source batch."""
        raise NotImplementedError

    def query_weight(self) -> torch.Tensor | None:
        """(A, Dq) the weight applied to the query every step; None: the query is used as it is."""
        return None

    def attend(
        self,
        query: torch.Tensor,
        proj_keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        tape: WeightGradTape | None = None,
    ) -> AttentionOutput:
        """query: (N, A) already through :meth:`query_weight`; proj_keys: (n, S, A); values: (n, S, Dv);
        mask: (n, S) True on tokens; coverage: (N, S) attention summed over earlier steps, when the
        model uses coverage; tape: defers the values' gradient (training)."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        proj_keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        tape: WeightGradTape | None = None,
    ) -> AttentionOutput:
        """:meth:`attend` for a raw query (N, Dq); tape also defers the query weight's gradient."""
        weight = self.query_weight()
        if weight is not None:
            query = nn.functional.linear(query, weight) if tape is None else tape.linear(weight, query)
        return self.attend(query, proj_keys, values, mask, coverage, tape=tape)


class BahdanauAttention(Attention):
    """score(q, k) = v^T tanh(W_q q + W_k k [+ w_c coverage]) (Bahdanau et al. 2015; See et al. 2017)."""

    def __init__(self, *, query_dim: int, key_dim: int, attention_dim: int, coverage: bool = False) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=False)
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.energy = nn.Linear(attention_dim, 1, bias=False)
        self.coverage_proj = nn.Linear(1, attention_dim, bias=False) if coverage else None

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys: (N, S, Dk) -> (N, S, A)."""
        return self.key_proj(keys)

    def query_weight(self) -> torch.Tensor | None:
        return self.query_proj.weight

    def attend(
        self,
        query: torch.Tensor,
        proj_keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        tape: WeightGradTape | None = None,
    ) -> AttentionOutput:
        n, s, a = proj_keys.shape
        hidden = proj_keys.unsqueeze(1) + query.view(n, -1, 1, a)  # (n, W, S, A)
        if self.coverage_proj is not None:
            hidden = hidden + self.coverage_proj(coverage.view(n, -1, s, 1).to(hidden.dtype))
        # in place: the (n, W, S, A) sum is a fresh temporary, and tanh's backward needs only its output
        weights = masked_softmax(self.energy(hidden.tanh_()).squeeze(-1), mask.unsqueeze(1)).to(values.dtype)
        return _output(weights, values, tape)


class LuongAttention(Attention):
    """Multiplicative attention (Luong et al. 2015): ``dot`` is q . k, ``general`` is q . W k."""

    def __init__(self, *, query_dim: int, key_dim: int, general: bool) -> None:
        super().__init__()
        # For `general`, W is applied to the keys once per batch instead of to the query every step.
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False) if general else None

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys: (N, S, Dk) -> (N, S, Dq)."""
        return keys if self.key_proj is None else self.key_proj(keys)

    def attend(
        self,
        query: torch.Tensor,
        proj_keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        tape: WeightGradTape | None = None,
    ) -> AttentionOutput:
        """query: (N, Dq); proj_keys: (n, S, Dq); values: (n, S, Dv); mask: (n, S) True on tokens."""
        scores = torch.bmm(query.view(proj_keys.size(0), -1, query.size(-1)), proj_keys.transpose(1, 2))  # (n, W, S)
        weights = masked_softmax(scores, mask.unsqueeze(1)).to(values.dtype)
        return _output(weights, values, tape)


class NoAttention(Attention):
    """The ablation: a zero context and zero weights, so the decoder sees only the bridge state."""

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return keys[:, :, :0]

    def attend(
        self,
        query: torch.Tensor,
        proj_keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        coverage: torch.Tensor | None = None,
        *,
        tape: WeightGradTape | None = None,
    ) -> AttentionOutput:
        weights = values.new_zeros(query.size(0), mask.size(1))
        return AttentionOutput(context=values.new_zeros(query.size(0), values.size(2)), weights=weights)


def build_attention(
    kind: str, *, query_dim: int, key_dim: int, attention_dim: int, coverage: bool
) -> Attention:
    """The attention named by ``model.attention``."""
    if kind == "bahdanau":
        return BahdanauAttention(query_dim=query_dim, key_dim=key_dim, attention_dim=attention_dim, coverage=coverage)
    if kind in ("dot", "general"):
        return LuongAttention(query_dim=query_dim, key_dim=key_dim, general=kind == "general")
    if kind == "none":
        return NoAttention()
    raise ValueError(f"unknown attention {kind!r}")
