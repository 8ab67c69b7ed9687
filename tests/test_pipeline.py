"""End-to-end: real ``dvc repro``, ``dvc exp run`` and push/pull on a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvc_repo import Repo, make_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The pipeline reproduced once and committed, shared by the tests below (in file order)."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline"))
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "reproduced")
    return repo


def test_repro_writes_every_artifact(repo: Repo) -> None:
    p = repo.path
    for name in ("train", "valid", "test"):
        assert (p / "data/corpus" / f"{name}.src").stat().st_size > 0
    assert (p / "data/tokenizer/src.model").is_file()
    assert (p / "data/encoded/train.parquet").is_file()
    assert (p / "models/model.pt").is_file()
    hyps = (p / "outputs/test.hyp").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 40
    metrics = json.loads((p / "reports/metrics.json").read_text())
    for key in ("bleu", "chrf", "rouge1", "rouge2", "rougeL"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["signature"]["bleu"].startswith("nrefs:1")
    stats = json.loads((p / "reports/preprocess.json").read_text())
    assert stats["train"]["input"] == 400
    assert stats["train"]["kept"] + stats["train"]["dropped_empty"] + stats["train"]["dropped_too_long"] == 400
    train_metrics = json.loads((p / "reports/train/metrics.json").read_text())
    assert train_metrics["step"] == 1  # two epochs: steps 0 and 1
    assert (p / "reports/train/plots/metrics/valid/loss.tsv").read_text().count("\n") == 3


def test_second_repro_does_nothing(repo: Repo) -> None:
    # How fast this is, is measured by bench/pipeline.py, not asserted here.
    out = repo.dvc("repro").stdout
    assert "Running stage" not in out
    assert "up to date" in out
    assert "up to date" in repo.dvc("status").stdout


def test_metrics_and_plots_are_declared(repo: Repo) -> None:
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    files = workspace["data"]
    assert "bleu" in files["reports/metrics.json"]["data"]
    assert "valid" in files["reports/train/metrics.json"]["data"]
    plots = repo.dvc("plots", "show", "--json").stdout
    assert "reports/train/plots/metrics" in plots


def test_push_clone_pull_is_clean(repo: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo.dvc("remote", "add", "-d", "shared", str(remote))
    repo.git("commit", "-q", "-am", "add remote")
    repo.dvc("push")
    clone = tmp_path / "clone"
    repo.git("clone", "-q", str(repo.path), str(clone))
    other = Repo(clone, repo.env)
    other.dvc("pull")
    assert (clone / "models/model.pt").read_bytes() == (repo.path / "models/model.pt").read_bytes()
    assert "up to date" in other.dvc("status").stdout
    out = other.dvc("repro").stdout
    assert "Running stage" not in out


def test_exp_run_decode_param_does_not_retrain(repo: Repo) -> None:
    out = repo.dvc("exp", "run", "-S", "decode.beam_size=2").stdout
    assert "Running stage 'decode'" in out
    assert "Running stage 'evaluate'" in out
    for upstream in ("prepare", "tokenizer", "preprocess", "train"):
        assert f"Running stage '{upstream}'" not in out
    table = repo.dvc("exp", "show", "--csv").stdout
    header = table.splitlines()[0].split(",")
    assert "bleu" in header and "decode.beam_size" in header


def test_misspelled_param_key_fails_with_its_name(repo: Repo) -> None:
    params = repo.params()
    params["train"]["lrr"] = params["train"].pop("lr")
    repo.write_params(params)
    try:
        proc = repo.run("python", "stages/train.py", check=False)
        assert proc.returncode != 0
        assert "train.lrr" in proc.stderr or "'lrr'" in proc.stderr
        assert "valid keys" in proc.stderr
        assert "Traceback" not in proc.stderr
        proc = repo.dvc("repro", check=False)
        assert proc.returncode != 0
        assert "lrr" in proc.stdout + proc.stderr
    finally:
        repo.git("checkout", "params.yaml")
