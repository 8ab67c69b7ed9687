"""Tests for seqlab.train.loss: label-smoothed NLL over log-probabilities, padding, the coverage term."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from seqlab.model.seq2seq import ModelOutput
from seqlab.tokenizer import PAD_ID
from seqlab.train.loss import objective, smoothed_cross_entropy, smoothed_nll


@pytest.fixture
def logits_and_target() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(12, 9)
    target = torch.randint(1, 9, (12,))
    target[[3, 7, 11]] = PAD_ID
    return logits, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_torch_cross_entropy_with_label_smoothing(logits_and_target, smoothing: float) -> None:
    logits, target = logits_and_target
    expected = F.cross_entropy(logits, target, ignore_index=PAD_ID, reduction="sum", label_smoothing=smoothing)
    got = smoothed_nll(torch.log_softmax(logits, -1), target, smoothing=smoothing)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_padding_is_ignored_even_with_minus_infinity(logits_and_target) -> None:
    logits, target = logits_and_target
    log_probs = torch.log_softmax(logits, -1)
    blocked = log_probs.clone()
    blocked[target == PAD_ID] = float("-inf")
    for smoothing in (0.0, 0.2):
        clean = smoothed_nll(log_probs, target, smoothing=smoothing)
        assert torch.equal(smoothed_nll(blocked, target, smoothing=smoothing), clean)


def test_smoothing_raises_the_loss_of_a_confident_correct_model() -> None:
    target = torch.tensor([1, 2])
    log_probs = torch.log_softmax(torch.tensor([[0.0, 9.0, 0.0], [0.0, 0.0, 9.0]]), -1)
    assert smoothed_nll(log_probs, target, smoothing=0.1) > smoothed_nll(log_probs, target)


def test_objective_adds_the_weighted_coverage_loss() -> None:
    log_probs = torch.log_softmax(torch.randn(2, 3, 5), -1)
    target = torch.tensor([[1, 2, 3], [4, 1, PAD_ID]])
    output = ModelOutput(scores=log_probs, normalized=True, coverage_loss=torch.tensor(2.0))
    plain = objective(output, target, smoothing=0.0, coverage_weight=0.0)
    assert objective(output, target, smoothing=0.0, coverage_weight=0.5).item() == pytest.approx(plain.item() + 1.0)
    assert plain.item() == pytest.approx(smoothed_nll(log_probs.view(-1, 5), target.view(-1)).item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_fused_cross_entropy_equals_the_log_softmax_path_and_its_gradient(logits_and_target, smoothing: float) -> None:
    logits, target = logits_and_target
    logits = logits.double().mul(4).requires_grad_()
    expected = F.cross_entropy(logits, target, ignore_index=PAD_ID, reduction="sum", label_smoothing=smoothing)
    (expected_grad,) = torch.autograd.grad(expected * 1.7, logits)
    got = smoothed_cross_entropy(logits, target, smoothing=smoothing)
    (got_grad,) = torch.autograd.grad(got * 1.7, logits)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.allclose(got_grad, expected_grad, rtol=0, atol=1e-12)
    assert got_grad[target == PAD_ID].abs().max() == 0  # padding gets no gradient at all


def test_objective_is_the_same_from_logits_and_from_log_probs() -> None:
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    target = torch.tensor([[1, 2, 3], [4, 1, PAD_ID]])
    coverage = torch.tensor(0.0)
    fused = objective(ModelOutput(scores=logits, normalized=False, coverage_loss=coverage), target,
                      smoothing=0.1, coverage_weight=0.0)
    plain = objective(ModelOutput(scores=torch.log_softmax(logits, -1), normalized=True, coverage_loss=coverage), target,
                      smoothing=0.1, coverage_weight=0.0)
    assert fused.item() == pytest.approx(plain.item(), rel=1e-12)
