"""Tests for seqlab.train.state: saving and restoring the full training state, fingerprints, dvclive trimming."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.core.run_config import TrainConfig
from seqlab.train.schedule import Plateau
from seqlab.train.state import (
    FORMAT,
    Progress,
    capture_rng,
    fingerprint,
    load_state,
    restore_rng,
    run_fingerprint,
    save_state,
    trim_live_log,
)


def save_tiny(path: Path, *, fp: str = "abc",
              progress: Progress | None = None) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    save_state(path, fingerprint=fp, progress=progress or Progress(step=7, epoch=2, position=3, best_metric=12.5,
               plateau=Plateau(scale=0.5, bad=1), valid_step=6), model=model, optimizer=optimizer,
               epoch_generator=torch.Generator().manual_seed(5).get_state(), snapshots=[{"w": torch.ones(2)}])
    return model, optimizer


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    model, optimizer = save_tiny(path)
    check = load_state(path, fingerprint="abc")
    assert check.saved is not None and "resuming from step 7 (epoch 2, batch 3)" in check.note
    saved = check.saved
    assert saved.progress == Progress(step=7, epoch=2, position=3, best_metric=12.5, plateau=Plateau(0.5, 1),
                                      valid_step=6)
    assert all(torch.equal(saved.model[k], v) for k, v in model.state_dict().items())
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(saved.optimizer)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(saved.epoch_generator, torch.Generator().manual_seed(5).get_state())
    assert torch.equal(saved.snapshots[0]["w"], torch.ones(2))


def test_state_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_tiny(path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("missing", "no saved training state"),
        ("other", "other parameters or data"),
        ("garbage", "not readable"),
        ("foreign", "not a seqlab-train-state"),
    ],
)
def test_starts_fresh_when_the_state_does_not_belong_to_this_run(tmp_path: Path, setup: str, reason: str) -> None:
    path = tmp_path / "state.pt"
    if setup == "other":
        save_tiny(path, fp="different")
    elif setup == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif setup == "foreign":
        torch.save({"format": "something-else"}, path)
    check = load_state(path, fingerprint="abc")
    assert check.saved is None
    assert reason in check.note and "starting fresh" in check.note


def test_rng_capture_and_restore_replays_the_same_draws() -> None:
    torch.manual_seed(3)
    random.seed(3)
    rng = capture_rng()
    first = (torch.rand(4), random.random(), torch.nn.functional.dropout(torch.ones(8), 0.5))
    torch.manual_seed(99)
    random.seed(99)
    restore_rng(rng)
    again = (torch.rand(4), random.random(), torch.nn.functional.dropout(torch.ones(8), 0.5))
    assert torch.equal(first[0], again[0]) and first[1] == again[1] and torch.equal(first[2], again[2])


def test_fingerprint_covers_params_data_and_blobs() -> None:
    ids = [np.array([1, 2, 3]), np.array([4])]
    base = fingerprint(params={"lr": 1, "seed": 2}, arrays=[ids], blobs=[b"tok"])
    assert base == fingerprint(params={"seed": 2, "lr": 1}, arrays=[[a.copy() for a in ids]], blobs=[b"tok"])
    assert base != fingerprint(params={"lr": 2, "seed": 2}, arrays=[ids], blobs=[b"tok"])
    assert base != fingerprint(params={"lr": 1, "seed": 2}, arrays=[[np.array([1, 2]), np.array([3, 4])]],
                               blobs=[b"tok"])
    assert base != fingerprint(params={"lr": 1, "seed": 2}, arrays=[ids], blobs=[b"tok2"])


def test_trim_live_log_drops_rows_after_the_saved_step(tmp_path: Path) -> None:
    metrics = tmp_path / "plots" / "metrics"
    (metrics / "valid").mkdir(parents=True)
    (metrics / "lr.tsv").write_text("step\tlr\n10\t0.1\n20\t0.2\n30\t0.3\n")
    (metrics / "valid" / "loss.tsv").write_text("step\tloss\n10\t1.5\n20\t1.2\n3")  # a half-written last row
    (metrics / "valid" / "bleu.tsv").write_text("")  # created, never written
    trim_live_log(tmp_path, last_step=20)
    assert (metrics / "lr.tsv").read_text() == "step\tlr\n10\t0.1\n20\t0.2\n"
    assert (metrics / "valid" / "loss.tsv").read_text() == "step\tloss\n10\t1.5\n20\t1.2\n"
    assert not (metrics / "valid" / "bleu.tsv").exists()
    trim_live_log(tmp_path / "absent", last_step=0)  # no history yet: nothing to do


def test_a_finished_run_is_found_so_that_a_rerun_only_writes_its_outputs(tmp_path: Path) -> None:
    """Issue 17.5: a run whose outputs DVC failed to cache is not trained again."""
    path = tmp_path / "state.pt"
    save_tiny(path, progress=Progress(step=3, best_step=2, best_metric=9.0, finished=True))
    check = load_state(path, fingerprint="abc")
    assert check.finished and check.saved.progress.best_step == 2
    assert "writing its outputs without training" in check.note
    assert not load_state(path, fingerprint="other").finished


def test_run_fingerprint_ignores_runtime_keys_through_its_settings() -> None:
    """Issue 17.14: the stage fingerprints TrainConfig.results_keys(), which leaves out device, threads, save_every."""
    ids = [np.array([1, 2]), np.array([3])]

    def of(config: TrainConfig) -> str:
        return run_fingerprint({"train": config.results_keys()}, train=[ids, ids], valid=[ids, ids],
                               valid_text=["a", "b"], tokenizers=[b"s", b"t"])

    base = of(TrainConfig())
    assert of(TrainConfig(threads=4, device="cuda", save_every=7)) == base
    assert of(TrainConfig(lr=0.001)) != base
