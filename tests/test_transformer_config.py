"""model.arch and the transformer's keys in params.yaml: strict, and each key bound to its arch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seqlab.core.config import load_config
from seqlab.core.errors import ConfigError
from seqlab.core.run_config import RNN_ONLY, TRANSFORMER_ONLY, ModelConfig

ROOT = Path(__file__).resolve().parents[1]


def load_model_text(tmp_path: Path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_default_arch_is_rnn_and_params_yaml_switches_with_one_key(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert load_config(ROOT / "params.yaml").model.arch == "rnn"
    params["model"]["arch"] = "transformer"  # what dvc exp run -S model.arch=transformer writes
    config = load_model_text(tmp_path, yaml.safe_dump(params))
    assert config.model.arch == "transformer"
    assert config.model.memory_dim == config.model.model_dim


def test_transformer_keys_load(tmp_path: Path) -> None:
    text = ("model:\n  arch: transformer\n  model_dim: 64\n  heads: 8\n  ff_dim: 128\n  attention_dropout: 0.0\n"
            "  activation: gelu\n  norm: post\n  positions: learned\n  max_positions: 300\n  scale_embeddings: false\n"
            "  encoder_layers: 3\n  decoder_layers: 2\n  tie_embeddings: true\n")
    model = load_model_text(tmp_path, text).model
    assert (model.model_dim, model.heads, model.ff_dim, model.activation, model.norm, model.positions) == (
        64, 8, 128, "gelu", "post", "learned")
    assert (model.max_positions, model.scale_embeddings, model.encoder_layers, model.tie_embeddings) == (300, False, 3, True)


@pytest.mark.parametrize(("text", "key"), [
    ("model:\n  arch: transformer\n  input_feeding: false\n", "model.input_feeding"),
    ("model:\n  arch: transformer\n  hidden_dim: 512\n", "model.hidden_dim"),
    ("model:\n  arch: transformer\n  rnn_type: gru\n", "model.rnn_type"),
    ("model:\n  arch: transformer\n  coverage: true\n", "model.coverage"),
    ("model:\n  heads: 8\n", "model.heads"),
    ("model:\n  arch: rnn\n  norm: post\n", "model.norm"),
    ("model:\n  positions: learned\n", "model.positions"),
])
def test_a_key_of_the_other_arch_is_refused_by_name(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: does not apply to model\.arch: ") as err:
        load_model_text(tmp_path, text)
    assert "\n" not in str(err.value)


def test_the_arch_key_lists_partition_the_arch_specific_fields() -> None:
    assert not set(RNN_ONLY) & set(TRANSFORMER_ONLY)
    assert set(RNN_ONLY) | set(TRANSFORMER_ONLY) <= set(ModelConfig.__dataclass_fields__)


@pytest.mark.parametrize(("text", "message"), [
    ("model:\n  arch: transformer\n  model_dim: 30\n  heads: 4\n", r"model\.heads: model\.model_dim \(30\) must divide"),
    ("model:\n  arch: transformer\n  heads: 0\n", r"model\.heads: must be at least 1"),
    ("model:\n  arch: transformer\n  attention_dropout: 1.0\n", r"model\.attention_dropout: must be in"),
    ("model:\n  arch: transformer\n  activation_dropout: -0.1\n", r"model\.activation_dropout: must be in"),
    ("model:\n  arch: transformer\n  activation: swish\n", r"model\.activation: 'swish' is not one of"),
    ("model:\n  arch: transformer\n  norm: sandwich\n", r"model\.norm: 'sandwich' is not one of"),
    ("model:\n  arch: cnn\n", r"model\.arch: 'cnn' is not one of 'rnn', 'transformer'"),
    ("model:\n  arch: transformer\n  max_positions: 150\n", r"model\.max_positions: 150 is too few .* \(needs 201\)"),
    ("model:\n  arch: transformer\n  max_positions: 110\ndecode:\n  max_length: 120\n",
     r"model\.max_positions: 110 is too few .* \(needs 121\)"),
])
def test_bad_transformer_values_fail_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_model_text(tmp_path, text)


def test_max_positions_that_fit_are_accepted(tmp_path: Path) -> None:
    text = "model:\n  arch: transformer\n  max_positions: 121\ndecode:\n  max_length: 120\n"
    assert load_model_text(tmp_path, text).model.max_positions == 121


def test_copy_applies_to_the_transformer_and_needs_a_joint_tokenizer(tmp_path: Path) -> None:
    assert load_model_text(tmp_path, "model:\n  arch: transformer\n  copy: true\n").model.copy
    with pytest.raises(ConfigError, match=r"model\.copy: needs tokenizer\.joint: true"):
        load_model_text(tmp_path, "tokenizer:\n  joint: false\nmodel:\n  arch: transformer\n  copy: true\n"
                                  "  share_embeddings: false\n")
