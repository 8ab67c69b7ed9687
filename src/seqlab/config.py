"""Typed, frozen configuration mirroring ``params.yaml``.

``params.yaml`` is read once, at a stage's entry, by :func:`load_config`. Every
section becomes a frozen dataclass; an unknown key or a value of the wrong type
is a :class:`ConfigError` that names the key path and, for unknown keys, the
valid ones. Defaults live on the fields, nowhere else.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seqlab.errors import ConfigError


@dataclass(frozen=True)
class PathsConfig:
    """Every artifact path, written once; ``dvc.yaml`` reads them as ``${paths.*}``."""

    corpus: str = "data/corpus"  # prepare: {train,valid,test}.{src,tgt}
    tokenizer: str = "data/tokenizer"  # tokenizer: src.model, tgt.model
    encoded: str = "data/encoded"  # preprocess: {train,valid,test}.parquet
    preprocess_stats: str = "reports/preprocess.json"  # kept/dropped pair counts
    model: str = "models/model.pt"  # train: best checkpoint, self-describing
    train_log: str = "reports/train"  # train: dvclive directory
    hypotheses: str = "outputs/test.hyp"  # decode: detokenized test hypotheses
    metrics: str = "reports/metrics.json"  # evaluate: corpus scores


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
    valid_src: str = ""
    valid_tgt: str = ""
    test_src: str = ""
    test_tgt: str = ""


@dataclass(frozen=True)
class PrepareConfig:
    source: Literal["numbers", "files"] = "numbers"
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    files: FilesConfig = field(default_factory=FilesConfig)

    def __post_init__(self) -> None:
        if self.source == "files":
            for name in (f.name for f in dataclasses.fields(FilesConfig)):
                if not getattr(self.files, name):
                    raise ConfigError(f"prepare.files.{name}: required when prepare.source is 'files'")
        sizes = self.numbers
        for name in ("train_size", "valid_size", "test_size"):
            if getattr(sizes, name) < 1:
                raise ConfigError(f"prepare.numbers.{name}: must be at least 1")


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 150
    model_type: Literal["unigram", "bpe", "char", "word"] = "unigram"
    character_coverage: float = 1.0
    joint: bool = True  # one vocabulary for both sides; needed for model.share_embeddings

    def __post_init__(self) -> None:
        if self.vocab_size < 8:
            raise ConfigError("tokenizer.vocab_size: must be at least 8")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ConfigError("tokenizer.character_coverage: must be in (0, 1]")


@dataclass(frozen=True)
class PreprocessConfig:
    max_src_len: int = 100  # pieces; longer pairs are dropped and counted
    max_tgt_len: int = 100


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored in every checkpoint so it can be rebuilt from it alone."""

    embed_dim: int = 128
    hidden_dim: int = 256  # per direction in the encoder; the decoder's size
    attention_dim: int = 256  # Bahdanau's hidden layer
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    share_embeddings: bool = True  # source and target embeddings are one matrix (joint vocab)
    tie_embeddings: bool = False  # decoder output layer reuses the target embedding

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "attention_dim", "encoder_layers", "decoder_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout: must be in [0, 1)")
        if self.tie_embeddings and self.embed_dim != self.hidden_dim:
            raise ConfigError("model.tie_embeddings: needs model.embed_dim == model.hidden_dim")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_tokens: int = 2000  # target tokens per batch (padding included)
    lr: float = 0.002
    clip_norm: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError("train.epochs: must be at least 1")
        if self.batch_tokens < 1:
            raise ConfigError("train.batch_tokens: must be at least 1")
        if self.lr <= 0:
            raise ConfigError("train.lr: must be positive")


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    max_length_ratio: float = 2.0  # hypotheses stop at ratio * source pieces ...
    max_length: int = 200  # ... and never exceed this many pieces
    batch_size: int = 64  # sentences per search batch
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ConfigError("decode.beam_size: must be at least 1")
        if not 1 <= self.n_best <= self.beam_size:
            raise ConfigError("decode.n_best: must be between 1 and decode.beam_size")
        if self.length_penalty < 0:
            raise ConfigError("decode.length_penalty: must be non-negative")
        if self.max_length_ratio <= 0 or self.max_length < 1:
            raise ConfigError("decode.max_length_ratio and decode.max_length: must be positive")
        if self.batch_size < 1:
            raise ConfigError("decode.batch_size: must be at least 1")


@dataclass(frozen=True)
class EvaluateConfig:
    lowercase: bool = False  # case-insensitive BLEU and chrF
    rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")

    def __post_init__(self) -> None:
        valid = {"rouge1", "rouge2", "rouge3", "rouge4", "rougeL", "rougeLsum"}
        for name in self.rouge_types:
            if name not in valid:
                raise ConfigError(f"evaluate.rouge_types: unknown {name!r}; valid: {', '.join(sorted(valid))}")


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


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``; ``prefix`` names it in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'top level'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in raw if key not in names]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]}; valid keys: {', '.join(names)}")
    values = {key: _convert(hints[key], value, f"{prefix}.{key}" if prefix else key) for key, value in raw.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return _scalar(hint, value, key)


def _scalar(hint: type, value: Any, key: str) -> Any:
    # bool is an int in Python, so it is checked first and never accepted as a number.
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


def as_dict(config: Any) -> dict[str, Any]:
    """A plain-dict copy (for checkpoints and logs); tuples become lists."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
