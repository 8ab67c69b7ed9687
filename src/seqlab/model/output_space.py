"""The output layer's index space: every tokenizer piece, or only those the training targets use.

With ``model.output_vocab: target`` a model's outputs are indexed by position in
``output_ids`` (V_out,), the sorted pieces the training targets use; search works
in that space and :meth:`OutputSpace.to_output` / :meth:`OutputSpace.to_pieces`
translate. The special pieces come first in both, so PAD, UNK, BOS and EOS have
the same index in each.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqlab.tokenizer import UNK_ID

# Copy and generation probabilities are mixed in probability space; this floor
# keeps log() finite for tokens that neither can produce.
PROB_FLOOR = 1e-12


def mix_copy_probs(logits: torch.Tensor, p_gen: torch.Tensor, attention: torch.Tensor,
                   src: torch.Tensor) -> torch.Tensor:
    """The pointer-generator mixture (See et al. 2017), for both architectures. logits: (B, T, V);
    p_gen: (B, T, 1) float32; attention: (B, T, S) the copy distribution; src: (B, S) source piece ids
    (a joint vocabulary: they are output indices). Returns log(p_gen * P_vocab + (1 - p_gen) * P_copy),
    (B, T, V) float32."""
    generated = torch.softmax(logits.float(), dim=-1) * p_gen
    index = src.unsqueeze(1).expand(-1, attention.size(1), -1)
    mixed = generated.scatter_add(2, index, attention.float() * (1.0 - p_gen))
    return torch.log(mixed.clamp_min(PROB_FLOOR))


class OutputSpace(nn.Module):
    """Base of a model with an output index space; registers the ``output_ids`` buffer checkpoints carry."""

    def init_output_space(self, *, tgt_vocab: int, output_ids: torch.Tensor | None, target_only: bool) -> int:
        """Register the buffers; returns V_out, the output layer's size."""
        if target_only != (output_ids is not None):
            raise ValueError("output_ids go with model.output_vocab: target, and only with it")
        self.register_buffer("output_ids", None if output_ids is None else output_ids.long().clone())
        # host copy for piece_ids: reading the buffer per hypothesis would sync with the GPU each time
        self._output_table = None if output_ids is None else output_ids.long().tolist()
        index = None
        if output_ids is not None:  # piece id -> output index; pieces no training target uses count as UNK
            index = torch.full((tgt_vocab,), UNK_ID, dtype=torch.long)
            index[output_ids.long()] = torch.arange(output_ids.numel())
        self.register_buffer("output_index", index, persistent=False)
        return tgt_vocab if output_ids is None else output_ids.numel()

    def to_output(self, piece_ids: torch.Tensor) -> torch.Tensor:
        """Piece ids -> output indices (targets for the loss); unchanged with output_vocab: full."""
        return piece_ids if self.output_index is None else self.output_index[piece_ids]

    def to_pieces(self, outputs: torch.Tensor) -> torch.Tensor:
        """Output indices (what search emits) -> piece ids; unchanged with output_vocab: full."""
        return outputs if self.output_ids is None else self.output_ids[outputs]

    def piece_ids(self, outputs: list[int]) -> list[int]:
        """A finished hypothesis' output indices as piece ids, for the tokenizer."""
        return outputs if self._output_table is None else [self._output_table[i] for i in outputs]


class TiedRowsOutput(nn.Module):
    """The output layer of a model with tied embeddings and ``output_vocab: target``: its weight
    is the target embedding's rows of the output pieces, its bias (V_out,) its own. The model
    gathers the rows once per forward pass or search (``encode``), not once per step, and never
    keeps them past it: an optimizer step (fused Adam included) changes the embedding in place."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """hidden: (..., D); rows: (V_out, D) -> logits (..., V_out)."""
        return F.linear(hidden, rows, self.bias)
