"""Subword tokenization with sentencepiece: training, encoding, decoding.

A :class:`Tokenizer` holds the serialized sentencepiece models themselves, not
paths, so a checkpoint that embeds them needs nothing else to translate.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sentencepiece as spm

from seqlab.config import TokenizerConfig
from seqlab.data import ParallelText
from seqlab.errors import ConfigError, DataError

# Fixed special ids, set at training time, so that batching and search never
# have to ask a tokenizer which id is padding.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True)
class Tokenizer:
    """Source and target sentencepiece models (the same bytes when joint)."""

    src_model: bytes
    tgt_model: bytes

    @property
    def joint(self) -> bool:
        return self.src_model == self.tgt_model

    @cached_property
    def src(self) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_proto=self.src_model)

    @cached_property
    def tgt(self) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_proto=self.tgt_model)

    @property
    def src_vocab_size(self) -> int:
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        return self.src.encode(lines)

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        return self.tgt.encode(lines)

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        return self.tgt.decode(ids)

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]


def _train_one(lines: list[str], config: TokenizerConfig, *, seed: int) -> bytes:
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=1,  # one thread keeps the trained vocabulary reproducible
            minloglevel=2,
        )
    except RuntimeError as err:
        message = str(err).strip().splitlines()[-1]
        limit = re.search(r"value <= (\d+)", message)
        if limit:
            raise ConfigError(
                f"tokenizer.vocab_size: {config.vocab_size} is more than this corpus allows (at most {limit.group(1)})"
            ) from None
        raise DataError(f"sentencepiece training failed: {message}") from None
    return model.getvalue()


def train_tokenizer(train: ParallelText, config: TokenizerConfig, *, seed: int) -> Tokenizer:
    """Train on the training split: one model over both sides, or one per side."""
    if config.joint:
        model = _train_one(train.src + train.tgt, config, seed=seed)
        return Tokenizer(src_model=model, tgt_model=model)
    return Tokenizer(
        src_model=_train_one(train.src, config, seed=seed),
        tgt_model=_train_one(train.tgt, config, seed=seed),
    )


def save_tokenizer(tokenizer: Tokenizer, directory: Path) -> None:
    """Write ``src.model`` and ``tgt.model`` (identical when the vocabulary is joint)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "src.model").write_bytes(tokenizer.src_model)
    (directory / "tgt.model").write_bytes(tokenizer.tgt_model)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    try:
        return Tokenizer(
            src_model=(directory / "src.model").read_bytes(),
            tgt_model=(directory / "tgt.model").read_bytes(),
        )
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: tokenizer model not found; run the tokenizer stage") from None
