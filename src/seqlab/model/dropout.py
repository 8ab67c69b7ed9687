"""Dropout whose CPU mask costs half the random-number generation of ``nn.Dropout``.

On CPU, ``nn.Dropout`` draws one 32-bit random number per element from a
serial generator, a visible part of a training step (the README's "How
training runs fast on a CPU" gives the figures). Here each 64-bit draw gives
four 16-bit uniforms, one per element, so the keep probability is quantised
to 1/65536 (for p = 0.1: 0.899994 instead of 0.9), and kept values are scaled
by the exact inverse of it, so the expectation is still the input's. Draws come from torch's global generator:
seeding and checkpointed RNG state cover it as they cover ``nn.Dropout``.
Other devices use ``nn.functional.dropout``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LEVELS = 1 << 16


def keep_mask(shape: torch.Size, p: float, *, dtype: torch.dtype) -> torch.Tensor:
    """A ``shape`` mask of 0 and 1 / q, where q = 1 - round(p * 65536) / 65536 is the keep probability."""
    dropped = round(p * LEVELS)
    numel = shape.numel()
    draws = torch.empty((numel + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)
    uniform = draws.view(torch.int16)[:numel].view(shape)  # each on -32768..32767
    mask = (uniform >= dropped - LEVELS // 2).to(dtype)
    return mask.mul_(LEVELS / (LEVELS - dropped))


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return x * keep_mask(x.shape, self.p, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"
