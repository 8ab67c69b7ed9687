"""The train stage on 2 processes under torchrun (CPU, gloo), end to end with real dvc: it completes
and is then up to date; a killed rank stops the job at once with one line naming it; a job killed
whole resumes to the weights of an uninterrupted 2-process run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from dvc_repo import TINY, Repo, make_repo, merge
from test_resume import kill_after_first_save, outcome, scratch, state_file

from seqlab.model.checkpoint import load_checkpoint

# Dropout on, so that each rank's RNG streams must resume exactly too.
DDP = merge(TINY, {
    "model": {"dropout": 0.1},
    "train": {"epochs": 2, "batch_tokens": 150, "save_every": 3, "valid_every": 10, "threads": 1,
              "nproc_per_node": 2},
})


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("ddp"), overrides=DDP)
    repo.dvc("repro", "preprocess")
    return repo


@pytest.fixture(scope="module")
def straight(repo: Repo):
    """An uninterrupted 2-process run: then dvc has nothing left to do."""
    out = repo.dvc("repro", "train").stdout
    assert "starting 2 processes under torchrun" in out
    assert "effective batch 2 processes x 1 accumulate x 150 batch_tokens = 300 tokens" in out
    assert "Stage 'train' didn't change" in repo.dvc("repro", "train").stdout
    return outcome(repo)


def rank_pids(rank: int) -> list[int]:
    """The train processes torchrun started with RANK=rank."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"stages/train.py" in cmdline and f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" in b"".join(environ):
            found.append(int(entry.name))
    return found


def test_two_processes_complete_and_a_second_repro_does_nothing(straight) -> None:
    weights, best, curves = straight
    assert weights and best and "reports/train/plots/metrics/valid/loss.tsv" in curves


def test_a_killed_rank_stops_the_job_with_one_line_naming_it(repo: Repo, straight) -> None:
    shutil.rmtree(scratch(repo))
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f", "train"], cwd=repo.path, env=repo.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while state_file(repo) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    (victim,) = rank_pids(1)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and time.monotonic() - killed < 30
    lines = [line for line in err.splitlines() if "rank" in line and "failed" in line]
    assert lines and "train: rank 1 of 2 failed: killed by SIGKILL" in lines[0], err
    assert "Traceback" not in err
    model = repo.path / "models/model.pt"
    assert not model.exists() or load_checkpoint(model).info["step"] > 0  # absent or whole, never half-written
    assert not rank_pids(0) and not rank_pids(1)  # no rank left behind


def test_a_job_killed_whole_resumes_to_the_weights_of_an_uninterrupted_run(repo: Repo, straight) -> None:
    shutil.rmtree(scratch(repo))
    saved_step = kill_after_first_save(repo)
    assert saved_step > 0
    out = repo.dvc("repro", "-f", "train").stdout
    assert f"resuming from step {saved_step} " in out, out
    weights, best, curves = outcome(repo)
    assert all(torch.equal(weights[k], straight[0][k]) for k in weights)
    assert all(torch.equal(best[k], straight[1][k]) for k in best)
    assert curves == straight[2]


def test_ctrl_c_stops_every_process(repo: Repo, straight) -> None:
    shutil.rmtree(scratch(repo))
    proc = subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo.path, env=repo.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while state_file(repo) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err
    assert not rank_pids(0) and not rank_pids(1)


def test_an_error_on_the_ranks_is_one_line_naming_the_rank(repo: Repo, straight) -> None:
    params = repo.path / "params.yaml"
    text = params.read_text()
    config = yaml.safe_load(text)
    config["train"]["init_from"] = "missing.pt"
    params.write_text(yaml.safe_dump(config))
    try:
        proc = repo.run(sys.executable, "stages/train.py", check=False)
    finally:
        params.write_text(text)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == ["error: train: rank 0 of 2 failed: train.init_from: cannot read missing.pt: "
                      "No such file or directory"], proc.stderr
