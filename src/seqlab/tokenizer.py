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
from typing import Literal

import numpy as np
import sentencepiece as spm

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.errors import ConfigError, DataError, SeqlabError
from seqlab.core.text import ParallelText, iter_lines

# Fixed special ids, set at training time, so that batching and search never
# have to ask a tokenizer which id is padding.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# The one piece that every corpus unknown-word marker (``tokenizer.unk_markers``)
# becomes: a user-defined symbol, so sentencepiece never splits it into
# characters that the model would learn to spell out (and the ``<`` of ``<unk>``
# would otherwise come back as sentencepiece's own unknown glyph).
UNK_WORD = "<unk_word>"
UNK_GLYPH = "\u2047"  # what sentencepiece writes for UNK_ID when it decodes

Side = Literal["src", "tgt"]


@dataclass(frozen=True)
class Tokenizer:
    """Source and target sentencepiece models (the same bytes when joint)."""

    src_model: bytes
    tgt_model: bytes
    unk_markers: tuple[str, ...] = ()  # the corpus's unknown-word spellings, encoded as UNK_WORD

    @cached_property
    def _markers(self) -> re.Pattern[str] | None:
        """A marker as a word of its own: ``UNK`` in ``UNKNOWN`` is left alone."""
        if not self.unk_markers:
            return None
        spellings = "|".join(re.escape(m) for m in sorted(self.unk_markers, key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?:{spellings})(?!\w)")

    def _mark(self, lines: list[str]) -> list[str]:
        pattern = self._markers
        return lines if pattern is None else [pattern.sub(UNK_WORD, line) for line in lines]

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
        return self.src.encode(self._mark(lines), num_threads=threads)

    def encode_tgt(self, lines: list[str], *, threads: int = -1) -> list[list[int]]:
        return self.tgt.encode(self._mark(lines), num_threads=threads)

    def sample_src(self, lines: list[str], *, alpha: float) -> list[list[int]]:
        """One segmentation of each line drawn from the model's distribution over all of them
        (subword regularization; for a BPE model, BPE-dropout at rate ``alpha``). One thread, so that
        within a process the draws follow :func:`seed_sampling`; sentencepiece 0.2's draws still differ
        between processes for the same seed (its binary seeds abseil's generator itself), which is why
        a unigram model's samples come from :meth:`nbest` and seqlab's own seeded draw instead."""
        return self.src.encode(self._mark(lines), enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1)

    def sample_tgt(self, lines: list[str], *, alpha: float) -> list[list[int]]:
        return self.tgt.encode(self._mark(lines), enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1)

    def nbest(self, side: Side, lines: list[str], *, size: int) -> list[list[list[int]]]:
        """The ``size`` most probable segmentations of each line (fewer where fewer exist), most
        probable first: a unigram model's n-best, deterministic, unlike sentencepiece's sampling."""
        return self._processor(side).nbest_encode(self._mark(lines), nbest_size=size)

    def piece_scores(self, side: Side) -> np.ndarray:
        """(V,) each piece's score, its log-probability in a unigram model: a segmentation's
        log-probability is the sum over its pieces."""
        processor = self._processor(side)
        return np.array([processor.get_score(i) for i in range(processor.get_piece_size())], dtype=np.float64)

    def _processor(self, side: Side) -> spm.SentencePieceProcessor:
        return self.src if side == "src" else self.tgt

    def decode_tgt(self, ids: list[list[int]], *, unk_spelling: str = "") -> list[str]:
        """Texts of piece ids. With unknown-word markers, UNK_WORD and sentencepiece's own
        unknown piece are both written ``unk_spelling`` (empty: the first marker, as the corpus
        spells it), so no text carries sentencepiece's unknown glyph."""
        if not self.unk_markers:
            return self.tgt.decode(ids)
        word = self.tgt.piece_to_id(UNK_WORD)
        texts = self.tgt.decode([[word if i == UNK_ID else i for i in seq] for seq in ids])
        return [text.replace(UNK_WORD, unk_spelling or self.unk_markers[0]) for text in texts]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]


def seed_sampling(seed: int) -> None:
    """Seed sentencepiece's generator (process-wide) for the draws of ``sample_src`` / ``sample_tgt``."""
    spm.set_random_generator_seed(seed)


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
            user_defined_symbols=list(config.user_defined_symbols) + ([UNK_WORD] if config.unk_markers else []),
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
    marked = Tokenizer(src_model=b"", tgt_model=b"", unk_markers=config.unk_markers)

    def lines(side: Callable[[], Iterator[str]]) -> Iterator[str]:
        return (marked._mark([line])[0] for line in side())

    if config.joint:
        model = _train_one(itertools.chain(lines(src), lines(tgt)), config, seed=seed)
        return Tokenizer(src_model=model, tgt_model=model, unk_markers=config.unk_markers)
    return Tokenizer(src_model=_train_one(lines(src), config, seed=seed),
                     tgt_model=_train_one(lines(tgt), config, seed=seed), unk_markers=config.unk_markers)


MARKERS_FILE = "unk_markers.txt"


def save_tokenizer(tokenizer: Tokenizer, directory: Path) -> None:
    """Write ``src.model`` and ``tgt.model`` (identical when the vocabulary is joint), and
    ``unk_markers.txt`` (one spelling a line) when the corpus has unknown-word markers."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "src.model").write_bytes(tokenizer.src_model)
    (directory / "tgt.model").write_bytes(tokenizer.tgt_model)
    if tokenizer.unk_markers:
        (directory / MARKERS_FILE).write_text("".join(f"{m}\n" for m in tokenizer.unk_markers), encoding="utf-8")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    markers = directory / MARKERS_FILE
    try:
        return Tokenizer(
            src_model=(directory / "src.model").read_bytes(),
            tgt_model=(directory / "tgt.model").read_bytes(),
            unk_markers=tuple(markers.read_text(encoding="utf-8").splitlines()) if markers.is_file() else (),
        )
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: tokenizer model not found; run the tokenizer stage") from None
