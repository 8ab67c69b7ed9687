"""The decoder's self-attention cache: keys and values of every position fed so far, per layer.

Stored position-major, (C, N, H, Dh) for capacity C >= t positions of N rows,
so that each step writes its one new position as a contiguous slab in place
instead of copying the whole prefix (``torch.cat``), and a beam reorder copies
only the t filled positions. Attention reads the prefix as a strided
(N, H, t, Dh) view, which ``scaled_dot_product_attention`` takes as it is.

A cache value is immutable to its holders: appending writes position t of the
shared buffers only while no other successor of the same cache has, and
copies the prefix to fresh buffers otherwise, so an old cache, or a second
step from the same one, always reads what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FIRST_CAPACITY = 32  # positions; doubled when full (captions and headlines mostly fit)


class _Buffers:
    """Keys and values (C, N, H, Dh), and how many positions some cache has written."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int) -> None:
        self.keys, self.values, self.filled = keys, values, filled


@dataclass(frozen=True)
class SelfCache:
    """The first ``length`` positions of ``buffers``: N rows, H heads, Dh per head."""

    buffers: _Buffers
    length: int

    @staticmethod
    def empty(rows: int, heads: int, head_dim: int, *, like: torch.Tensor) -> SelfCache:
        shape = (FIRST_CAPACITY, rows, heads, head_dim)
        return SelfCache(_Buffers(like.new_empty(shape), like.new_empty(shape), 0), 0)

    @property
    def keys(self) -> torch.Tensor:
        """(N, H, t, Dh) view."""
        return self.buffers.keys[: self.length].permute(1, 2, 0, 3)

    @property
    def values(self) -> torch.Tensor:
        """(N, H, t, Dh) view."""
        return self.buffers.values[: self.length].permute(1, 2, 0, 3)

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> SelfCache:
        """keys, values: (N, H, 1, Dh) of the next position. The cache one position longer."""
        t, buffers = self.length, self.buffers
        if buffers.filled != t or t == buffers.keys.size(0):
            # Another step from this cache wrote position t already, or the buffers are full.
            capacity = buffers.keys.size(0) * (2 if t == buffers.keys.size(0) else 1)
            buffers = self._copy(torch.arange(buffers.keys.size(1), device=keys.device), capacity)
        buffers.keys[t] = keys[:, :, 0]
        buffers.values[t] = values[:, :, 0]
        buffers.filled = t + 1
        return SelfCache(buffers, t + 1)

    def rows(self, index: torch.Tensor) -> SelfCache:
        """Rows ``index`` (N',) of every position, in new buffers of the same capacity."""
        return SelfCache(self._copy(index, self.buffers.keys.size(0)), self.length)

    def _copy(self, index: torch.Tensor, capacity: int) -> _Buffers:
        old = self.buffers
        shape = (capacity, index.numel(), *old.keys.shape[2:])
        keys, values = old.keys.new_empty(shape), old.values.new_empty(shape)
        t = self.length
        torch.index_select(old.keys[:t], 1, index, out=keys[:t])
        torch.index_select(old.values[:t], 1, index, out=values[:t])
        return _Buffers(keys, values, t)
