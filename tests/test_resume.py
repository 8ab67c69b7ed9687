"""End-to-end exact resume: a `dvc repro` killed with SIGKILL and run again ends with the weights,
best checkpoint and curves of a run that was never interrupted (CPU, one thread).

The state lives in the run's machine-local scratch (paths.train_scratch, inside the
temporary repository's .dvc/tmp), not among the stage's outputs."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from dvc_repo import TINY, Repo, make_repo, merge

# About 30 steps per epoch, a state save every 3 steps, dropout on (so the RNG state matters).
RESUME = merge(TINY, {
    "model": {"dropout": 0.1},
    "train": {"epochs": 3, "batch_tokens": 150, "save_every": 3, "valid_every": 10, "threads": 1},
})


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("resume"), overrides=RESUME)
    repo.dvc("repro", "preprocess")
    return repo


def scratch(repo: Repo) -> Path:
    return repo.path / ".dvc/tmp/train"


def state_file(repo: Repo) -> Path | None:
    """The one run's state in scratch, once it exists."""
    found = list(scratch(repo).glob("*/state.pt"))
    assert len(found) <= 1, found
    return found[0] if found else None


def outcome(repo: Repo) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, list[list[str]]]]:
    """Final weights (from the state), best weights (models/model.pt), and every dvclive curve."""
    state = torch.load(state_file(repo), weights_only=True)
    assert state["progress"]["finished"]
    best = torch.load(repo.path / "models/model.pt", weights_only=True)["state_dict"]
    curves = {}
    for path in sorted((repo.path / "reports/train/plots/metrics").rglob("*.tsv")):
        with path.open() as handle:
            curves[str(path.relative_to(repo.path))] = list(csv.reader(handle, delimiter="\t"))
    return state["model"], best, curves


def kill_after_first_save(repo: Repo, *, only_train: bool = False) -> int:
    """Start `dvc repro -f train` (``only_train``: with -s, the stages before it not rerun), SIGKILL dvc and
    the stage together once a state is saved; the saved step."""
    single = ["-s"] if only_train else []
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f", *single, "train"], cwd=repo.path, env=repo.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while state_file(repo) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    state = state_file(repo)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    progress = torch.load(state, weights_only=True)["progress"]
    assert not progress["finished"], "the run ended before it could be killed"
    return progress["step"]


def test_killed_repro_resumes_to_the_weights_of_an_uninterrupted_run(repo: Repo) -> None:
    out = repo.dvc("repro", "train").stdout
    assert "starting fresh" in out
    straight = outcome(repo)

    shutil.rmtree(scratch(repo))  # so that the next run starts fresh
    saved_step = kill_after_first_save(repo)
    assert saved_step > 0
    assert not (repo.path / "models/model.pt").exists()  # dvc removed the outputs before the run

    # -f: dvc.lock still records the straight run above, whose outputs DVC would check out
    # instead; a killed run of new parameters has no such record, so plain `dvc repro` resumes it.
    out = repo.dvc("repro", "-f", "train").stdout
    assert f"resuming from step {saved_step} " in out
    weights, best, curves = outcome(repo)
    assert weights.keys() == straight[0].keys()
    assert all(torch.equal(weights[k], straight[0][k]) for k in weights)
    assert all(torch.equal(best[k], straight[1][k]) for k in best)
    assert curves == straight[2]  # same steps and values, none twice
    steps = [row[0] for row in curves["reports/train/plots/metrics/valid/loss.tsv"][1:]]
    assert steps == sorted(set(steps), key=int)
    assert not list((repo.path / "models").glob(".*.tmp"))  # a save cut short leaves nothing behind
    assert not list(state_file(repo).parent.glob(".*.tmp"))
    assert "up to date" in repo.dvc("status", "train").stdout


def test_sigterm_stops_the_stage_cleanly_with_a_resumable_state(repo: Repo) -> None:
    # SIGTERM is turned into Ctrl-C's KeyboardInterrupt, so this covers SIGINT too.
    shutil.rmtree(scratch(repo), ignore_errors=True)
    proc = subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo.path, env=repo.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while state_file(repo) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    state = state_file(repo)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err
    assert not list((repo.path / "models").glob(".*.tmp"))
    assert not torch.load(state, weights_only=True)["progress"]["finished"]
