"""Typed, frozen configuration mirroring ``params.yaml``.

``params.yaml`` is read once, at a stage's entry, by :func:`load_config`. Every
section becomes a frozen dataclass; an unknown key or a value of the wrong type
is a :class:`ConfigError` that names the key path and, for unknown keys, the
valid ones. Defaults live on the fields, nowhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seqlab.errors import ConfigError
from seqlab.strict import as_dict, build

__all__ = ["Config", "ConfigError", "as_dict", "build", "load_config"]

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class PathsConfig:
    """Every artifact path, written once; ``dvc.yaml`` reads them as ``${paths.*}``."""

    raw: str = "data/raw"  # prepare depends on this folder: keep the corpus files of prepare.files/table in it
    corpus: str = "data/corpus"  # prepare: {train,valid,test}.{src,tgt}
    prepare_stats: str = "reports/prepare.json"  # prepare: pairs read, normalised, dropped by reason
    tokenizer: str = "data/tokenizer"  # tokenizer: src.model, tgt.model
    encoded: str = "data/encoded"  # preprocess: {train,valid}-NNNNN.parquet shards
    preprocess_stats: str = "reports/preprocess.json"  # kept/dropped pair counts
    model: str = "models/model.pt"  # train: best checkpoint, self-describing
    train_state: str = "models/train_state.pt"  # train: full training state for exact resume (persists)
    train_log: str = "reports/train"  # train: dvclive directory
    hypotheses: str = "outputs/test.hyp"  # decode: detokenized test hypotheses
    attention: str = "reports/attention"  # decode: attention heatmaps (PNG) of a few test sentences
    references: str = "data/corpus/test.tgt"  # evaluate: what the hypotheses are scored against
    metrics: str = "reports/metrics.json"  # evaluate: corpus scores and their 95% intervals
    signatures: str = "reports/signatures.json"  # evaluate: sacrebleu/rouge signatures of those scores
    sentences: str = "reports/sentences.tsv"  # evaluate: per-sentence BLEU and chrF with the texts
    length_buckets: str = "reports/length_buckets.json"  # evaluate: scores by source length (a plot)


@dataclass(frozen=True)
class NumbersConfig:
    """The offline default corpus: number phrases rendered by ``num2words``."""

    src_lang: str = "en"
    tgt_lang: str = "fr"
    train_size: int = 30000
    valid_size: int = 1000
    test_size: int = 1000
    max_value: int = 1_000_000  # cardinals and ordinals are drawn log-uniformly below this


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


@dataclass(frozen=True)
class PreprocessConfig:
    max_src_len: int = 100  # pieces; longer pairs are dropped and counted
    max_tgt_len: int = 100
    shard_size: int = 100_000  # pairs per parquet shard, also the unit encoded at a time (bounds memory)
    threads: int = 0  # sentencepiece encoding threads; 0: one per CPU core

    def __post_init__(self) -> None:
        for name in ("max_src_len", "max_tgt_len", "shard_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"preprocess.{name}: must be at least 1")
        if self.threads < 0:
            raise ConfigError("preprocess.threads: must be non-negative (0: one per CPU core)")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored in every checkpoint so it can be rebuilt from it alone."""

    embed_dim: int = 128
    hidden_dim: int = 256  # per direction in the encoder; the decoder's size
    attention_dim: int = 256  # Bahdanau's hidden layer
    encoder_layers: int = 1
    decoder_layers: int = 1
    rnn_type: Literal["lstm", "gru"] = "lstm"  # encoder and decoder
    bidirectional: bool = True  # encoder
    bridge: bool = True  # decoder starts from a projection of the encoder's final state (else zeros)
    attention: Literal["bahdanau", "dot", "general", "none"] = "bahdanau"
    input_feeding: bool = True  # the previous attentional vector is fed to the decoder
    dropout: float = 0.1
    share_embeddings: bool = True  # source and target embeddings are one matrix (joint vocab)
    tie_embeddings: bool = False  # decoder output layer reuses the target embedding
    copy: bool = False  # pointer-generator: a learned gate mixes generating and copying source tokens
    coverage: bool = False  # coverage vector fed to the attention (See et al. 2017)
    coverage_loss_weight: float = 1.0  # weight of the coverage loss when coverage is on
    output_vocab: Literal["full", "target"] = "full"  # output layer over every piece, or those the training targets use

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "attention_dim", "encoder_layers", "decoder_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout: must be in [0, 1)")
        if self.tie_embeddings and self.embed_dim != self.hidden_dim:
            raise ConfigError("model.tie_embeddings: needs model.embed_dim == model.hidden_dim")
        if self.attention == "dot" and self.memory_dim != self.hidden_dim:
            raise ConfigError(
                "model.attention: 'dot' needs encoder states the size of the decoder's "
                "(set model.bidirectional: false, or use 'general')"
            )
        if self.copy and self.attention == "none":
            raise ConfigError("model.copy: copying follows the attention; it needs model.attention other than 'none'")
        if self.coverage and self.attention != "bahdanau":
            raise ConfigError("model.coverage: needs model.attention: bahdanau")
        if self.coverage_loss_weight < 0:
            raise ConfigError("model.coverage_loss_weight: must be non-negative")
        for name in ("copy", "tie_embeddings"):  # both need an output for every piece
            if self.output_vocab == "target" and getattr(self, name):
                raise ConfigError(f"model.output_vocab: 'target' cannot be combined with model.{name}: true")

    @property
    def memory_dim(self) -> int:
        """Size of the encoder's per-position states."""
        return self.hidden_dim * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, LR schedule, validation, early stopping, averaging and resume."""

    epochs: int = 4  # the outer budget: passes over the training data
    batch_tokens: int = 2000  # target tokens per batch (padding included)
    lr: float = 0.002  # peak learning rate (reached after warmup)
    clip_norm: float = 1.0  # gradient-norm clipping; 0 turns it off
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    max_steps: int = 0  # stop after this many optimizer steps; 0: epochs alone decide
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0  # adam: L2 added to the gradient; adamw: decoupled decay
    label_smoothing: float = 0.0  # probability mass spread over the vocabulary
    schedule: Literal["constant", "plateau", "inverse_sqrt", "cosine"] = "constant"
    warmup_steps: int = 0  # linear warmup from 0 to lr, for every schedule
    min_lr: float = 0.0  # floor of the cosine and plateau schedules
    plateau_factor: float = 0.5  # plateau: lr is multiplied by this ...
    plateau_patience: int = 2  # ... after more than this many validations without improvement
    valid_every: int = 0  # optimizer steps between validations; 0: at the end of every epoch
    valid_metric: Literal["bleu", "chrf", "rouge_l", "loss"] = "bleu"  # early stopping and best model
    valid_beam_size: int = 1  # beam for the validation metric's decoding; 1 is greedy (fast)
    patience: int = 0  # stop after this many validations without improvement; 0: never
    average_last: int = 0  # average the last k validations' weights at the end; 0 or 1: off
    save_every: int = 100  # optimizer steps between saves of the full training state (resume)
    cpu_bf16: bool = False  # bf16 autocast on CPU too (CUDA always uses it)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_tokens", "valid_beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be at least 1")
        for name in ("max_steps", "warmup_steps", "plateau_patience", "valid_every", "patience", "average_last",
                     "save_every", "threads", "clip_norm", "weight_decay", "min_lr"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: must be non-negative")
        if self.lr <= 0:
            raise ConfigError("train.lr: must be positive")
        if self.min_lr > self.lr:
            raise ConfigError("train.min_lr: must not exceed train.lr")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("train.label_smoothing: must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError("train.plateau_factor: must be in (0, 1)")
        if self.schedule == "inverse_sqrt" and self.warmup_steps < 1:
            raise ConfigError("train.warmup_steps: the inverse_sqrt schedule needs at least 1 (it decays from there)")


@dataclass(frozen=True)
class DecodeConfig:
    """Search settings; ``seqlab translate`` takes each as an option of the same name."""

    strategy: Literal["beam", "sample"] = "beam"  # beam (beam_size 1 is greedy) or sampling
    beam_size: int = 5
    n_best: int = 1  # hypotheses (or samples) kept per sentence
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    coverage_penalty: float = 0.0  # GNMT beta; rewards hypotheses that attend to every source piece
    min_length: int = 0  # no EOS before this many pieces ...
    min_length_ratio: float = 0.0  # ... nor before ratio * source pieces
    max_length_ratio: float = 2.0  # hypotheses stop at ratio * source pieces ...
    max_length: int = 200  # ... and never exceed this many pieces
    no_repeat_ngram: int = 0  # forbid repeating any n-gram of this size; 0 is off
    top_k: int = 0  # sampling: keep the k most probable tokens; 0 keeps all
    top_p: float = 1.0  # sampling: keep the smallest set with this much probability
    temperature: float = 1.0  # sampling: below 1 sharpens, above 1 flattens
    batch_size: int = 64  # sentences per search batch ...
    batch_tokens: int = 0  # ... and at most this many source pieces x beam per batch; 0 is no limit
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_bf16: bool = False  # on CPU, search with a bf16 copy of the model (CUDA always uses bf16 autocast)

    def __post_init__(self) -> None:
        for name in ("beam_size", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"decode.{name}: must be at least 1")
        for name in ("min_length", "no_repeat_ngram", "top_k", "batch_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"decode.{name}: must be non-negative")
        for name in ("length_penalty", "coverage_penalty", "min_length_ratio"):
            if getattr(self, name) < 0:
                raise ConfigError(f"decode.{name}: must be non-negative")
        if self.strategy == "beam" and not 1 <= self.n_best <= self.beam_size:
            raise ConfigError("decode.n_best: must be between 1 and decode.beam_size")
        if self.n_best < 1:
            raise ConfigError("decode.n_best: must be at least 1")
        if self.max_length_ratio <= 0:
            raise ConfigError("decode.max_length_ratio: must be positive")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("decode.top_p: must be in (0, 1]")
        if self.temperature <= 0:
            raise ConfigError("decode.temperature: must be positive")


@dataclass(frozen=True)
class EvaluateConfig:
    """How the test hypotheses are scored; every score is on one 0-100 scale."""

    metrics: tuple[Literal["bleu", "chrf", "ter"], ...] = ("bleu", "chrf", "ter")  # sacrebleu corpus metrics
    rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")  # F-measure, Porter stemming
    lowercase: bool = False  # case-insensitive BLEU, chrF and TER (rouge-score always lowercases)
    # sacrebleu's BLEU tokenizer; the ones that download a model (spm, flores*) are left out to stay offline.
    tokenize: Literal["13a", "intl", "zh", "char", "none"] = "13a"
    bootstrap_resamples: int = 1000  # for the 95% intervals; 0 turns them off
    # Fixed rather than the top-level seed so that every experiment on the same test set
    # is resampled with the same sentence indices, which keeps their intervals comparable.
    bootstrap_seed: int = 12345
    length_buckets: tuple[int, ...] = (2, 4, 6, 8)  # upper bounds in source words; one more bucket above
    attention_heatmaps: int = 4  # the decode stage draws this many test sentences' attention

    def __post_init__(self) -> None:
        valid = {"rouge1", "rouge2", "rouge3", "rouge4", "rougeL", "rougeLsum"}
        for name in self.rouge_types:
            if name not in valid:
                raise ConfigError(f"evaluate.rouge_types: unknown {name!r}; valid: {', '.join(sorted(valid))}")
        for key in ("metrics", "rouge_types"):
            names = getattr(self, key)
            if len(set(names)) != len(names):
                raise ConfigError(f"evaluate.{key}: lists a metric twice")
        if not self.metrics and not self.rouge_types:
            raise ConfigError("evaluate.metrics and evaluate.rouge_types: both empty, nothing to score")
        if self.bootstrap_resamples < 0 or self.bootstrap_resamples == 1:
            raise ConfigError("evaluate.bootstrap_resamples: must be 0 (off) or at least 2")
        edges = self.length_buckets
        if not edges or edges[0] < 1 or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ConfigError("evaluate.length_buckets: must be increasing positive word counts, e.g. [10, 20, 40]")
        if self.attention_heatmaps < 0:
            raise ConfigError("evaluate.attention_heatmaps: must be non-negative")


@dataclass(frozen=True)
class Config:
    seed: int = 1234
    paths: PathsConfig = field(default_factory=PathsConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read ``params.yaml`` into a :class:`Config`; raise ConfigError naming the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if raw is None:
        raw = {}
    try:
        return build(Config, raw, "")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
