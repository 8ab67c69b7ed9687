"""The decoder's state between steps, and how search selects and reorders its rows."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


def _rows(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> torch.Tensor | None:
    return None if tensor is None else tensor.index_select(dim, index)


def shared_sources(owner: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Encoder rows for state rows that read encoder row ``owner`` (N,), shared where possible.

    When ``owner`` is a list of encoder rows each repeated the same W times in
    a run (the K beams of each sentence), returns those rows (N / W,) and W:
    the runs can share one copy. Otherwise every state row gets its own: (owner, 1).
    """
    if owner.numel() == 0:
        return owner, 1
    starts = torch.cat((owner.new_ones(1, dtype=torch.bool), owner[1:] != owner[:-1])).nonzero().view(-1)
    width = owner.numel() // starts.numel()
    if width > 1 and starts.numel() * width == owner.numel():
        if torch.equal(starts, torch.arange(0, owner.numel(), width, device=owner.device)):
            return owner[starts], width
    return owner, 1


@dataclass(frozen=True)
class DecoderState:
    """Everything one decoding step needs, for N rows (sentences, or sentences x beams).

    The encoder-side fields have one row per source (n rows), shared by the
    ``rows_per_source`` = N / n consecutive state rows that decode it (the
    beams of a sentence), so beams neither copy nor carry them.

    hidden: (L, N, H) recurrent state; cell: (L, N, H) LSTM cells or None for a
    GRU; feed: (N, H) previous attentional vector (input feeding); memory:
    (n, S, D) encoder states; proj_keys: (n, S, A) attention keys, projected
    once; src_mask: (n, S) True on tokens; src_ids: (n, S) source ids (for
    copying); coverage: (N, S) attention summed so far, or None.

    memory_out: (n, S, H) the memory through the context half of the combine
    layer (:meth:`Decoder.project_memory`), or None. Search sets it: the
    combine layer then adds weights @ memory_out, one product per source,
    instead of multiplying every row's (D,) context by a (D, H) matrix at every
    step. Training leaves it None (its gradients go through the tape).
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None
    feed: torch.Tensor
    memory: torch.Tensor
    proj_keys: torch.Tensor
    src_mask: torch.Tensor
    src_ids: torch.Tensor
    coverage: torch.Tensor | None = None
    rows_per_source: int = 1
    memory_out: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` (drop finished sentences, expand to beams); the encoder-side fields follow."""
        sources, width = shared_sources(torch.div(index, self.rows_per_source, rounding_mode="floor"))
        return DecoderState(
            hidden=self.hidden.index_select(1, index),
            cell=_rows(self.cell, index, 1),
            feed=self.feed.index_select(0, index),
            memory=self.memory.index_select(0, sources),
            proj_keys=self.proj_keys.index_select(0, sources),
            src_mask=self.src_mask.index_select(0, sources),
            src_ids=self.src_ids.index_select(0, sources),
            coverage=_rows(self.coverage, index),
            rows_per_source=width,
            memory_out=_rows(self.memory_out, sources),
        )

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Reorder the per-hypothesis fields only; ``index`` must stay within each sentence's rows.

        The encoder-side fields are identical across a sentence's beams, so
        following beam back-pointers need not copy them.
        """
        return replace(
            self,
            hidden=self.hidden.index_select(1, index),
            cell=_rows(self.cell, index, 1),
            feed=self.feed.index_select(0, index),
            coverage=_rows(self.coverage, index),
        )

    def row_src_ids(self) -> torch.Tensor:
        """(N, S) source ids of each state row."""
        return self.src_ids.repeat_interleave(self.rows_per_source, dim=0)
