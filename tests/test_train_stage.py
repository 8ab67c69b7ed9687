"""The train stage's outputs under real dvc: runtime keys, a finished run's scratch, unwritable and full disks.

Issue 17 items 5, 9 and 14, in a temporary git + DVC repository (tests/dvc_repo.py).
"""

from __future__ import annotations

import shutil

import pytest
from dvc_repo import Repo, make_repo, merge


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("trainstage"))
    repo.dvc("repro", "train")
    return repo


def one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_runtime_keys_neither_rerun_nor_restart_and_a_finished_run_only_writes_its_outputs(repo: Repo) -> None:
    model = (repo.path / "models/model.pt").read_bytes()
    summary = (repo.path / "reports/train/metrics.json").read_text()
    params = repo.params()
    repo.write_params(merge(params, {"train": {"threads": 2, "save_every": 7, "device": "cpu"}}))
    try:
        assert "up to date" in repo.dvc("status", "train").stdout  # item 14: not a rerun for DVC ...
        # ... nor a new run for the stage: the outputs lost after a finished run (DVC could not cache
        # them, say) are written again from its scratch without training (item 5).
        shutil.rmtree(repo.path / "models")
        shutil.rmtree(repo.path / "reports/train")
        out = repo.run("python", "stages/train.py").stdout
    finally:
        repo.write_params(params)
    assert "finished run of these parameters and data; writing its outputs without training" in out
    assert "model:" not in out  # no model was built
    assert (repo.path / "models/model.pt").read_bytes() == model
    assert (repo.path / "reports/train/metrics.json").read_text() == summary


def test_an_unwritable_output_fails_before_training(repo: Repo) -> None:
    params = repo.params()
    (repo.path / "blocked").write_text("a file where a folder should be\n")
    repo.write_params(merge(params, {"paths": {"model": "blocked/model.pt"}}))
    try:
        proc = repo.run("python", "stages/train.py", check=False)
    finally:
        repo.write_params(params)
        (repo.path / "blocked").unlink()
    assert proc.returncode == 1
    assert one_error_line(proc.stderr).startswith("error: train: cannot write blocked/model.pt")
    assert "model:" not in proc.stdout and "resuming" not in proc.stdout


def test_a_full_disk_during_the_save_says_no_space_left(repo: Repo) -> None:
    """A 16 KiB tmpfs over the scratch folder (a private mount namespace) fills at the first checkpoint."""
    scratch = repo.path / ".dvc/tmp/train"
    shutil.rmtree(scratch)
    scratch.mkdir()
    proc = repo.run("unshare", "-m", "sh", "-c",
                    "mount -t tmpfs -o size=16k tmpfs .dvc/tmp/train && exec python stages/train.py", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "no space left on device" in one_error_line(proc.stderr)
