"""DistributedDataParallel on CPU (gloo, 2 processes): one update on two ranks, each with its share of a
global batch, equals one single-process update on the whole batch (fp32, weights within 1e-6)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_accumulate import CPU, make_tiny, max_difference, one_update

from seqlab.train.distributed import World, start, stop, wrap


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, accumulate: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = World(rank=rank, size=2)
    start(world, CPU)
    try:
        weights = one_update(make_tiny(), accumulate=accumulate, world=world, wrap=lambda m: wrap(m, world, CPU))
        torch.save(weights, f"{out}.{rank}")
    finally:
        stop()


@pytest.mark.parametrize("accumulate", [1, 2])
def test_one_update_on_two_ranks_equals_one_update_on_the_whole_batch(tmp_path: Path, accumulate: int) -> None:
    out = str(tmp_path / "weights")
    mp.spawn(_rank, args=(free_port(), accumulate, out), nprocs=2)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    assert max_difference(ranks[0], ranks[1]) == 0.0  # DDP keeps the replicas identical
    assert max_difference(ranks[0], one_update(make_tiny(), accumulate=1)) < 1e-6
