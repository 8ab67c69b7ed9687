"""Self-describing checkpoints: weights, model config, tokenizer and provenance in one file.

Everything is stored as tensors and plain Python values, so loading uses
``torch.load(weights_only=True)`` and needs no other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.core.errors import ConfigError, DataError
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
    """The model, tokenizer and record saved at ``path``; a file that is not a sound checkpoint is a
    DataError that names it and says what is wrong (missing part, bad config, damaged tokenizer, weights)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise DataError(f"{path}: not a readable seqlab checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not a seqlab checkpoint (expected format {FORMAT})")
    check_parts(payload, path)
    tokenizer = load_tokenizer_part(payload["tokenizer"], path)
    try:
        config = build(ModelConfig, payload["model_config"], "model")
    except ConfigError as err:
        raise DataError(f"{path}: broken checkpoint: model_config: {err}") from None
    try:
        model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size,
                            output_ids=payload["state_dict"].get("output_ids"))
    except ValueError as err:  # the config and the weights disagree (output_ids without output_vocab: target)
        raise DataError(f"{path}: broken checkpoint: {err}") from None
    check_weights(model.state_dict(), payload["state_dict"], path)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Loaded(model=model, tokenizer=tokenizer, info=payload["info"])


PARTS = {"model_config": dict, "state_dict": dict, "tokenizer": dict, "info": dict}


def check_parts(payload: dict[str, Any], path: Path) -> None:
    """Every part a checkpoint needs is there, with the right kind of value."""
    for key, kind in PARTS.items():
        if key not in payload:
            raise DataError(f"{path}: broken checkpoint: no {key}")
        if not isinstance(payload[key], kind):
            kind_found = type(payload[key]).__name__
            raise DataError(f"{path}: broken checkpoint: {key} is a {kind_found}, not a {kind.__name__}")
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: broken checkpoint: state_dict.{bad[0]} is not a tensor")


def load_tokenizer_part(part: dict[str, Any], path: Path) -> Tokenizer:
    """The embedded sentencepiece models, loaded now so that damage is reported here, by name."""
    for side in ("src_model", "tgt_model"):
        if not isinstance(part.get(side), bytes):
            raise DataError(f"{path}: broken checkpoint: tokenizer.{side} is missing or not bytes")
    markers = part.get("unk_markers", ())  # absent from checkpoints made before unknown-word markers
    if not isinstance(markers, (list, tuple)) or not all(isinstance(m, str) for m in markers):
        raise DataError(f"{path}: broken checkpoint: tokenizer.unk_markers is not a list of strings")
    tokenizer = Tokenizer(src_model=part["src_model"], tgt_model=part["tgt_model"], unk_markers=tuple(markers))
    for side in ("src", "tgt"):
        try:
            pieces = getattr(tokenizer, side).get_piece_size()
        except RuntimeError:  # sentencepiece's message is C++ detail; the user needs the part's name
            pieces = 0
        if pieces < 1:
            raise DataError(f"{path}: broken checkpoint: tokenizer.{side}_model is not a sentencepiece model")
    return tokenizer


def check_weights(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], path: Path) -> None:
    """The saved weights are exactly those the saved config and vocabulary build, shape for shape."""
    missing = sorted(expected.keys() - saved.keys())
    unexpected = sorted(saved.keys() - expected.keys())
    if missing or unexpected:
        what = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise DataError(f"{path}: broken checkpoint: state_dict does not match model_config ({what})")
    for name, tensor in expected.items():
        if saved[name].shape != tensor.shape:
            raise DataError(f"{path}: broken checkpoint: state_dict.{name} has shape {tuple(saved[name].shape)}, "
                            f"the model needs {tuple(tensor.shape)}")
