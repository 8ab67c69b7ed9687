"""The training loop: teacher forcing, Adam, clipping, per-epoch validation, best checkpoint."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from seqlab.batching import Batch, bucket_indices, make_batch
from seqlab.checkpoint import save_checkpoint
from seqlab.config import ModelConfig, TrainConfig
from seqlab.errors import ConfigError, SeqlabError
from seqlab.model import Seq2Seq, build_model, count_parameters
from seqlab.runtime import autocast
from seqlab.tokenizer import PAD_ID, Tokenizer


class TrainingDiverged(SeqlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class EncodedSplit:
    """Piece-id arrays of one split, as preprocess wrote them."""

    src: Sequence[np.ndarray]
    tgt: Sequence[np.ndarray]

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(s) for s in self.src]), np.array([len(t) for t in self.tgt])

    def batch(self, indices: np.ndarray) -> Batch:
        return make_batch([self.src[i] for i in indices], [self.tgt[i] for i in indices])


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float  # per target token
    valid_loss: float
    tokens_per_sec: float
    lr: float


@dataclass(frozen=True)
class TrainResult:
    parameters: int
    best_epoch: int
    best_valid_loss: float
    history: list[EpochStats]
    wall_seconds: float


def token_loss(model: Seq2Seq, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy over real target tokens (padding excluded)."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), batch.tgt_out.view(-1), ignore_index=PAD_ID, reduction="sum"
    )


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, data: EncodedSplit, *, batch_tokens: int, device: torch.device) -> float:
    """Mean cross-entropy per target token over a whole split."""
    model.eval()
    src_len, tgt_len = data.lengths()
    total, tokens = 0.0, 0
    for indices in bucket_indices(src_len, tgt_len, batch_tokens=batch_tokens, generator=None):
        batch = data.batch(indices).to(device)
        with autocast(device):
            total += float(token_loss(model, batch))
        tokens += batch.n_tokens
    return total / max(tokens, 1)


def train_epoch(
    model: Seq2Seq,
    optimizer: torch.optim.Optimizer,
    data: EncodedSplit,
    *,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    desc: str,
) -> tuple[float, int]:
    """One pass over ``data`` in a seeded random order. Returns (loss per token, tokens)."""
    model.train()
    src_len, tgt_len = data.lengths()
    batches = bucket_indices(src_len, tgt_len, batch_tokens=config.batch_tokens, generator=generator)
    total, tokens = 0.0, 0
    bar = tqdm(batches, desc=desc, unit="batch", mininterval=2.0, leave=False)
    for indices in bar:
        batch = data.batch(indices).to(device)
        n_tokens = batch.n_tokens
        with autocast(device):
            loss = token_loss(model, batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"{desc}: loss became {float(loss)}; stopping, the last good checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        (loss / n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        total += float(loss.detach())  # a CPU-GPU sync, once per batch, for the running loss
        tokens += n_tokens
        bar.set_postfix(loss=f"{total / tokens:.3f}", refresh=False)
    return total / max(tokens, 1), tokens


def train(
    train_data: EncodedSplit,
    valid_data: EncodedSplit,
    *,
    model_config: ModelConfig,
    config: TrainConfig,
    tokenizer: Tokenizer,
    seed: int,
    device: torch.device,
    checkpoint: Path,
    info: dict[str, Any],
    live: Any = None,
) -> TrainResult:
    """Train from scratch; the checkpoint with the lowest validation loss is kept.

    ``live`` is a dvclive ``Live`` (or None): one logged step per epoch.
    """
    if model_config.share_embeddings and not tokenizer.joint:
        raise ConfigError("model.share_embeddings: needs tokenizer.joint: true")
    model = build_model(model_config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    parameters = count_parameters(model)
    print(f"model: {parameters:,} parameters on {device}")
    start, history = time.perf_counter(), []
    best_loss, best_epoch = math.inf, 0
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        train_loss, tokens = train_epoch(
            model, optimizer, train_data, config=config, generator=generator, device=device, desc=f"epoch {epoch}"
        )
        speed = tokens / (time.perf_counter() - tick)
        valid_loss = evaluate_loss(model, valid_data, batch_tokens=config.batch_tokens, device=device)
        stats = EpochStats(epoch, train_loss, valid_loss, speed, optimizer.param_groups[0]["lr"])
        history.append(stats)
        improved = valid_loss < best_loss
        if improved:
            best_loss, best_epoch = valid_loss, epoch
            save_checkpoint(
                checkpoint, model=model, tokenizer=tokenizer, info={**info, "epoch": epoch, "valid_loss": valid_loss}
            )
        print(
            f"epoch {epoch}: train loss {train_loss:.4f}  valid loss {valid_loss:.4f}  "
            f"{speed:,.0f} tgt tok/s{'  (best, saved)' if improved else ''}",
            flush=True,
        )
        if live is not None:
            _log_epoch(live, stats)
    return TrainResult(parameters, best_epoch, best_loss, history, time.perf_counter() - start)


def _log_epoch(live: Any, stats: EpochStats) -> None:
    live.log_metric("train/loss", stats.train_loss)
    live.log_metric("valid/loss", stats.valid_loss)
    live.log_metric("valid/ppl", math.exp(min(stats.valid_loss, 50.0)))
    live.log_metric("lr", stats.lr)
    live.log_metric("tokens_per_sec", stats.tokens_per_sec)
    live.next_step()
