"""How a global batch is shared out: among the processes, and within each among its micro-batches.

Each global batch (of processes x accumulate x batch_tokens padded tokens, see
:func:`seqlab.train.batches.bucket_indices`) is cut into ``world x accumulate``
contiguous shares of its rows, balanced by target tokens; process ``r`` takes
shares ``r*A .. r*A+A-1``, one per micro-step. Every process computes every
cut from the lengths alone, so the split needs no communication and is the
same on every run. Each share's summed loss is divided by the *global* batch's
target tokens, so however the rows are split the update is the whole batch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqlab.model.batch import Batch
from seqlab.train.batches import EncodedSplit


@dataclass(frozen=True)
class Micro:
    """One micro-step's rows. ``weight`` 0 marks a stand-in for an empty share (a batch of fewer
    rows than shares): it runs forward and backward so that every process joins the all-reduce,
    but adds nothing to the gradient."""

    batch: Batch
    weight: float


@dataclass(frozen=True)
class StepWork:
    """What one process does for one update: its micro-batches and the global batch's target tokens."""

    micro: list[Micro]
    global_tokens: int


def split_shares(rows: np.ndarray, tokens: np.ndarray, *, parts: int) -> list[np.ndarray]:
    """Cut ``rows`` (in their order) into ``parts`` contiguous shares of about equal ``tokens[rows]``.

    No share is empty while there are at least ``parts`` rows; with fewer, the last shares are.
    """
    n = len(rows)
    if parts == 1:
        return [rows]
    if n <= parts:
        return [rows[i:i + 1] for i in range(parts)]
    cumulative = np.cumsum(tokens[rows])
    cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, parts) / parts, side="left") + 1
    bounded = []
    for k, cut in enumerate(cuts, start=1):  # each share keeps at least one row while rows last
        low = bounded[-1] + 1 if bounded else 1
        bounded.append(int(min(max(cut, low), n - parts + k)))
    edges = [0, *bounded, n]
    return [rows[a:b] for a, b in zip(edges, edges[1:])]


def target_tokens(data: EncodedSplit) -> np.ndarray:
    """Per pair: target pieces plus EOS, the tokens its loss sums over."""
    return np.array([len(t) + 1 for t in data.tgt], dtype=np.int64)


def step_work(data: EncodedSplit, rows: np.ndarray, tokens: np.ndarray, *, rank: int, world: int,
              accumulate: int, device: torch.device) -> StepWork:
    """Process ``rank``'s micro-batches of the global batch ``rows``."""
    shares = split_shares(rows, tokens, parts=world * accumulate)
    micro = []
    for share in shares[rank * accumulate:(rank + 1) * accumulate]:
        if len(share):
            micro.append(Micro(data.batch(share).to(device), 1.0))
        else:
            micro.append(Micro(data.batch(rows[:1]).to(device), 0.0))
    return StepWork(micro=micro, global_tokens=int(tokens[rows].sum()))
