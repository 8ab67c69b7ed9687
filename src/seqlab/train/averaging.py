"""Checkpoint averaging: the element-wise mean of the last k validations' weights.

Averaging the weights a run passed through near its end smooths out the noise
of the last updates and often scores a little better than any one of them
(Junczys-Dowmunt et al. 2016; Vaswani et al. 2017).
"""

from __future__ import annotations

import torch

StateDict = dict[str, torch.Tensor]


def snapshot(model: torch.nn.Module) -> StateDict:
    """A detached CPU copy of the model's weights, safe to keep while training goes on."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def keep_last(snapshots: list[StateDict], new: StateDict, k: int) -> list[StateDict]:
    """The last ``k`` snapshots, ``new`` included; empty when averaging is off (k < 2)."""
    if k < 2:
        return []
    return [*snapshots, new][-k:]


def average(snapshots: list[StateDict]) -> StateDict:
    """Mean of every floating-point tensor; other tensors (counters, ids) come from the newest."""
    if not snapshots:
        raise ValueError("nothing to average")
    out = {}
    for name, newest in snapshots[-1].items():
        if newest.is_floating_point():
            # Sum in float64 so that averaging many bf16/fp32 copies loses nothing.
            total = sum(s[name].double() for s in snapshots)
            out[name] = (total / len(snapshots)).to(newest.dtype)
        else:
            out[name] = newest.clone()
    return out
