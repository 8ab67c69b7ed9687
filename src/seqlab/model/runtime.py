"""Where and how tensors run: seeding, device choice, mixed precision, kernel caches."""

from __future__ import annotations

import contextlib
import os
import random

import torch

from seqlab.core.errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python and torch (CPU and CUDA) so a stage is repeatable."""
    random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; asking for absent CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def autocast(device: torch.device, *, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, and on CPU when ``cpu_bf16``; full precision otherwise."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int) -> None:
    """Cap torch's intra-op threads; 0 leaves torch's default (one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)


# oneDNN, which runs bf16 matmuls on the CPU, keeps a compiled kernel and its buffers for each
# input shape it meets, up to 1,024 by default. Length-bucketed batches bring new shapes nearly
# every step, so the default cache grows training's memory several-fold; a small bound keeps
# most of the reuse (no cache at all recompiles every kernel). The README's Multi30k section
# gives the figures.
ONEDNN_CACHE_CAPACITY = 64


def limit_kernel_cache() -> None:
    """Bound oneDNN's per-shape kernel cache, unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is already set.
    oneDNN reads the variable once, when it builds its first kernel: call this before any bf16 work."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
