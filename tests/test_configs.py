"""configs/*.yaml: complete params files for real corpora, kept in step with params.yaml.

They replace params.yaml (``cp configs/multi30k.yaml params.yaml && dvc exp run``),
so they must hold every key params.yaml holds (dvc.yaml reads ``${paths.*}``
and each stage's params sections from them) and load without error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqlab.core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SHARED = ROOT.parent / "shared" / "data"


def keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        out |= keys(value, f"{prefix}{key}.")
    return out


def test_there_are_configs_for_the_shared_corpora() -> None:
    assert {path.stem for path in CONFIGS} >= {"multi30k", "gigaword"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_has_the_keys_of_params_yaml(path: Path) -> None:
    load_config(path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    config = yaml.safe_load(path.read_text())
    assert keys(config) == keys(params), "add or remove these keys: " + ", ".join(sorted(keys(config) ^ keys(params)))
    assert {**config["paths"], "raw": None} == {**params["paths"], "raw": None}  # only the corpus folder differs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_corpus_files_are_under_paths_raw(path: Path) -> None:
    # prepare depends on paths.raw, so DVC reruns it when a corpus file changes.
    config = load_config(path)
    files = [value for value in vars(config.prepare.files).values() if value]
    assert files
    for name in files:
        assert Path(name).parent == Path(config.paths.raw)
        if SHARED.is_dir():
            assert (ROOT / name).is_file(), name


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_data_stages_run_on_the_real_corpus(path: Path, tmp_path: Path) -> None:
    """prepare, tokenizer and preprocess on the real corpus, from a directory beside ../shared."""
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    shutil.copy(path, work / "params.yaml")
    for stage in ("prepare", "tokenizer", "preprocess"):
        proc = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=work,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
        print(proc.stdout)
    stats = yaml.safe_load((work / "reports/prepare.json").read_text())
    assert stats["test"]["kept"] == 1000
    assert stats["train"]["kept"] > 20000
