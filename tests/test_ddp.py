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


def test_a_state_saved_by_another_number_of_processes_is_refused_in_one_line(tmp_path: Path) -> None:
    from seqlab.core.errors import SeqlabError
    from seqlab.train.state import Progress, load_state, save_state

    model = torch.nn.Linear(2, 2)
    save_state(tmp_path / "state.pt", fingerprint="fp", progress=Progress(step=3), model=model,
               optimizer=torch.optim.Adam(model.parameters()), epoch_generator=torch.Generator().get_state(),
               snapshots=[], rng=[{}, {}], world_size=2)
    assert load_state(tmp_path / "state.pt", fingerprint="fp", world_size=2).saved.progress.step == 3
    with pytest.raises(SeqlabError) as info:
        load_state(tmp_path / "state.pt", fingerprint="fp", world_size=1)
    assert str(info.value).startswith(f"train: {tmp_path / 'state.pt'} was saved by 2 processes, this run has 1;")
    assert "\n" not in str(info.value)
