"""The training objective: label-smoothed token NLL plus the model's coverage term.

Losses are sums over real target tokens (padding excluded); the caller divides
by the token count, so a batch of long sentences weighs what it contains.
"""

from __future__ import annotations

import torch

from seqlab.batching import Batch
from seqlab.model import ModelOutput, Seq2Seq
from seqlab.tokenizer import PAD_ID


def smoothed_nll(log_probs: torch.Tensor, target: torch.Tensor, *, smoothing: float = 0.0) -> torch.Tensor:
    """Summed NLL of ``target`` under ``log_probs``, with label smoothing.

    log_probs: (N, V) float; target: (N,) ids, PAD_ID positions ignored.
    Smoothing ``eps`` moves the reference distribution to (1 - eps) on the
    target plus eps / V on every piece, exactly what
    ``F.cross_entropy(label_smoothing=eps)`` does for logits. The model gives
    log-probabilities (not logits) because copying mixes two distributions.
    """
    real = target != PAD_ID
    nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
    if smoothing > 0:
        nll = (1.0 - smoothing) * nll - smoothing * log_probs.mean(dim=-1)
    # where(), not a product with the mask: a -inf log-probability at a padded
    # position would otherwise turn the sum into NaN.
    return torch.where(real, nll, torch.zeros_like(nll)).sum()


def objective(output: ModelOutput, target: torch.Tensor, *, smoothing: float, coverage_weight: float) -> torch.Tensor:
    """output.log_probs: (B, T, V); target: (B, T). Smoothed NLL plus weighted coverage loss, summed."""
    log_probs = output.log_probs.float()
    nll = smoothed_nll(log_probs.reshape(-1, log_probs.size(-1)), target.reshape(-1), smoothing=smoothing)
    if coverage_weight > 0:
        return nll + coverage_weight * output.coverage_loss.float()
    return nll


def batch_loss(model: Seq2Seq, batch: Batch, *, smoothing: float = 0.0, coverage: bool = True) -> torch.Tensor:
    """The summed objective of one teacher-forced batch.

    Validation calls it with ``smoothing=0, coverage=False``: plain NLL, comparable
    across label-smoothing and coverage settings.
    """
    output = model(batch.src, batch.src_lengths, batch.tgt_in)
    weight = model.config.coverage_loss_weight if coverage and model.config.coverage else 0.0
    return objective(output, batch.tgt_out, smoothing=smoothing, coverage_weight=weight)
