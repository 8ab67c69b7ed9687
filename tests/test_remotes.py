"""The teammate path over real remotes: nobody retrains what a teammate already ran.

Clone A runs an experiment that trains and pushes it (``dvc exp push``, ``dvc push
--run-cache``) to an S3 API server and to an SFTP server on localhost (tests/servers.py);
a fresh clone B runs the same ``dvc exp run --pull -S ...``: every stage is restored from
the run-cache, none runs, and B's metrics equal A's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from dvc_repo import TINY, Repo, make_repo, merge
from servers import S3Server, SFTPServer, s3_server, sftp_server  # noqa: F401 (fixtures)

EXPERIMENT = ("-S", "train.lr=0.003")
TINY_ONE_EPOCH = merge(TINY, {"train": {"epochs": 1}})


def add_remotes(repo: Repo, s3: S3Server, sftp: SFTPServer) -> None:
    """The team's remotes in the committed .dvc/config, each user's credentials in .dvc/config.local."""
    repo.dvc("remote", "add", "s3", f"s3://{s3.bucket}/seqlab")
    repo.dvc("remote", "modify", "s3", "endpointurl", s3.endpoint)
    repo.dvc("remote", "add", "sftp", f"ssh://{sftp.user}@{sftp.host}:{sftp.port}/seqlab")
    configure_credentials(repo, s3, sftp)


def configure_credentials(repo: Repo, s3: S3Server, sftp: SFTPServer) -> None:
    repo.dvc("remote", "modify", "--local", "s3", "access_key_id", s3.access_key_id)
    repo.dvc("remote", "modify", "--local", "s3", "secret_access_key", s3.secret_access_key)
    repo.dvc("remote", "modify", "--local", "sftp", "keyfile", str(sftp.keyfile))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, sftp_server: SFTPServer) -> Repo:
    """Clone A: the pipeline on a bare git remote; one experiment run and pushed to both DVC remotes."""
    tmp = tmp_path_factory.mktemp("team")
    repo = make_repo(tmp / "a", overrides=TINY_ONE_EPOCH)
    repo.run("git", "init", "-q", "--bare", "-b", "main", str(tmp / "origin.git"))
    repo.git("remote", "add", "origin", str(tmp / "origin.git"))
    add_remotes(repo, s3_server, sftp_server)
    repo.git("add", ".dvc/config")
    repo.git("commit", "-q", "-m", "the team's remotes")
    repo.git("push", "-q", "origin", "main")
    repo.dvc("exp", "run", *EXPERIMENT)
    name = repo.dvc("exp", "ls", "--name-only").stdout.split()[-1]
    for remote in ("s3", "sftp"):
        repo.dvc("exp", "push", "--remote", remote, "origin", name)
        repo.dvc("push", "--run-cache", "--remote", remote)
    return repo


def stages(repo: Repo) -> list[str]:
    return list(yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"])


@pytest.mark.parametrize("remote", ["s3", "sftp"])
def test_a_teammate_restores_every_stage_of_a_pushed_experiment(
        remote: str, pushed: Repo, tmp_path: Path, s3_server: S3Server, sftp_server: SFTPServer) -> None:
    clone = Repo(tmp_path / "b", pushed.env)
    pushed.run("git", "clone", "-q", str(pushed.path.parent.parent / "origin.git"), str(clone.path))
    configure_credentials(clone, s3_server, sftp_server)
    clone.dvc("remote", "default", "--local", remote)
    out = clone.dvc("exp", "run", "--pull", *EXPERIMENT).stdout
    ran = re.findall(r"Running stage '(\w+)'", out)
    restored = re.findall(r"Stage '(\w+)' is cached - skipping run", out)
    print(f"{remote}: restored {restored}, ran {ran}")
    assert ran == [], out
    assert restored == stages(clone), out
    metrics = json.loads((clone.path / "reports/metrics.json").read_text())
    assert metrics == json.loads((pushed.path / "reports/metrics.json").read_text())
