"""The processes of a torchrun launch: who this one is, the process group, the collectives training uses.

One process (no torchrun) is a :class:`World` of size 1, and every helper here
is then a no-op, so the training loop reads the same either way.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from seqlab.model.runtime import DeviceClaim, claim_device, pick_device

T = TypeVar("T")

# A dead peer usually breaks the connection at once; this bounds the wait when it does not.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started (RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0: the one that validates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """The world torchrun describes in the environment; one process when not under torchrun."""
    if "RANK" not in os.environ:
        return World()
    return World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                 local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "RANK" in os.environ


def start(world: World, device: torch.device) -> None:
    """Join the process group: NCCL on CUDA, gloo on CPU. Rendezvous is torchrun's (MASTER_ADDR/PORT)."""
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank,
                                world_size=world.size, timeout=TIMEOUT)


def device_for(name: str, world: World) -> DeviceClaim:
    """train.device for this process: under torchrun on CUDA, the GPU of its local rank; alone,
    ``auto`` claims a free GPU (see :func:`claim_device`). Keep the claim alive while training."""
    device = pick_device(name)
    if device.type != "cuda" or not world.distributed:
        return claim_device(name)
    torch.cuda.set_device(world.local_rank)
    return DeviceClaim(torch.device("cuda", world.local_rank))


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DDP around ``model`` (it copies rank 0's weights to every rank); the model itself alone."""
    if not world.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def from_leader(value: T, world: World) -> T:
    """Rank 0's ``value`` on every rank: decisions (validation, stopping) are taken once."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, world: World) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not world.distributed:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def total(value: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of ``value`` over the ranks (a scalar tensor on the training device)."""
    if world.distributed:
        dist.all_reduce(value)
    return value


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
