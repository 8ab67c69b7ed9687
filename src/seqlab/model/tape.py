"""Linear layers applied once per time step, with their weight gradients computed once per sequence.

Under plain autograd a decoder that runs T steps computes, for every weight it
applies each step, T small weight-gradient matmuls (N rows each) and adds
each into the accumulated gradient, a full pass over the weight per step.
:class:`WeightGradTape` instead records each step's input and output gradient
during backward and computes every weight's gradient once, as one (T*N)-row
matmul, when backward reaches the start of the sequence. Input gradients, and
so the recurrence's backward, are unchanged.

Attention's per-step context, weights_t @ values, is the same pattern with the
encoder states as the shared operand: plain autograd writes a (B, S, D) outer
product per step and adds it into the values' gradient; the tape records the
step's weights and output gradient and computes the values' gradient once, as
one batched matmul over all steps.

Usage (see ``Decoder._taped_sequence`` and ``TapedProducts``)::

    tape = WeightGradTape([w1, w2])
    h0, xs = tape.anchor(h0, xs)    # what step 0 reads: their backward runs last
    for t in ...: y = tape.linear(w1, xs[:, t]) ...
"""

from __future__ import annotations

import torch


class WeightGradTape:
    """Records (input, output gradient) pairs of per-step matmuls with ``weights`` for one sequence."""

    def __init__(self, weights: list[torch.Tensor], *, values: torch.Tensor | None = None) -> None:
        """values: (B, S, D) encoder states that :meth:`attend` reads every step, or None."""
        # Under autocast, cast each weight (and the values) once per sequence rather than once per step.
        device = weights[0].device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        self.weights = [w if dtype is None else w.to(dtype) for w in weights]
        self.values = values if values is None or dtype is None else values.to(dtype)
        self._slot = {id(w): i for i, w in enumerate(weights)}
        self._inputs: list[list[torch.Tensor]] = [[] for _ in weights]
        self._grads: list[list[torch.Tensor]] = [[] for _ in weights]
        self._attention: list[torch.Tensor] = []
        self._context_grads: list[torch.Tensor] = []
        self._calls = 0

    def linear(self, weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight.T (+ bias)``; weight: (out, in) one of the weights the tape was made with; x: (N, in).
        Or batched: weight (D, out, in), x (D, N, in). bias: anything that broadcasts to the
        product (a bias vector, or a precomputed (N, out) term), added by the matmul itself."""
        self._calls += 1
        slot = self._slot[id(weight)]
        weight = self.weights[slot].detach()
        if bias is not None and bias.dtype != _compute_dtype(x):  # autocast: the sum follows type promotion
            return _TapedMatmul.apply(x, weight, None, self, slot) + bias
        return _TapedMatmul.apply(x, weight, bias, self, slot)

    def attend(self, weights: torch.Tensor) -> torch.Tensor:
        """``weights @ values`` for this step. weights: (B, W, S) -> (B, W, D); W queries per source."""
        self._calls += 1
        return _TapedContext.apply(weights, self.values.detach(), self)

    def anchor(self, *starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``starts`` unchanged, made the node whose backward returns the weights' gradients.

        Autograd runs that backward once the gradients of all ``starts`` are
        complete, so they must together cover every taped input's ancestry: the
        initial recurrent state (every step depends on it) and the per-step
        inputs (every step reads them). A tape that finds a step unrecorded
        at that point raises rather than return a partial gradient.
        """
        shared = [*self.weights, *([] if self.values is None else [self.values])]
        return _ReleaseWeightGrads.apply(self, len(starts), *starts, *shared)[: len(starts)]

    def record(self, slot: int, x: torch.Tensor, grad: torch.Tensor) -> None:
        self._inputs[slot].append(x)
        self._grads[slot].append(grad)

    def record_context(self, weights: torch.Tensor, grad: torch.Tensor) -> None:
        self._attention.append(weights)
        self._context_grads.append(grad)

    def weight_grads(self) -> list[torch.Tensor | None]:
        """(out, in) gradient per weight, summed over every recorded step, then the
        values' (B, S, D) gradient when the tape has values; clears the tape."""
        recorded = sum(len(g) for g in self._grads) + len(self._context_grads)
        if recorded != self._calls:
            raise RuntimeError(f"weight-gradient tape: {recorded} of {self._calls} steps reached before the anchor")
        grads = [
            torch.cat(g, dim=-2).transpose(-1, -2).matmul(torch.cat(x, dim=-2)).to(w.dtype) if g else None
            for w, x, g in zip(self.weights, self._inputs, self._grads)
        ]
        if self.values is not None:
            grads.append(self._values_grad())
        self._inputs = [[] for _ in self.weights]
        self._grads = [[] for _ in self.weights]
        self._attention, self._context_grads = [], []
        self._calls = 0
        return grads

    def _values_grad(self) -> torch.Tensor | None:
        """sum_t weights_t^T @ grad_t: (B, S, T*W) @ (B, T*W, D), one batched matmul."""
        if not self._attention:
            return None
        weights = torch.cat(self._attention, dim=1)
        return torch.bmm(weights.transpose(1, 2), torch.cat(self._context_grads, dim=1)).to(self.values.dtype)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class _TapedMatmul(torch.autograd.Function):
    """x @ weight.T whose backward gives x its gradient now and leaves the weight's to the tape."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, tape: WeightGradTape, slot: int
    ) -> torch.Tensor:
        dtype = _compute_dtype(x)  # follow autocast as nn.Linear would
        x_c, w_c = x.to(dtype), weight.to(dtype)
        ctx.save_for_backward(x_c, w_c)
        ctx.tape, ctx.slot, ctx.x_dtype = tape, slot, x.dtype
        ctx.bias_shape = None if bias is None else bias.shape
        with torch.autocast(x.device.type, enabled=False):
            if bias is None:
                return x_c.matmul(w_c.transpose(-1, -2))
            add = torch.addmm if x_c.dim() == 2 else torch.baddbmm
            return add(bias, x_c, w_c.transpose(-1, -2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_c, w_c = ctx.saved_tensors
        grad_bias = None if ctx.bias_shape is None else grad.sum_to_size(ctx.bias_shape)
        grad = grad.to(w_c.dtype)
        ctx.tape.record(ctx.slot, x_c, grad)
        return grad.matmul(w_c).to(ctx.x_dtype), None, grad_bias, None, None


class _TapedContext(torch.autograd.Function):
    """weights @ values whose backward gives the weights their gradient now and leaves the values' to the tape."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, tape: WeightGradTape) -> torch.Tensor:
        weights_c = weights.to(values.dtype)
        ctx.save_for_backward(weights_c, values)
        ctx.tape, ctx.weights_dtype = tape, weights.dtype
        with torch.autocast(values.device.type, enabled=False):
            return torch.bmm(weights_c, values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weights_c, values = ctx.saved_tensors
        grad = grad.to(values.dtype)
        ctx.tape.record_context(weights_c, grad)
        return torch.bmm(grad, values.transpose(1, 2)).to(ctx.weights_dtype), None, None


class _ReleaseWeightGrads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tape: WeightGradTape, count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.tape = tape
        return tuple(t.view_as(t) for t in tensors[:count])

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        return (None, None, *grads, *ctx.tape.weight_grads())
