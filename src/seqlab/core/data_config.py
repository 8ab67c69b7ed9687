"""The corpus-making sections of ``params.yaml``: prepare (and its sources and cleaning), tokenizer, preprocess.

Frozen dataclasses, built by :func:`seqlab.core.params.build`; each checks what its types cannot say
in ``__post_init__`` and raises a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from seqlab.core.errors import ConfigError

SPLITS = ("train", "valid", "test")
MAX_NBEST = 512  # sentencepiece's own n-best limit (kMaxNBestSize): past it nbest encoding raises


@dataclass(frozen=True)
class NumbersConfig:
    """The offline default corpus: number phrases rendered by ``num2words``."""

    src_lang: str = "en"
    tgt_lang: str = "fr"
    train_size: int = 30000
    valid_size: int = 1000
    test_size: int = 1000
    max_value: int = 1_000_000  # cardinals and ordinals are drawn log-uniformly below this

    def __post_init__(self) -> None:
        for name in ("src_lang", "tgt_lang"):
            lang = getattr(self, name)
            if not _num2words_knows(lang):
                raise ConfigError(f"prepare.numbers.{name}: {lang!r} is not a language num2words knows")


def _num2words_knows(lang: str) -> bool:
    from num2words import num2words  # here, not at the top: no other section needs it

    try:
        num2words(1, lang=lang)
    except NotImplementedError:
        return False
    return True


@dataclass(frozen=True)
class FilesConfig:
    """Line-aligned parallel text files (plain or .gz), one pair per split."""

    train_src: str = ""
    train_tgt: str = ""
    valid_src: str = ""  # leave both valid files empty when prepare.valid_from_train is set
    valid_tgt: str = ""
    test_src: str = ""
    test_tgt: str = ""


@dataclass(frozen=True)
class TableConfig:
    """One TSV, CSV or JSONL file (plain or .gz) per split, sides named by column."""

    format: Literal["auto", "tsv", "csv", "jsonl"] = "auto"  # auto: from the suffix (.tsv, .csv, .jsonl)
    src_column: str = "src"  # TSV and CSV files have a header row naming the columns
    tgt_column: str = "tgt"
    train: str = ""
    valid: str = ""  # leave empty when prepare.valid_from_train is set
    test: str = ""


@dataclass(frozen=True)
class CleanConfig:
    """Normalisation of every split, then pair filters on train and valid (each drop counted)."""

    unicode: Literal["none", "NFC", "NFKC"] = "NFC"  # Unicode normal form
    crlf: bool = True  # strip the carriage return of Windows line endings
    bom: bool = True  # remove byte-order marks (U+FEFF)
    control_chars: bool = True  # remove control characters; tabs and line separators become spaces
    whitespace: bool = True  # collapse runs of spaces and strip both ends
    dedup: bool = True  # drop repeated (source, target) pairs within a split
    max_chars: int = 10000  # drop pairs with a longer side (a broken file's giant line); 0: no limit
    max_words: int = 0  # drop pairs with a side of more words than this; 0: no limit
    max_ratio: float = 0.0  # drop pairs whose longer side has more than ratio x the words of the other; 0: off

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_words"):
            if getattr(self, name) < 0:
                raise ConfigError(f"prepare.clean.{name}: must be non-negative (0 turns the filter off)")
        if self.max_ratio != 0 and self.max_ratio < 1:
            raise ConfigError("prepare.clean.max_ratio: must be 0 (off) or at least 1")


@dataclass(frozen=True)
class PrepareConfig:
    """Where the corpus comes from and how it is cleaned; read and written in chunks."""

    source: Literal["numbers", "files", "table"] = "numbers"
    chunk_size: int = 100_000  # pairs read, cleaned and written at a time: bounds memory on large corpora
    valid_from_train: int = 0  # > 0: valid is this many train pairs drawn at random (seeded), not read
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    table: TableConfig = field(default_factory=TableConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ConfigError("prepare.chunk_size: must be at least 1")
        if self.valid_from_train < 0:
            raise ConfigError("prepare.valid_from_train: must be non-negative (0 reads the valid files)")
        if self.valid_from_train and self.source == "numbers":
            raise ConfigError("prepare.valid_from_train: only for the files and table sources (numbers has valid_size)")
        if self.source == "files":
            names = tuple(f.name for f in dataclasses.fields(FilesConfig))
            _check_split_paths(self.files, names, key="prepare.files", held_out=bool(self.valid_from_train))
        if self.source == "table":
            _check_split_paths(self.table, SPLITS, key="prepare.table", held_out=bool(self.valid_from_train))
            for name in ("src_column", "tgt_column"):
                if not getattr(self.table, name):
                    raise ConfigError(f"prepare.table.{name}: must name a column")
        sizes = self.numbers
        for name in ("train_size", "valid_size", "test_size"):
            if getattr(sizes, name) < 1:
                raise ConfigError(f"prepare.numbers.{name}: must be at least 1")


def _check_split_paths(section: Any, names: tuple[str, ...], *, key: str, held_out: bool) -> None:
    """Each named path is set, except valid's when it is held out of train (then it must be empty)."""
    for name in names:
        value = getattr(section, name)
        if held_out and name.startswith("valid"):
            if value:
                raise ConfigError(f"{key}.{name}: leave empty when prepare.valid_from_train is set")
        elif not value:
            raise ConfigError(f"{key}.{name}: required when prepare.source is '{key.rsplit('.', 1)[1]}'")


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 150
    model_type: Literal["unigram", "bpe", "char", "word"] = "unigram"
    character_coverage: float = 1.0
    joint: bool = True  # one vocabulary for both sides; needed for model.share_embeddings
    byte_fallback: bool = False  # unknown characters become UTF-8 byte pieces, not <unk> (256 more pieces)
    user_defined_symbols: tuple[str, ...] = ()  # always one piece each, never split (tags such as <2fr>)
    # The corpus's spellings of an unknown word (e.g. <unk>, UNK), each a word of its own: all become
    # one piece that is never split, and decode writes it back as the first (or decode.unk_spelling).
    unk_markers: tuple[str, ...] = ()
    input_sentence_size: int = 0  # train on a seeded, shuffled sample of this many sentences; 0: all
    threads: int = 1  # training threads; the vocabulary is reproducible for a given number

    def __post_init__(self) -> None:
        if self.vocab_size < 8:
            raise ConfigError("tokenizer.vocab_size: must be at least 8")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ConfigError("tokenizer.character_coverage: must be in (0, 1]")
        if self.input_sentence_size < 0 or 0 < self.input_sentence_size <= 100:
            # sentencepiece's own floor: a sample of 100 sentences or fewer is refused.
            raise ConfigError("tokenizer.input_sentence_size: must be 0 (every sentence) or more than 100")
        if self.threads < 1:
            raise ConfigError("tokenizer.threads: must be at least 1")
        reserved = {"<pad>", "<unk>", "<s>", "</s>"}
        for i, symbol in enumerate(self.user_defined_symbols):
            if not symbol or any(c.isspace() for c in symbol) or symbol in reserved:
                raise ConfigError(
                    f"tokenizer.user_defined_symbols[{i}]: {symbol!r} must be non-empty, without spaces, "
                    f"and none of {', '.join(sorted(reserved))}"
                )
        if len(set(self.user_defined_symbols)) != len(self.user_defined_symbols):
            raise ConfigError("tokenizer.user_defined_symbols: lists a symbol twice")
        for i, marker in enumerate(self.unk_markers):
            if not marker or any(c.isspace() for c in marker):
                raise ConfigError(f"tokenizer.unk_markers[{i}]: {marker!r} must be non-empty and without spaces")


@dataclass(frozen=True)
class PreprocessConfig:
    max_src_len: int = 100  # pieces; longer pairs are dropped and counted
    max_tgt_len: int = 100
    shard_size: int = 100_000  # pairs per parquet shard, also the unit encoded at a time (bounds memory)
    threads: int = 0  # sentencepiece encoding threads, and n-best sampling processes; 0: one per CPU core
    # Subword regularization (Kudo, 2018): this many sampled segmentations of the train split,
    # one per epoch in turn; 0: every epoch sees the tokenizer's best segmentation.
    subword_samples: int = 0
    subword_alpha: float = 0.5  # unigram: smoothing of the sampling (smaller: more varied); bpe: dropout rate
    # unigram: draw from each line's this many best segmentations, seeded, so every run draws the same;
    # -1: sentencepiece's sampler over all of them, which draws differently on every run. bpe: not used.
    subword_nbest: int = 64

    def __post_init__(self) -> None:
        for name in ("max_src_len", "max_tgt_len", "shard_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"preprocess.{name}: must be at least 1")
        if self.threads < 0:
            raise ConfigError("preprocess.threads: must be non-negative (0: one per CPU core)")
        if not 0 <= self.subword_samples <= 999:
            raise ConfigError("preprocess.subword_samples: must be in [0, 999] (0: off)")
        if not 0.0 < self.subword_alpha <= 1.0:
            raise ConfigError("preprocess.subword_alpha: must be in (0, 1]")
        if self.subword_nbest != -1 and not 2 <= self.subword_nbest <= MAX_NBEST:
            raise ConfigError(f"preprocess.subword_nbest: must be -1 (sentencepiece's sampler) or in [2, {MAX_NBEST}]")
