"""A hermetic copy of the project in a temporary git + DVC repository, for end-to-end tests.

The copy has its own git identity, DVC config dirs and site cache, analytics
off, and imports seqlab from its own ``src`` so DVC hashes what actually runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# A configuration small enough for a full pipeline in seconds on 2 CPU cores.
TINY = {
    "prepare": {"numbers": {"train_size": 400, "valid_size": 40, "test_size": 40, "max_value": 1000}},
    "tokenizer": {"vocab_size": 60},
    "model": {"embed_dim": 16, "hidden_dim": 16, "attention_dim": 16, "dropout": 0.0},
    "train": {"epochs": 2, "batch_tokens": 600, "threads": 1},
    "decode": {"beam_size": 3, "batch_size": 16},
    "evaluate": {"bootstrap_resamples": 50, "attention_heatmaps": 2},
}


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def hermetic_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
            "HOME": str(home),
            "DVC_NO_ANALYTICS": "1",
            "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
            "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
            "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
            "GIT_AUTHOR_NAME": "seqlab tests",
            "GIT_AUTHOR_EMAIL": "tests@seqlab.invalid",
            "GIT_COMMITTER_NAME": "seqlab tests",
            "GIT_COMMITTER_EMAIL": "tests@seqlab.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYTHONPATH": "src",
        }
    )
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


class Repo:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def run(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            args, cwd=cwd or self.path, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("git", *args, check=check)

    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(tmp: Path, *, overrides: dict = TINY) -> Repo:
    """Copy the pipeline into ``tmp/repo``, apply ``overrides`` to params, git + dvc init, commit."""
    path = tmp / "repo"
    path.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, path / name)
    for folder in ("stages", "src/seqlab", "data/raw"):
        shutil.copytree(ROOT / folder, path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp / "home"
    home.mkdir()
    repo = Repo(path, hermetic_env(home))
    repo.write_params(merge(repo.params(), overrides))
    repo.git("init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    repo.dvc("config", "core.analytics", "false")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "pipeline")
    return repo
