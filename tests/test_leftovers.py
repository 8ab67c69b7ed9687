"""A data stage killed with SIGKILL mid-write leaves its temporary output behind; its next run removes it.

``prepare`` and ``preprocess`` write through ``core.files.atomic_path``: a
temporary sibling (``data/.corpus.*.tmp``) renamed into place at the end. A
SIGKILL (``kill -9``, the OOM killer) skips every cleanup, so that sibling
stays; on a large corpus it is gigabytes. Each stage removes the leftovers of
its own outputs when it starts, as ``train`` does. The kill here is real: the
stage runs in its own process with one write wrapped so that the process
SIGKILLs itself right after it, half-way through the output.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {
    "prepare": {"numbers": {"train_size": 200, "valid_size": 20, "test_size": 20, "max_value": 1000}},
    "tokenizer": {"vocab_size": 60},
    "preprocess": {"shard_size": 50},  # train is 4 shards: the kill comes after the first
}

# argv: the stage script, then the object holding the write to wrap ("stage": the script's module) and its name.
KILL_AFTER_ONE_WRITE = """
import importlib.util, os, signal, sys
from seqlab.core.errors import run_stage

spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
stage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stage)
owner = stage if sys.argv[2] == "stage" else getattr(stage, sys.argv[2])
write = getattr(owner, sys.argv[3])

def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(owner, sys.argv[3], write_then_die)
run_stage(stage.main)
"""


def run(cwd: Path, stage: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def kill_mid_write(cwd: Path, stage: str, owner: str, write: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_ONE_WRITE, str(ROOT / "stages" / f"{stage}.py"), owner,
                           write], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def workdir(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def test_prepare_removes_the_corpus_a_killed_run_left_half_written(tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    kill_mid_write(cwd, "prepare", "CorpusWriter", "write")
    (leftover,) = (cwd / "data").glob(".corpus.*.tmp")
    assert (leftover / "corpus" / "train.src").is_file()  # killed after writing train (still buffered), before valid
    assert not (cwd / "data/corpus").exists()
    run(cwd, "prepare")
    assert list((cwd / "data").glob(".corpus.*.tmp")) == []
    assert len((cwd / "data/corpus/train.src").read_text().splitlines()) == 200


def test_preprocess_removes_the_shards_a_killed_run_left_half_written(tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    run(cwd, "prepare")
    run(cwd, "tokenizer")
    kill_mid_write(cwd, "preprocess", "stage", "write_shard")
    (leftover,) = (cwd / "data").glob(".encoded.*.tmp")
    assert [p.name for p in (leftover / "encoded").iterdir()] == ["train-00000.parquet"]
    run(cwd, "preprocess")
    assert list((cwd / "data").glob(".encoded.*.tmp")) == []
    assert len(list((cwd / "data/encoded").glob("train-*.parquet"))) == 4
