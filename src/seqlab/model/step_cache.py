"""The decoder's self-attention cache for incremental decoding: every layer's keys and values of the
positions fed so far, in one time-major buffer.

Shapes: C capacity (positions), N rows, L decoder layers, H heads, Dh = D / H.

Why this layout: a search step appends one position and, following the beams' back-pointers,
picks the rows every later step continues. Kept as (N, H, t, Dh) tensors per layer, that meant a
``cat`` along time (a strided copy, the slowest kind on CPU) and a fresh ``index_select`` per
layer and per keys/values, each into newly allocated memory: on 2 CPU cores these copies cost
more than the step's attention. Here the buffer is (C, N, L, 2, H, Dh): positions ``:t`` are
one contiguous block, so a step gathers all layers' rows with one ``index_select`` into a
spare buffer it already owns, and each layer writes its new keys/values as one slice. Row
selections (:meth:`select`) are only recorded, and composed, until the next step performs them.

A cache is used once: :meth:`advance` may reuse the buffers of the cache it came from, so
decode from the state a step returns, never twice from the same one.

Buffers on the CPU come from a small pool (:class:`BufferPool`) that takes back those of caches
no longer referenced, so the next batch of a search reuses the last one's memory. A buffer of
320 rows runs to tens of MB, above glibc's mmap threshold: freshly allocated, every page of it
faulted on first touch, about 150,000 faults (580 MB) over the 1,000 Multi30k test sentences.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, replace

import torch

from seqlab.model.transformer_layers import KeyValues

MIN_CAPACITY = 16  # positions a buffer holds at least; it doubles when a step needs more
POOL_BLOCKS = 2  # free buffers kept of each kind (a search alternates between two)
POOL_BYTES = 256 * 2**20  # at most this much kept free of each kind: a pool outlives the search (validation in training)


class BufferPool:
    """Flat CPU buffers handed out as views; a buffer returns to the pool when the view handed out
    is garbage, and only then (views taken from that view are valid while it is alive, as a
    cache's are). Buffers made under ``torch.inference_mode`` (search) serve only there: outside it
    they cannot be written. Keeps the largest free buffers of each kind, at most ``blocks`` of them and
    ``max_bytes`` in all, and gives the smallest that fits. Elsewhere (CUDA has its caching
    allocator) it allocates."""

    def __init__(self, blocks: int = POOL_BLOCKS, max_bytes: int = POOL_BYTES) -> None:
        self.blocks, self.max_bytes = blocks, max_bytes
        self._free: dict[tuple[torch.dtype, bool], list[torch.Tensor]] = {}  # by dtype and is_inference
        self._lock = threading.Lock()

    def take(self, numel: int, *, like: torch.Tensor) -> torch.Tensor:
        """(numel,) uninitialised, of ``like``'s dtype and device."""
        if like.device.type != "cpu":
            return like.new_empty(numel)
        with self._lock:
            free = self._free.setdefault((like.dtype, torch.is_inference_mode_enabled()), [])
            fits = [i for i, block in enumerate(free) if block.numel() >= numel]
            block = free.pop(min(fits, key=lambda i: free[i].numel())) if fits else None
        if block is None:
            block = like.new_empty(numel)
        view = block[:numel]
        weakref.finalize(view, self._give_back, block).atexit = False
        return view

    def _give_back(self, block: torch.Tensor) -> None:
        kind = (block.dtype, block.is_inference())
        with self._lock:
            kept, size = [], 0
            for candidate in sorted((*self._free.get(kind, ()), block), key=torch.Tensor.numel, reverse=True):
                nbytes = candidate.numel() * candidate.element_size()
                if len(kept) < self.blocks and size + nbytes <= self.max_bytes:
                    kept.append(candidate)
                    size += nbytes
            self._free[kind] = kept


POOL = BufferPool()


@dataclass(frozen=True)
class StepCache:
    """storage: flat, holding the buffer (C, N, L, 2, H, Dh) with positions ``:length`` filled;
    tail: (L, 2, H, Dh); rows: (N',) the buffer rows that the next step's rows continue, or None
    (row i continues row i); spare: flat storage the next gather writes into."""

    storage: torch.Tensor
    spare: torch.Tensor
    length: int
    buffer_rows: int
    tail: tuple[int, int, int, int]
    rows: torch.Tensor | None = None

    @staticmethod
    def empty(rows: int, *, layers: int, heads: int, head_dim: int, like: torch.Tensor) -> StepCache:
        """No positions yet for ``rows`` rows; buffers take ``like``'s dtype and device when first needed."""
        none = like.new_empty(0)
        return StepCache(storage=none, spare=none, length=0, buffer_rows=rows, tail=(layers, 2, heads, head_dim))

    @property
    def buffer(self) -> torch.Tensor:
        """(C, N, L, 2, H, Dh) view of the storage."""
        per_position = self.buffer_rows * math.prod(self.tail)
        capacity = self.storage.numel() // per_position if per_position else 0
        return self.storage[: capacity * per_position].view(capacity, self.buffer_rows, *self.tail)

    def select(self, index: torch.Tensor) -> StepCache:
        """Row i of the next step continues this cache's row ``index[i]``; done by the next :meth:`advance`."""
        rows = index if self.rows is None else self.rows.index_select(0, index)
        return replace(self, rows=rows)

    def advance(self) -> StepCache:
        """The cache with room for one more position (``length`` + 1), rows selected, ready for :meth:`write`."""
        t, buffer = self.length, self.buffer
        if self.rows is None and buffer.size(0) > t:
            return replace(self, length=t + 1)
        rows = self.buffer_rows if self.rows is None else self.rows.numel()
        per_position = rows * math.prod(self.tail)
        spare = self.spare
        if spare.numel() < (t + 1) * per_position:
            spare = POOL.take(max(2 * (t + 1), MIN_CAPACITY) * per_position, like=self.storage)
        capacity = spare.numel() // per_position
        target = spare[: capacity * per_position].view(capacity, rows, *self.tail)
        if t and self.rows is None:
            target[:t].copy_(buffer[:t])
        elif t:
            torch.index_select(buffer[:t], 1, self.rows, out=target[:t])
        return StepCache(storage=spare, spare=self.storage, length=t + 1, buffer_rows=rows, tail=self.tail)

    def write(self, layer: int, key_values: torch.Tensor) -> KeyValues:
        """Store ``layer``'s keys/values of the newest position, key_values: (N, 2 * H * Dh) as the
        projection gives them; returns that layer's keys and values of every position, (N, H, t, Dh)."""
        assert self.rows is None, "advance() the cache before writing to it"
        buffer = self.buffer
        position = buffer[self.length - 1, :, layer]  # (N, 2, H, Dh)
        position.copy_(key_values.view(position.shape))
        seen = buffer[: self.length, :, layer]  # (t, N, 2, H, Dh)
        return KeyValues(seen[:, :, 0].permute(1, 2, 0, 3), seen[:, :, 1].permute(1, 2, 0, 3))
