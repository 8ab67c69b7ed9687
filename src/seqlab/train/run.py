"""What a training run holds fixed: the model, optimizer and settings (:class:`Run`), where it writes, its speed."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.core.errors import ConfigError, SeqlabError
from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.model.checkpoint import load_checkpoint
from seqlab.model.seq2seq import Seq2Seq, build_model, output_pieces
from seqlab.tokenizer import Tokenizer
from seqlab.train.batches import EncodedSplit, summaries
from seqlab.train.distributed import World


@dataclass(frozen=True)
class Outputs:
    checkpoint: Path  # the best model so far (the stage passes its run's scratch model.pt)
    state: Path  # the full training state
    fingerprint: str  # of the parameters and data; stored in the state


@dataclass(frozen=True)
class Run:
    """What stays fixed while training; the counters live in :class:`Progress`."""

    model: Seq2Seq
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    tokenizer: Tokenizer
    device: torch.device
    valid_data: EncodedSplit
    valid_text: ParallelText  # raw valid text, for the decoded metric
    outputs: Outputs
    info: dict[str, Any]  # provenance stored in the checkpoint
    live: Any  # a dvclive Live, or None
    tokenize: str  # sacrebleu's BLEU tokenizer (evaluate.tokenize)
    world: World = World()  # the processes training together
    net: torch.nn.Module | None = None  # what the update's forward runs: DDP around model, or None for model

    @property
    def forward(self) -> torch.nn.Module:
        return self.net if self.net is not None else self.model


class Throughput:
    """Target tokens per second of training since the last reset (validation time excluded)."""

    def __init__(self) -> None:
        self.total = 0
        self.reset()

    def reset(self) -> None:
        self.tokens, self.start = 0, time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens
        self.total += tokens

    def rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (weight decay as L2 in the gradient) or AdamW (decoupled weight decay).

    The fused kernel updates all parameters in one pass instead of one kernel per
    tensor, which matters for a small model whose step is short.
    """
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_network(train_data: EncodedSplit, *, model_config: ModelConfig, tokenizer: Tokenizer,
                  device: torch.device, samples: Sequence[EncodedSplit] = ()) -> Seq2Seq:
    """A fresh model on ``device``, its output layer over the pieces the targets use if asked
    (in the best segmentation or in any subword sample)."""
    if model_config.share_embeddings and not tokenizer.joint:
        raise ConfigError("model.share_embeddings: needs tokenizer.joint: true")
    targets = itertools.chain(train_data.tgt, (summary.targets for summary in summaries(samples)))
    output_ids = output_pieces(targets, tokenizer.tgt_vocab_size) if model_config.output_vocab == "target" else None
    model = build_model(model_config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size,
                        output_ids=output_ids)
    if output_ids is not None:
        print(f"output layer: the {output_ids.numel():,} of {tokenizer.tgt_vocab_size:,} pieces the training targets use",
              flush=True)
    return model.to(device)


def init_weights(model: Seq2Seq, path: str) -> None:
    """Start ``model`` from the weights of the checkpoint at ``path`` (train.init_from)."""
    saved = load_checkpoint(path).model.state_dict()
    own = model.state_dict()
    for name in sorted(own.keys() | saved.keys()):
        if name not in saved or name not in own:
            where = f"{path} lacks it" if name not in saved else "this model lacks it"
            raise SeqlabError(f"train.init_from: parameter {name}: {where} (model settings differ)")
        if saved[name].shape != own[name].shape:
            raise SeqlabError(f"train.init_from: parameter {name} has shape {tuple(saved[name].shape)} in {path}, "
                              f"{tuple(own[name].shape)} in this model")
    model.load_state_dict(saved)
