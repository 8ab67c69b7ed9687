"""End-to-end: ``dvc exp run -S model.arch=transformer`` over the default model section, on the tiny corpus."""

from __future__ import annotations

import json

import pytest
from dvc_repo import TINY, Repo, make_repo

from seqlab.model.checkpoint import load_checkpoint
from seqlab.model.transformer import Transformer

# The default model section stays as it is: the switch is what a user types.
NO_MODEL = {key: value for key, value in TINY.items() if key != "model"}
SWITCH = ["model.arch=transformer", "model.model_dim=16", "model.heads=2", "model.ff_dim=32", "model.dropout=0.0"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("transformer"), overrides=NO_MODEL)
    args = [arg for setting in SWITCH for arg in ("-S", setting)]
    repo.dvc("exp", "run", *args)
    return repo


def test_exp_run_switches_the_pipeline_to_a_transformer(repo: Repo) -> None:
    p = repo.path
    assert repo.params()["model"]["arch"] == "transformer"
    loaded = load_checkpoint(p / "models/model.pt")
    assert isinstance(loaded.model, Transformer)
    assert len((p / "outputs/test.hyp").read_text(encoding="utf-8").splitlines()) == 40
    metrics = json.loads((p / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["bleu"] <= 100.0
    assert len(list((p / "reports/attention").glob("*.png"))) == 2  # heatmaps from the cross-attention
    info = repo.run("seqlab", "info", "models/model.pt").stdout
    assert "  arch: transformer\n" in info and "rnn_type" not in info


def test_an_rnn_key_with_the_transformer_fails_before_any_output_is_removed(repo: Repo) -> None:
    proc = repo.dvc("exp", "run", "-S", "model.input_feeding=false", check=False)
    assert proc.returncode != 0
    assert "model.input_feeding: does not apply to model.arch: transformer" in proc.stderr
    assert (repo.path / "models/model.pt").is_file()
