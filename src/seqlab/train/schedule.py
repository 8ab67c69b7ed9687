"""Learning-rate schedules as pure functions of the optimizer step.

:func:`learning_rate` gives the rate of the ``step``-th update (1-based) from
the step alone, so a resumed run needs no scheduler state. The one schedule
that depends on validation results, ``plateau``, keeps its memory in a small
frozen :class:`Plateau` that :func:`plateau_update` advances once per validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from seqlab.core.run_config import TrainConfig


@dataclass(frozen=True)
class Plateau:
    """The plateau schedule's memory: the current fraction of ``train.lr`` and the
    validations since the last improvement or reduction."""

    scale: float = 1.0
    bad: int = 0


def planned_steps(config: TrainConfig, *, steps_per_epoch: int | Sequence[int]) -> int:
    """Optimizer steps of a run that is not stopped early: epochs, capped by max_steps. A sequence
    gives the steps of epochs that cycle through it (one subword sample each, which differ in length)."""
    cycle = [steps_per_epoch] if isinstance(steps_per_epoch, int) else list(steps_per_epoch)
    total = sum(cycle[epoch % len(cycle)] for epoch in range(config.epochs))
    return min(total, config.max_steps) if config.max_steps else total


def warmup(step: int, warmup_steps: int) -> float:
    """Linear ramp from 0 to 1 over the first ``warmup_steps`` updates; 1 without warmup."""
    if warmup_steps == 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def learning_rate(step: int, *, config: TrainConfig, total_steps: int, plateau: Plateau = Plateau()) -> float:
    """The learning rate of update number ``step`` (1-based).

    constant: ``lr`` after warmup. plateau: ``lr`` times the plateau scale.
    inverse_sqrt: peaks at ``lr`` after warmup, then decays as 1/sqrt(step)
    (Vaswani et al. 2017). cosine: after warmup, half a cosine from ``lr`` down
    to ``min_lr`` at ``total_steps``.
    """
    lr, warm = config.lr, config.warmup_steps
    if config.schedule == "inverse_sqrt":
        return lr * min(step / warm, math.sqrt(warm / step))
    ramp = warmup(step, warm)
    if config.schedule == "cosine":
        if step < warm:
            return lr * ramp
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return config.min_lr + (lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "plateau":
        return lr * plateau.scale * ramp
    return lr * ramp


def plateau_update(plateau: Plateau, *, improved: bool, config: TrainConfig) -> Plateau:
    """The plateau memory after one validation.

    Like torch's ReduceLROnPlateau: after more than ``plateau_patience``
    validations without improvement the rate is multiplied by
    ``plateau_factor`` (never below ``min_lr``) and the count starts again.
    """
    if improved:
        return Plateau(scale=plateau.scale, bad=0)
    bad = plateau.bad + 1
    if bad > config.plateau_patience:
        return Plateau(scale=max(plateau.scale * config.plateau_factor, config.min_lr / config.lr), bad=0)
    return Plateau(scale=plateau.scale, bad=bad)
