"""Where and how tensors run: seeding, device choice, mixed precision, kernel caches."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from seqlab.core.errors import ConfigError

# Machine-wide, not per project: the experiments of a `dvc queue` run in copies of the project.
GPU_LOCKS = Path(tempfile.gettempdir()) / "seqlab-gpu-locks"


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


@dataclass(frozen=True)
class DeviceClaim:
    """A device and, for a claimed GPU, the open lock file that holds it until this process exits."""

    device: torch.device
    lock: IO | None = None


def claim_device(name: str, *, lock_dir: Path = GPU_LOCKS, count: int | None = None,
                 visible: str | None = None) -> DeviceClaim:
    """``auto`` with CUDA present: the first GPU no other seqlab process holds, by an advisory lock
    (fcntl) on a file per device, so that experiments run at once (``dvc queue start -j N``) do not
    all land on GPU 0. The kernel drops the lock when the process ends, however it ends.

    count: devices torch sees (default: torch's count); visible: CUDA_VISIBLE_DEVICES (default: the
    environment's), whose ids name the lock files, since device 0 of one process may be another's 1.
    When every GPU is held, waits for the first.
    """
    if count is None:
        count = torch.cuda.device_count() if name == "auto" and torch.cuda.is_available() else 0
    if name != "auto" or count == 0:
        return DeviceClaim(pick_device(name))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    ids = [v.strip() for v in visible.split(",")][:count] if visible else [str(i) for i in range(count)]
    lock_dir.mkdir(parents=True, exist_ok=True)
    for ordinal, device_id in enumerate(ids):
        lock = open(lock_dir / f"gpu-{device_id}.lock", "a+")  # noqa: SIM115 (held until exit)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return DeviceClaim(torch.device("cuda", ordinal), lock)
    print(f"device: every GPU ({', '.join(ids)}) is held by another seqlab process; waiting for GPU {ids[0]}",
          flush=True)
    lock = open(lock_dir / f"gpu-{ids[0]}.lock", "a+")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    return DeviceClaim(torch.device("cuda", 0), lock)


def autocast(device: torch.device, *, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, and on CPU when ``cpu_bf16``; full precision otherwise."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lstm_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Around a packed ``nn.LSTM`` call: oneDNN builds no bf16 LSTM kernel on CPUs without AVX-512
    (AMD Zen 1, older Intel), so under CPU autocast there the call fails. There it runs in fp32,
    autocast off; elsewhere as autocast has it."""
    no_bf16_kernel = torch.backends.cpu.get_cpu_capability() != "AVX512"
    if device.type == "cpu" and torch.is_autocast_enabled("cpu") and no_bf16_kernel:
        return torch.autocast("cpu", enabled=False)
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
