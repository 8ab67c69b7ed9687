"""The full training state, saved atomically so that a killed run continues exactly.

It holds what a run needs to go on as if it had never stopped: weights,
optimizer moments, the loop's counters (:class:`Progress`: step, epoch and
position in it, best metric, patience, plateau memory), the Python and torch
RNG states, the data-order generator as it was at the start of the current
epoch, and the weight snapshots kept for averaging. Everything is a tensor or
a plain value, so it loads with ``torch.load(weights_only=True)``.

A state belongs to one run: it carries a fingerprint of the parameters and
data, and a state with another fingerprint is ignored. A finished run's state is
kept too: it lets a rerun whose outputs were lost (say, DVC could not cache
them) write them again instead of training again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.core.errors import SeqlabError
from seqlab.core.files import atomic_path, write_text
from seqlab.train.schedule import Plateau

FORMAT = "seqlab-train-state/1"


@dataclass(frozen=True)
class Progress:
    """The training loop's counters. Frozen: only the loop replaces them, so each change has one place."""

    step: int = 0  # optimizer updates done
    epoch: int = 1  # the epoch in progress (1-based)
    position: int = 0  # batches of that epoch already trained on
    best_metric: float = float("nan")  # set from validation.worst() at the start
    best_step: int = 0
    bad_validations: int = 0  # since the best; early stopping counts these
    plateau: Plateau = field(default_factory=Plateau)
    valid_step: int = -1  # step of the last validation, which is also its dvclive step
    loss_sum: float = 0.0  # training objective since the last validation ...
    loss_tokens: int = 0  # ... and its target tokens: the logged train loss
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Progress:
        return cls(**{**raw, "plateau": Plateau(**raw["plateau"])})


@dataclass(frozen=True)
class Saved:
    """A training state read back: what :func:`save_state` was given, plus the RNG states."""

    progress: Progress
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    epoch_generator: torch.Tensor  # data-order generator state at the start of progress.epoch
    rng: dict[str, Any] | list[dict[str, Any]]  # one per rank when several processes trained
    snapshots: list[dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ResumeCheck:
    """The outcome of looking for a state to resume: the state (or None) and a line saying why.

    ``saved.progress.finished`` says the run is complete: there is nothing left to train.
    """

    saved: Saved | None
    note: str

    @property
    def finished(self) -> bool:
        return self.saved is not None and self.saved.progress.finished


def fingerprint(*, params: dict[str, Any], arrays: Iterable[Sequence[np.ndarray]], blobs: Sequence[bytes]) -> str:
    """sha256 over the parameters (as sorted JSON), piece-id arrays and raw bytes (tokenizers, texts)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for side in arrays:
        # Lengths first, so that the same ids split differently hash differently.
        digest.update(np.array([len(a) for a in side], dtype=np.int64).tobytes())
        if len(side):
            digest.update(np.concatenate([np.asarray(a, dtype=np.int64) for a in side]).tobytes())
    for blob in blobs:
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)
    return digest.hexdigest()


def run_fingerprint(settings: dict[str, Any], *, train: Iterable[Sequence[np.ndarray]],
                    valid: Sequence[Sequence[np.ndarray]], valid_text: Sequence[str],
                    tokenizers: Sequence[bytes]) -> str:
    """The fingerprint of one training run: its settings, its train and valid ids (source and target
    sides), the raw valid text its metric decodes, and the tokenizer models. ``train`` is iterated
    once: subword samples are read one at a time."""
    return fingerprint(params=settings, arrays=itertools.chain(train, valid),
                       blobs=[*tokenizers, "\n".join(valid_text).encode()])


def capture_rng() -> dict[str, Any]:
    """Python's and torch's global RNG states (dropout draws from torch's)."""
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict[str, Any]) -> None:
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_state(path: str | Path, *, fingerprint: str, progress: Progress, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, epoch_generator: torch.Tensor,
               snapshots: list[dict[str, torch.Tensor]], rng: Any = None, world_size: int = 1) -> None:
    """Write the state atomically: a kill at any moment leaves the previous state whole.
    ``rng``: this process's RNG states when None; ``world_size``: the processes that trained it."""
    payload = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "progress": progress.as_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "epoch_generator": epoch_generator,
        "rng": capture_rng() if rng is None else rng,
        "world_size": world_size,
        "snapshots": snapshots,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: str | Path, *, fingerprint: str, world_size: int = 1) -> ResumeCheck:
    """The state at ``path`` if it is a run with this fingerprint (finished or not); else None and why.

    An unreadable file is not an error: the state only saves time, so the run
    starts fresh and says so.
    """
    path = Path(path)
    if not path.is_file():
        return ResumeCheck(None, "train: no saved training state; starting fresh")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        return ResumeCheck(None, f"train: {path} is not readable ({type(err).__name__}); starting fresh")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return ResumeCheck(None, f"train: {path} is not a {FORMAT} file; starting fresh")
    if payload["fingerprint"] != fingerprint:
        return ResumeCheck(None, f"train: {path} is from other parameters or data; starting fresh")
    saved_world = payload.get("world_size", 1)
    if saved_world != world_size:  # each rank's RNG streams and data share belong to that world size
        raise SeqlabError(f"train: {path} was saved by {saved_world} processes, this run has {world_size}; "
                          f"set train.nproc_per_node/nnodes back, or remove {path.parent} to start over")
    progress = Progress.from_dict(payload["progress"])
    saved = Saved(progress=progress, model=payload["model"], optimizer=payload["optimizer"],
                  epoch_generator=payload["epoch_generator"], rng=payload["rng"], snapshots=payload["snapshots"])
    if progress.finished:
        return ResumeCheck(saved, f"train: {path} is of a finished run of these parameters and data; "
                                  f"writing its outputs without training")
    return ResumeCheck(saved, f"train: resuming from step {progress.step} "
                              f"(epoch {progress.epoch}, batch {progress.position}) of {path}")


def trim_live_log(directory: str | Path, *, last_step: int) -> None:
    """Drop dvclive history rows logged after ``last_step``.

    A run killed after a validation but before the next state save logged rows
    that the resumed run will log again; without this the curves would hold
    those steps twice. A half-written last row is dropped too.
    """
    for path in sorted(Path(directory, "plots", "metrics").rglob("*.tsv")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or "step" not in lines[0].split("\t"):
            path.unlink()  # created but never completed: the resumed run writes it again
            continue
        header, *rows = lines
        column = header.split("\t").index("step")
        kept = [row for row in rows if _step_of(row, column, len(header.split("\t"))) <= last_step]
        if len(kept) != len(rows):
            write_text(path, "".join(f"{line}\n" for line in (header, *kept)))


def _step_of(row: str, column: int, width: int) -> float:
    cells = row.split("\t")
    try:
        return int(cells[column]) if len(cells) == width and cells[-1] else float("inf")
    except ValueError:
        return float("inf")
