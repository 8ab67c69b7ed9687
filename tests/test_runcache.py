"""Every stage is run-cached and the same experiment gives the same dvc.lock (issue 19 items 1 and 3).

Real dvc in a temporary git repository: an experiment already run is restored
from the run-cache stage by stage instead of being run again, and running it
again for real (forced, scratch removed) writes a byte-identical dvc.lock.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import yaml
from dvc_repo import ROOT, Repo, make_repo

from seqlab.core.run_config import TrainConfig

STAGES = ("params", "prepare", "tokenizer", "preprocess", "train", "decode", "evaluate")
OUTPUTS = ("data/corpus", "data/tokenizer", "data/encoded", "models", "reports", "outputs")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("runcache"))
    repo.dvc("exp", "run")
    return repo


def remove_outputs(repo: Repo) -> None:
    for name in OUTPUTS:
        shutil.rmtree(repo.path / name, ignore_errors=True)


def test_no_stage_has_an_output_that_stops_the_run_cache() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for out in stage["outs"]:
            path, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            # DVC never run-caches a persistent output, and with this DVC it does not restore a
            # stage with an uncached one either (evaluate's metrics.json was: it reran)
            assert not options.get("persist") and options.get("cache", True), f"{name}: {path}"


def test_train_params_are_every_train_key_but_the_runtime_ones() -> None:
    """Issue 17.14: device, threads and save_every change neither the run nor its run-cache key."""
    params = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["params"]
    keys = {p.removeprefix("train.") for p in params if isinstance(p, str) and p.startswith("train.")}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert keys == fields - set(TrainConfig.RUNTIME)
    assert set(TrainConfig.RUNTIME) == {"device", "threads", "save_every"}


def test_an_experiment_already_run_is_restored_from_the_run_cache(repo: Repo) -> None:
    lock = (repo.path / "dvc.lock").read_bytes()
    metrics = json.loads((repo.path / "reports/metrics.json").read_text())
    remove_outputs(repo)
    (repo.path / "dvc.lock").unlink()  # as a teammate's checkout of the commit the experiment started from
    out = repo.dvc("exp", "run").stdout
    for stage in STAGES:
        assert f"Stage '{stage}' is cached - skipping run" in out, out
    assert "Running stage" not in out
    assert (repo.path / "dvc.lock").read_bytes() == lock
    assert json.loads((repo.path / "reports/metrics.json").read_text()) == metrics
    # the training log came back with the model it describes (issue 17.2)
    assert (repo.path / "reports/train/metrics.json").is_file() and (repo.path / "models/model.pt").is_file()


def test_the_same_experiment_run_again_writes_the_same_dvc_lock(repo: Repo) -> None:
    lock = (repo.path / "dvc.lock").read_bytes()
    shutil.rmtree(repo.path / ".dvc/tmp/train")  # so that train trains again rather than republishing
    remove_outputs(repo)
    out = repo.dvc("repro", "-f").stdout
    assert "Running stage 'train'" in out and "starting fresh" in out
    assert (repo.path / "dvc.lock").read_bytes() == lock
    # Timings are still reported, outside every hashed output.
    timings = json.loads((repo.path / "reports/timings/train.json").read_text())
    assert timings["wall_seconds"] > 0 and timings["tokens_per_sec"] > 0
    assert "reports/timings" not in lock.decode()
    assert "reports/timings" not in repo.git("status", "--porcelain").stdout
