"""Self-describing checkpoints: weights, model config, tokenizer and provenance in one file.

Everything is stored as tensors and plain Python values, so loading uses
``torch.load(weights_only=True)`` and needs no other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.core.errors import DataError
from seqlab.core.files import atomic_path
from seqlab.core.params import as_dict, build
from seqlab.core.run_config import ModelConfig
from seqlab.model.seq2seq import Seq2Seq, build_model
from seqlab.tokenizer import Tokenizer

FORMAT = "seqlab-checkpoint/1"


@dataclass(frozen=True)
class Loaded:
    """A model rebuilt from a checkpoint, with its tokenizer and training record."""

    model: Seq2Seq
    tokenizer: Tokenizer
    info: dict[str, Any]  # free-form provenance: corpus, epoch, losses (display only)


def save_checkpoint(path: str | Path, *, model: Seq2Seq, tokenizer: Tokenizer, info: dict[str, Any]) -> None:
    """Write atomically, so a crash never leaves a truncated checkpoint behind."""
    payload = {
        "format": FORMAT,
        "model_config": as_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "tokenizer": {"src_model": tokenizer.src_model, "tgt_model": tokenizer.tgt_model,
                      "unk_markers": list(tokenizer.unk_markers)},
        "info": info,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Loaded:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"{path}: not a readable seqlab checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a seqlab checkpoint (expected format {FORMAT})")
    stored = payload["tokenizer"]
    tokenizer = Tokenizer(src_model=stored["src_model"], tgt_model=stored["tgt_model"],
                          unk_markers=tuple(stored.get("unk_markers", ())))
    config = build(ModelConfig, payload["model_config"], "model")
    model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size,
                        output_ids=payload["state_dict"].get("output_ids"))
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Loaded(model=model, tokenizer=tokenizer, info=payload["info"])
