"""Subword tokenization with sentencepiece: training, encoding, decoding.

A :class:`Tokenizer` holds the serialized sentencepiece models themselves, not
paths, so a checkpoint that embeds them needs nothing else to translate.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sentencepiece as spm

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.errors import ConfigError, DataError, SeqlabError
from seqlab.core.text import ParallelText, iter_lines

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

    def encode_src(self, lines: list[str], *, threads: int = -1) -> list[list[int]]:
        """Piece ids of each line; sentencepiece encodes a list on ``threads`` threads (-1: its default)."""
        return self.src.encode(lines, num_threads=threads)

    def encode_tgt(self, lines: list[str], *, threads: int = -1) -> list[list[int]]:
        return self.tgt.encode(lines, num_threads=threads)

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        return self.tgt.decode(ids)

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]


def _train_one(sentences: Iterable[str], config: TokenizerConfig, *, seed: int) -> bytes:
    """One sentencepiece model from ``sentences``, streamed: with ``input_sentence_size``
    sentencepiece keeps a seeded, shuffled sample of that many and no more."""
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            byte_fallback=config.byte_fallback,
            user_defined_symbols=list(config.user_defined_symbols),
            input_sentence_size=config.input_sentence_size,
            shuffle_input_sentence=True,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            # Each thread owns a fixed share of the sentences, so a given number of
            # threads always gives the same vocabulary (a different number may not).
            num_threads=config.threads,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise _training_error(str(err).strip().splitlines()[-1], config) from None
    return model.getvalue()


def _training_error(message: str, config: TokenizerConfig) -> SeqlabError:
    """sentencepiece's complaint as the params key that can fix it."""
    too_many = re.search(r"value <= (\d+)", message)
    if too_many:
        return ConfigError(
            f"tokenizer.vocab_size: {config.vocab_size} is more than this corpus allows (at most {too_many.group(1)})"
        )
    too_few = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if too_few:
        needs = "its characters" + (" and the 256 byte pieces of byte_fallback" if config.byte_fallback else "")
        return ConfigError(
            f"tokenizer.vocab_size: {config.vocab_size} is too small for this corpus; {needs} "
            f"need at least {too_few.group(1)} (or lower tokenizer.character_coverage)"
        )
    return DataError(f"sentencepiece training failed: {message}")


def train_tokenizer(train: ParallelText, config: TokenizerConfig, *, seed: int) -> Tokenizer:
    """Train on the training split: one model over both sides, or one per side."""
    return _train_sides(lambda: iter(train.src), lambda: iter(train.tgt), config, seed=seed)


def train_tokenizer_on_files(src: Path, tgt: Path, config: TokenizerConfig, *, seed: int) -> Tokenizer:
    """Like :func:`train_tokenizer`, streaming the lines of the training files (any size)."""
    return _train_sides(lambda: iter_lines(src), lambda: iter_lines(tgt), config, seed=seed)


def _train_sides(
    src: Callable[[], Iterator[str]], tgt: Callable[[], Iterator[str]], config: TokenizerConfig, *, seed: int
) -> Tokenizer:
    if config.joint:
        model = _train_one(itertools.chain(src(), tgt()), config, seed=seed)
        return Tokenizer(src_model=model, tgt_model=model)
    return Tokenizer(src_model=_train_one(src(), config, seed=seed), tgt_model=_train_one(tgt(), config, seed=seed))


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
