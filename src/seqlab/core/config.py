"""Typed, frozen configuration mirroring ``params.yaml``.

``params.yaml`` is read once, at a stage's entry, by :func:`load_config`. Every
section becomes a frozen dataclass (the corpus-making ones in ``data_config``,
the model-side ones in ``run_config``); an unknown key or a value of the wrong
type is a :class:`ConfigError` that names the key path and, for unknown keys,
the valid ones. Defaults live on the fields, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqlab.core.data_config import PrepareConfig, PreprocessConfig, TokenizerConfig
from seqlab.core.errors import ConfigError
from seqlab.core.params import build
from seqlab.core.run_config import DecodeConfig, EvaluateConfig, ModelConfig, TrainConfig


@dataclass(frozen=True)
class PathsConfig:
    """Every artifact path, written once; ``dvc.yaml`` reads them as ``${paths.*}``."""

    params_ok: str = "reports/params.ok"  # params: written when params.yaml is valid (constant bytes)
    raw: str = "data/raw"  # prepare depends on this folder: keep the corpus files of prepare.files/table in it
    corpus: str = "data/corpus"  # prepare: {train,valid,test}.{src,tgt}
    prepare_stats: str = "reports/prepare.json"  # prepare: pairs read, normalised, dropped by reason
    tokenizer: str = "data/tokenizer"  # tokenizer: src.model, tgt.model
    encoded: str = "data/encoded"  # preprocess: {train,valid}-NNNNN.parquet shards
    preprocess_stats: str = "reports/preprocess.json"  # kept/dropped pair counts
    model: str = "models/model.pt"  # train: best checkpoint, self-describing
    train_scratch: str = ".dvc/tmp/train"  # train: machine-local resume state of each run, not a DVC output
    train_log: str = "reports/train"  # train: dvclive directory
    hypotheses: str = "outputs/test.hyp"  # decode: detokenized test hypotheses
    attention: str = "reports/attention"  # decode: attention heatmaps (PNG) of a few test sentences
    references: str = "data/corpus/test.tgt"  # evaluate: what the hypotheses are scored against
    metrics: str = "reports/metrics.json"  # evaluate: corpus scores and their 95% intervals
    signatures: str = "reports/signatures.json"  # evaluate: sacrebleu/rouge signatures of those scores
    sentences: str = "reports/sentences.tsv"  # evaluate: per-sentence BLEU and chrF with the texts
    length_buckets: str = "reports/length_buckets.json"  # evaluate: scores by source length (a plot)


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

    def __post_init__(self) -> None:
        # Checked here rather than where the tokenizer meets the model, so that the params
        # stage refuses it before dvc repro removes any stage's outputs.
        for name in ("share_embeddings", "copy"):
            if getattr(self.model, name) and not self.tokenizer.joint:
                raise ConfigError(f"model.{name}: needs tokenizer.joint: true (one vocabulary for both sides)")
        if self.preprocess.subword_samples and self.tokenizer.model_type not in ("unigram", "bpe"):
            raise ConfigError(f"preprocess.subword_samples: needs a unigram or bpe tokenizer, and tokenizer.model_type "
                              f"is {self.tokenizer.model_type} (a {self.tokenizer.model_type} model has one segmentation)")
        if self.model.arch == "transformer":
            needed = max(self.preprocess.max_src_len, self.preprocess.max_tgt_len + 1, self.decode.max_length + 1)
            if needed > self.model.max_positions:
                raise ConfigError(
                    f"model.max_positions: {self.model.max_positions} is too few for preprocess.max_src_len, "
                    f"max_tgt_len + 1 and decode.max_length + 1 (needs {needed})"
                )


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
