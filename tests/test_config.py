"""Tests for seqlab.core.config: strict loading of params.yaml into frozen dataclasses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from seqlab.core.config import Config, load_config
from seqlab.core.data_config import FilesConfig, PrepareConfig
from seqlab.core.errors import ConfigError
from seqlab.core.params import as_dict
from seqlab.core.run_config import DecodeConfig, EvaluateConfig, ModelConfig, TrainConfig

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write_params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load_config(write_params(tmp_path, text))


# ---------------------------------------------------------------- valid files


def _merged(defaults: dict, overrides: dict) -> dict:
    """``defaults`` with the values of ``overrides`` laid over it, section by section."""
    out = dict(defaults)
    for key, value in overrides.items():
        out[key] = _merged(defaults[key], value) if isinstance(value, dict) else value
    return out


def test_repo_params_equal_defaults_where_they_match() -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    config = load_config(REPO_PARAMS)
    # Every value in params.yaml is taken as written; every other field keeps its default.
    assert as_dict(config) == _merged(as_dict(Config()), raw)
    defaults = as_dict(Config())
    for section, values in raw.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value == defaults[section][key]:
                assert getattr(getattr(config, section), key) == getattr(getattr(Config(), section), key)
    assert isinstance(config.evaluate.rouge_types, tuple)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") == Config()


def test_partial_section_keeps_other_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "train:\n  lr: 0.5\n")
    assert config.train == dataclasses.replace(TrainConfig(), lr=0.5)
    assert config.model == ModelConfig()


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_text(tmp_path, "seed: 7\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 8  # type: ignore[misc]


def test_as_dict_round_trips_through_load(tmp_path: Path) -> None:
    config = load_config(REPO_PARAMS)
    plain = as_dict(config)
    assert plain["evaluate"]["rouge_types"] == ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    assert load_text(tmp_path, yaml.safe_dump(plain)) == config


# ---------------------------------------------------------------- unknown keys


def test_misspelled_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "trian:\n  lr: 0.1\n")
    message = str(info.value)
    assert "unknown key trian;" in message
    assert "valid keys: seed, paths, prepare, tokenizer, preprocess, model, train, decode, evaluate" in message


def test_misspelled_key_names_path_and_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "train:\n  lrr: 0.1\n")
    message = str(info.value)
    assert "unknown key train.lrr" in message.replace("'", "")
    assert "valid keys: epochs, batch_tokens, lr, clip_norm, device, threads" in message
    assert message.startswith(str(tmp_path / "params.yaml"))


def test_misspelled_nested_key_names_full_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "prepare:\n  numbers:\n    train_sizee: 10\n")
    message = str(info.value)
    assert "unknown key prepare.numbers.train_sizee" in message.replace("'", "")
    for key in ("src_lang", "tgt_lang", "train_size", "valid_size", "test_size", "max_value"):
        assert key in message


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train: expected a mapping, got int"):
        load_text(tmp_path, "train: 3\n")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"top level: expected a mapping, got list"):
        load_text(tmp_path, "- 1\n- 2\n")


# ---------------------------------------------------------------- types


def test_string_for_int_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int, got str '10'"):
        load_text(tmp_path, "train:\n  epochs: '10'\n")


def test_bool_for_int_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int, got bool True"):
        load_text(tmp_path, "train:\n  epochs: true\n")


def test_float_for_int_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"seed: expected int, got float 1\.5"):
        load_text(tmp_path, "seed: 1.5\n")


def test_int_accepted_for_float(tmp_path: Path) -> None:
    config = load_text(tmp_path, "train:\n  lr: 1\n")
    assert config.train.lr == 1.0
    assert type(config.train.lr) is float


def test_bool_for_float_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.lr: expected float, got bool"):
        load_text(tmp_path, "train:\n  lr: false\n")


def test_int_for_bool_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.joint: expected bool, got int 1"):
        load_text(tmp_path, "tokenizer:\n  joint: 1\n")


def test_list_accepted_for_tuple_field(tmp_path: Path) -> None:
    config = load_text(tmp_path, "evaluate:\n  rouge_types: [rougeL]\n")
    assert config.evaluate.rouge_types == ("rougeL",)


def test_string_for_tuple_field_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.rouge_types: expected a list, got str"):
        load_text(tmp_path, "evaluate:\n  rouge_types: rougeL\n")


def test_tuple_item_of_wrong_type_names_index(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.rouge_types\[1\]: expected str, got int"):
        load_text(tmp_path, "evaluate:\n  rouge_types: [rouge1, 2]\n")


def test_unknown_rouge_type_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.rouge_types: unknown 'rouge9'; valid: rouge1, "):
        EvaluateConfig(rouge_types=("rouge9",))


# ---------------------------------------------------------------- Literal choices


def test_literal_choice_rejected_with_choices_listed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "train:\n  device: gpu\n")
    assert "train.device: 'gpu' is not one of 'auto', 'cpu', 'cuda'" in str(info.value)


def test_literal_choice_nested(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.model_type: 'wordpiece' is not one of 'unigram', 'bpe'"):
        load_text(tmp_path, "tokenizer:\n  model_type: wordpiece\n")


def test_literal_choice_accepted(tmp_path: Path) -> None:
    assert load_text(tmp_path, "decode:\n  device: cpu\n").decode.device == "cpu"


# ---------------------------------------------------------------- cross-field checks


def test_tie_embeddings_needs_equal_dims(tmp_path: Path) -> None:
    text = "model:\n  tie_embeddings: true\n  embed_dim: 16\n  hidden_dim: 32\n"
    with pytest.raises(ConfigError, match=r"model\.tie_embeddings: needs model\.embed_dim == model\.hidden_dim"):
        load_text(tmp_path, text)
    tied = load_text(tmp_path, "model:\n  tie_embeddings: true\n  embed_dim: 32\n  hidden_dim: 32\n")
    assert tied.model.tie_embeddings


@pytest.mark.parametrize("name", ["share_embeddings", "copy"])
def test_one_vocabulary_model_needs_a_joint_tokenizer(tmp_path: Path, name: str) -> None:
    # A cross-section check: load_config refuses it, so the params stage does, before any stage runs.
    text = f"tokenizer:\n  joint: false\nmodel:\n  share_embeddings: false\n  {name}: true\n"
    with pytest.raises(ConfigError, match=rf"model\.{name}: needs tokenizer\.joint: true"):
        load_text(tmp_path, text)
    assert not load_text(tmp_path, "tokenizer:\n  joint: false\nmodel:\n  share_embeddings: false\n").tokenizer.joint


def test_n_best_above_beam_size_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"decode\.n_best: must be between 1 and decode\.beam_size"):
        load_text(tmp_path, "decode:\n  beam_size: 2\n  n_best: 3\n")
    assert DecodeConfig(beam_size=3, n_best=3).n_best == 3


def test_files_source_requires_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prepare\.files\.train_src: required when prepare\.source is 'files'"):
        load_text(tmp_path, "prepare:\n  source: files\n")


def test_files_source_names_first_missing_file() -> None:
    files = FilesConfig(train_src="a", train_tgt="b", valid_src="c", valid_tgt="", test_src="e", test_tgt="f")
    with pytest.raises(ConfigError, match=r"prepare\.files\.valid_tgt"):
        PrepareConfig(source="files", files=files)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("prepare:\n  numbers:\n    valid_size: 0\n", "prepare.numbers.valid_size"),
        ("prepare:\n  numbers:\n    tgt_lang: xx\n", "prepare.numbers.tgt_lang: 'xx' is not a language"),
        ("tokenizer:\n  vocab_size: 4\n", "tokenizer.vocab_size"),
        ("tokenizer:\n  character_coverage: 0.0\n", "tokenizer.character_coverage"),
        ("model:\n  dropout: 1.0\n", "model.dropout"),
        ("model:\n  hidden_dim: 0\n", "model.hidden_dim"),
        ("train:\n  lr: 0\n", "train.lr"),
        ("train:\n  batch_tokens: 0\n", "train.batch_tokens"),
        ("decode:\n  beam_size: 0\n", "decode.beam_size"),
        ("decode:\n  length_penalty: -1\n", "decode.length_penalty"),
        ("decode:\n  batch_size: 0\n", "decode.batch_size"),
    ],
)
def test_range_checks_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert key in str(info.value)


# ---------------------------------------------------------------- file problems


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write_params(tmp_path, "seed: 1\ntrain:\n  lr: [0.1\n  epochs: 2\nmodel: {\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "not valid YAML" in message
    line = int(message[len(str(path)) + 1 :].split(":", 1)[0])
    assert 3 <= line <= 5


def test_invalid_yaml_exact_line(tmp_path: Path) -> None:
    # A tab cannot start indentation in YAML; the scanner reports line 3.
    path = write_params(tmp_path, "seed: 1\ntrain:\n\tlr: 0.1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:3: not valid YAML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(path)
