"""Linear layers applied once per time step, with their weight gradients computed once per sequence.

Under plain autograd a decoder that runs T steps computes, for every weight it
applies each step, T small weight-gradient matmuls (N rows each) and adds
each into the accumulated gradient, a full pass over the weight per step.
:class:`WeightGradTape` instead records each step's input and output gradient
during backward and computes every weight's gradient once, as one (T*N)-row
matmul, when backward reaches the start of the sequence. Input gradients, and
so the recurrence's backward, are unchanged.

Usage (see ``Decoder.teacher_force``)::

    tape = WeightGradTape([w1, w2])
    h0, xs = tape.anchor(h0, xs)    # what step 0 reads: their backward runs last
    for t in ...: y = tape.linear(w1, xs[:, t]) ...
"""

from __future__ import annotations

import torch
from torch import nn


class WeightGradTape:
    """Records (input, output gradient) pairs of per-step matmuls with ``weights`` for one sequence."""

    def __init__(self, weights: list[torch.Tensor]) -> None:
        # Under autocast, cast each weight once per sequence rather than once per step.
        device = weights[0].device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        self.weights = [w if dtype is None else w.to(dtype) for w in weights]
        self._slot = {id(w): i for i, w in enumerate(weights)}
        self._inputs: list[list[torch.Tensor]] = [[] for _ in weights]
        self._grads: list[list[torch.Tensor]] = [[] for _ in weights]
        self._calls = 0

    def linear(self, weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight.T (+ bias)``; weight: (out, in) one of the weights the tape was made with; x: (N, in)."""
        self._calls += 1
        slot = self._slot[id(weight)]
        out = _TapedMatmul.apply(x, self.weights[slot].detach(), self, slot)
        return out if bias is None else out + bias

    def anchor(self, *starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``starts`` unchanged, made the node whose backward returns the weights' gradients.

        Autograd runs that backward once the gradients of all ``starts`` are
        complete, so they must together cover every taped input's ancestry: the
        initial recurrent state (every step depends on it) and the per-step
        inputs (every step reads them). A tape that finds a step unrecorded
        at that point raises rather than return a partial gradient.
        """
        return _ReleaseWeightGrads.apply(self, len(starts), *starts, *self.weights)[: len(starts)]

    def record(self, slot: int, x: torch.Tensor, grad: torch.Tensor) -> None:
        self._inputs[slot].append(x)
        self._grads[slot].append(grad)

    def weight_grads(self) -> list[torch.Tensor | None]:
        """(out, in) gradient per weight, summed over every recorded step; clears the tape."""
        recorded = sum(len(g) for g in self._grads)
        if recorded != self._calls:
            raise RuntimeError(f"weight-gradient tape: {recorded} of {self._calls} steps reached before the anchor")
        grads = [
            torch.cat(g).t().matmul(torch.cat(x)).to(w.dtype) if g else None
            for w, x, g in zip(self.weights, self._inputs, self._grads)
        ]
        self._inputs = [[] for _ in self.weights]
        self._grads = [[] for _ in self.weights]
        self._calls = 0
        return grads


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class _TapedMatmul(torch.autograd.Function):
    """x @ weight.T whose backward gives x its gradient now and leaves the weight's to the tape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, tape: WeightGradTape, slot: int) -> torch.Tensor:
        dtype = _compute_dtype(x)  # follow autocast as nn.Linear would
        x_c, w_c = x.to(dtype), weight.to(dtype)
        ctx.save_for_backward(x_c, w_c)
        ctx.tape, ctx.slot, ctx.x_dtype = tape, slot, x.dtype
        with torch.autocast(x.device.type, enabled=False):
            return x_c.matmul(w_c.t())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_c, w_c = ctx.saved_tensors
        grad = grad.to(w_c.dtype)
        ctx.tape.record(ctx.slot, x_c, grad)
        return grad.matmul(w_c).to(ctx.x_dtype), None, None, None


class _ReleaseWeightGrads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tape: WeightGradTape, count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.tape = tape
        return tuple(t.view_as(t) for t in tensors[:count])

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        return (None, None, *grads, *ctx.tape.weight_grads())


def apply_linear(layer: nn.Linear, x: torch.Tensor, tape: WeightGradTape | None) -> torch.Tensor:
    """``layer(x)``, through ``tape`` when one is given."""
    return layer(x) if tape is None else tape.linear(layer.weight, x, layer.bias)
