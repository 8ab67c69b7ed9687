"""The training objective: label-smoothed token NLL plus the model's coverage term.

Losses are sums over real target tokens (padding excluded); the caller divides
by the token count, so a batch of long sentences weighs what it contains.
"""

from __future__ import annotations

import torch

from seqlab.model.batch import Batch
from seqlab.model.seq2seq import ModelOutput, Seq2Seq
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


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, smoothing: float = 0.0) -> torch.Tensor:
    """``smoothed_nll(log_softmax(logits), target, smoothing=...)`` in fewer passes over (N, V).

    logits: (N, V); target: (N,) ids, PAD_ID positions ignored. Neither the
    log-softmax nor its gradient is materialised: forward needs only each row's
    log-sum-exp, target logit and mean logit, and backward writes the gradient
    softmax - (1 - eps) onehot - eps / V in one tensor: fewer passes over the
    output layer's (rows x vocabulary) scores, and one (N, V) tensor fewer alive.
    """
    return _SmoothedCrossEntropy.apply(_at_least_fp32(logits), target, smoothing)


def _at_least_fp32(scores: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 scores from autocast are reduced in fp32; fp64 stays (tests)."""
    return scores.float() if scores.dtype.itemsize < 4 else scores


# Rows per chunk: small enough that a chunk's (rows, V) temporaries stay in cache and are reused.
_CHUNK_ROWS = 256


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        # Row chunks keep logsumexp's (rows, V) temporaries small and reused; a
        # full-size one is a fresh mapping that page-faults every 4 KiB.
        lse = torch.cat([torch.logsumexp(chunk, dim=-1) for chunk in logits.split(_CHUNK_ROWS)])
        # -log p_t = lse - z_t and -mean_v log p_v = lse - mean_v z_v
        nll = lse - (1.0 - smoothing) * logits.gather(1, target.unsqueeze(1)).squeeze(1)
        if smoothing > 0:
            nll = nll - smoothing * logits.mean(dim=-1)
        real = target != PAD_ID
        ctx.save_for_backward(logits, lse, target, real)
        ctx.smoothing = smoothing
        return torch.where(real, nll, torch.zeros_like(nll)).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, lse, target, real = ctx.saved_tensors
        eps = ctx.smoothing
        row = (grad * real).to(logits.dtype).unsqueeze(1)  # (N, 1): zero on padding
        out = torch.empty_like(logits)
        for z, m, r, o in zip(*(t.split(_CHUNK_ROWS) for t in (logits, lse.unsqueeze(1), row, out))):
            torch.sub(z, m, out=o).exp_()  # softmax; each chunk is finished while it is in cache
            if eps > 0:
                o.sub_(eps / logits.size(1))
            o.mul_(r)
        out.scatter_add_(1, target.unsqueeze(1), -(1.0 - eps) * row)
        return out, None, None


def objective(output: ModelOutput, target: torch.Tensor, *, smoothing: float, coverage_weight: float) -> torch.Tensor:
    """output.scores: (B, T, V); target: (B, T). Smoothed NLL plus weighted coverage loss, summed."""
    scores = output.scores.reshape(-1, output.scores.size(-1))
    if output.normalized:
        nll = smoothed_nll(_at_least_fp32(scores), target.reshape(-1), smoothing=smoothing)
    else:
        nll = smoothed_cross_entropy(scores, target.reshape(-1), smoothing=smoothing)
    if coverage_weight > 0:
        return nll + coverage_weight * output.coverage_loss.float()
    return nll


def batch_loss(model: Seq2Seq, batch: Batch, *, smoothing: float = 0.0, coverage: bool = True,
               forward: torch.nn.Module | None = None) -> torch.Tensor:
    """The summed objective of one teacher-forced batch.

    Validation calls it with ``smoothing=0, coverage=False``: plain NLL, comparable
    across label-smoothing and coverage settings. ``forward`` runs the model instead
    of ``model`` itself: a DistributedDataParallel around it, whose forward hooks the all-reduce.
    """
    output = (forward or model)(batch.src, batch.src_lengths, batch.tgt_in)
    weight = model.config.coverage_loss_weight if coverage and model.config.coverage else 0.0
    return objective(output, model.to_output(batch.tgt_out), smoothing=smoothing, coverage_weight=weight)
