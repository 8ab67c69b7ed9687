"""A tiny real checkpoint on the number corpus for the CLI tests: real sentencepiece, a random model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqlab.core.data_config import NumbersConfig, TokenizerConfig
from seqlab.core.run_config import ModelConfig
from seqlab.model.checkpoint import save_checkpoint
from seqlab.model.seq2seq import build_model
from seqlab.prepare.numbers import generate_numbers
from seqlab.tokenizer import train_tokenizer


def write_tiny_checkpoint(path: Path, *, seed: int, decisive: bool, info: dict[str, Any] | None = None) -> Path:
    """Writes and returns ``path``. decisive: weights scaled x3, so a random model gives varied
    outputs of varied lengths rather than near-uniform ones."""
    corpus = generate_numbers(NumbersConfig(train_size=200, valid_size=5, test_size=5, max_value=500), seed=3)
    tokenizer = train_tokenizer(corpus.train, TokenizerConfig(vocab_size=50), seed=3)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, dropout=0.0),
                        src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size)
    if decisive:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(3.0)
    save_checkpoint(path, model=model, tokenizer=tokenizer, info=info or {})
    return path
