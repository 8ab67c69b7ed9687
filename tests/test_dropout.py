"""Tests for seqlab.model.dropout: the CPU mask's rate, scale, determinism and gradient."""

from __future__ import annotations

import pytest
import torch

from seqlab.model.dropout import LEVELS, Dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_mask_drops_at_rate_p_and_keeps_the_expectation(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.Size((400, 1000)), p, dtype=torch.float32)
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - p) < 0.005  # 400k draws: the standard error is under 0.001
    assert abs(mask.mean().item() - 1.0) < 0.01
    kept = mask[mask != 0]
    assert torch.all(kept == LEVELS / (LEVELS - round(p * LEVELS)))


def test_mask_elements_are_not_correlated_within_a_draw() -> None:
    # the four 16-bit lanes of each 64-bit draw must be independent
    torch.manual_seed(1)
    mask = keep_mask(torch.Size((100_000, 4)), 0.5, dtype=torch.float32) > 0
    lanes = mask.float()
    corr = torch.corrcoef(lanes.t())
    assert (corr - torch.eye(4)).abs().max().item() < 0.02


def test_dropout_is_seeded_identity_in_eval_and_scales_the_gradient() -> None:
    layer = Dropout(0.25)
    x = torch.randn(8, 50, requires_grad=True)
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    b = layer(x)
    assert torch.equal(a, b)
    a.sum().backward()
    scale = LEVELS / (LEVELS - round(0.25 * LEVELS))
    assert torch.equal(x.grad == 0, a.detach() == 0)  # the gradient is the mask: 0 where dropped
    assert torch.all(x.grad[x.grad != 0] == scale)
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_follows_the_input_dtype() -> None:
    x = torch.randn(4, 6, dtype=torch.bfloat16)
    assert Dropout(0.1).train()(x).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_bad_probability_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="not in"):
        Dropout(p)
