"""Presets by Hydra composition (conf/): `dvc exp run -S corpus=multi30k -S model=rnn_base`.

The committed params.yaml is the composed default; each preset composes to the values
its complete params file had (tests/assets/presets/, kept from configs/*.yaml), with its
corpus read from the DVC-imported data/corpora/<name> instead of ../shared/data/<name>.
End to end: a 2x2 grid through `dvc queue`, and a Multi30k-shaped preset run in the
queue's temporary workspace, then in a clone that has no ../shared at all.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dvc_repo import TINY, Repo, make_repo, merge
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqlab.core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"multi30k": "rnn_base", "gigaword": "rnn_medium"}  # corpus: the model it brings
OLD_FILES = {"multi30k": ("corpus=multi30k",), "gigaword": ("corpus=gigaword",),
             "multi30k-transformer": ("+experiment=multi30k_transformer",)}
SHARED = ROOT.parent / "shared" / "data"


def composed(conf: Path, *overrides: str) -> dict:
    with initialize_config_dir(str(conf), version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)))


def test_hydra_is_enabled_for_dvc() -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "config", "hydra.enabled"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "true"


def test_the_composed_default_is_params_yaml() -> None:
    assert composed(ROOT / "conf") == yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("name", OLD_FILES)
def test_a_preset_composes_to_the_values_of_its_old_params_file(name: str, tmp_path: Path) -> None:
    params = composed(ROOT / "conf", *OLD_FILES[name])
    old = (ROOT / "tests/assets/presets" / f"{name}.yaml").read_text()
    assert params == yaml.safe_load(old.replace("../shared/data/", "data/corpora/"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    load_config(tmp_path / "params.yaml")


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml")))
def test_an_experiment_preset_is_a_valid_config_of_its_corpus_and_arch(experiment: str, tmp_path: Path) -> None:
    params = composed(ROOT / "conf", f"+experiment={experiment}")
    corpus, arch = experiment.rsplit("_", 1)
    assert params["paths"]["raw"] == f"data/corpora/{corpus}" and params["model"]["arch"] == arch
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    load_config(tmp_path / "params.yaml")


@pytest.mark.parametrize("corpus", PRESETS)
def test_a_corpus_picks_its_model_unless_told_otherwise(corpus: str) -> None:
    sizes = ("embed_dim", "hidden_dim", "attention_dim", "dropout")
    preset = composed(ROOT / "conf", f"corpus={corpus}")["model"]
    model = composed(ROOT / "conf", f"model={PRESETS[corpus]}")["model"]
    assert [preset[key] for key in sizes] == [model[key] for key in sizes]
    small = composed(ROOT / "conf", f"corpus={corpus}", "model=rnn_small")
    assert small["model"]["hidden_dim"] == 256 and small["model"]["embed_dim"] == 128
    assert small["paths"]["raw"] == f"data/corpora/{corpus}"


@pytest.mark.parametrize("corpus", PRESETS)
def test_a_presets_corpus_comes_in_through_dvc(corpus: str) -> None:
    # prepare depends on paths.raw, so DVC reruns it when a corpus file changes; the folder is a
    # frozen import, so a clone without ../shared checks it out instead of re-importing it.
    config = composed(ROOT / "conf", f"corpus={corpus}")
    assert config["paths"]["raw"] == f"data/corpora/{corpus}"
    files = [name for name in config["prepare"]["files"].values() if name]
    assert files and all(Path(name).parent == Path(config["paths"]["raw"]) for name in files)
    stage = yaml.safe_load((ROOT / "data/corpora" / f"{corpus}.dvc").read_text())
    assert stage["frozen"] and stage["outs"][0]["path"] == corpus
    assert stage["deps"][0]["path"] == f"../../../shared/data/{corpus}"


def hydra_repo(tmp: Path) -> Repo:
    """A project copy whose conf/config.yaml holds the tiny values, with Hydra enabled."""
    repo = make_repo(tmp)
    shutil.copytree(ROOT / "conf", repo.path / "conf")
    base = yaml.safe_load((ROOT / "conf/config.yaml").read_text())
    (repo.path / "conf/config.yaml").write_text(yaml.safe_dump(merge(base, TINY), sort_keys=False))
    tiny = "".join(f"{key}: {value}\n" for key, value in TINY["model"].items())
    (repo.path / "conf/model/tiny.yaml").write_text(tiny)
    (repo.path / "conf/model/tiny_gru.yaml").write_text(tiny + "rnn_type: gru\n")
    repo.dvc("config", "hydra.enabled", "true")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "hydra")
    return repo


def run_queue(repo: Repo, *, jobs: int = 1, threads: int | None = None, timeout: float = 900) -> None:
    """`dvc queue start -j jobs` (under OMP_NUM_THREADS=threads), then wait until none is queued or running."""
    env = repo.env if threads is None else {**repo.env, "OMP_NUM_THREADS": str(threads)}
    Repo(repo.path, env).dvc("queue", "start", "-j", str(jobs))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = repo.dvc("queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            failed = [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]
            assert not failed, status + "".join(repo.dvc("queue", "logs", name, check=False).stdout for name in failed)
            return
        time.sleep(3)
    raise AssertionError("the queue did not finish:\n" + status)


def shown(repo: Repo) -> list[dict]:
    """One row per experiment of `dvc exp show --json` (the baseline's experiments)."""
    rows = json.loads(repo.dvc("exp", "show", "--json").stdout)
    return [exp["revs"][0]["data"] for row in rows for exp in (row.get("experiments") or [])]


@pytest.mark.slow  # four queued trainings: about 90 s, the longest test; CI's default run stays well inside its budget
def test_a_2x2_grid_sweep_runs_through_the_queue(tmp_path: Path) -> None:
    repo = hydra_repo(tmp_path)
    repo.dvc("exp", "run", "--queue", "-S", "train.lr=0.002,0.004", "-S", "model=tiny_gru,tiny",
             "-S", "train.epochs=1")
    assert repo.dvc("queue", "status").stdout.count("Queued") == 4
    run_queue(repo)
    rows = shown(repo)
    assert len(rows) == 4
    grid = {(row["params"]["params.yaml"]["data"]["train"]["lr"],
             row["params"]["params.yaml"]["data"]["model"]["rnn_type"]) for row in rows}
    assert grid == {(0.002, "gru"), (0.004, "gru"), (0.002, "lstm"), (0.004, "lstm")}
    results = {json.dumps(row["metrics"]["reports/metrics.json"]["data"], sort_keys=True) for row in rows}
    assert len(results) == 4


WORDS = {"ein": "a", "mann": "man", "hund": "dog", "rot": "red", "läuft": "runs", "auf": "on", "der": "the",
         "straße": "street", "frau": "woman", "sitzt": "sits", "kind": "child", "spielt": "plays", "im": "in the",
         "park": "park", "blau": "blue", "ball": "ball"}


def write_multi30k_shaped(folder: Path) -> None:
    """Tiny German -> English pairs under Multi30k's file names (gzipped, line-aligned)."""
    folder.mkdir(parents=True)
    rng = random.Random(7)
    for split, count in (("train", 300), ("val", 30), ("test_2016_flickr", 30)):
        pairs = [rng.choices(list(WORDS), k=rng.randint(2, 7)) for _ in range(count)]
        for lang, lines in (("de", [" ".join(p) for p in pairs]), ("en", [" ".join(WORDS[w] for w in p) for p in pairs])):
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")


PRESET_TINY = ("-S", "corpus=multi30k", "-S", "model=tiny", "-S", "tokenizer.vocab_size=40", "-S", "train.epochs=1",
               "-S", "train.batch_tokens=600", "-S", "train.warmup_steps=0", "-S", "train.average_last=0",
               "-S", "evaluate.bootstrap_resamples=50")


def test_a_queued_preset_run_and_a_clone_without_shared(tmp_path: Path) -> None:
    write_multi30k_shaped(tmp_path / "shared/data/multi30k")
    repo = hydra_repo(tmp_path)  # tmp_path/repo, so ../shared is tmp_path/shared as in the project
    (repo.path / "data/corpora").mkdir(parents=True)
    repo.dvc("import-url", "../../../shared/data/multi30k", "data/corpora/multi30k")
    repo.dvc("freeze", "data/corpora/multi30k.dvc")
    repo.dvc("remote", "add", "-d", "team", str(tmp_path / "remote"))
    # What the README tells -j N users to set reaches the queued stages' torch (whose default is a thread per core).
    repo.env.pop("OMP_NUM_THREADS", None)
    repo.dvc("stage", "add", "-n", "threads", "-o", "reports/threads.txt",
             "python -c 'import torch; print(torch.get_num_threads())' > reports/threads.txt")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "multi30k corpus")
    repo.dvc("exp", "run", "--queue", *PRESET_TINY)
    run_queue(repo, threads=1)  # in .dvc/tmp/exps/..., where ../shared does not exist
    [row] = shown(repo)
    assert row["params"]["params.yaml"]["data"]["paths"]["raw"] == "data/corpora/multi30k"
    assert row["metrics"]["reports/metrics.json"]["data"]["bleu"] > 0
    name = repo.dvc("exp", "ls", "--name-only").stdout.split()[-1]
    repo.dvc("exp", "apply", name)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "the preset's run")
    assert (repo.path / "reports/threads.txt").read_text().strip() == "1"
    repo.dvc("push")

    clone = Repo(tmp_path / "teammate" / "repo", repo.env)  # no teammate/shared beside it
    repo.run("git", "clone", "-q", str(repo.path), str(clone.path))
    clone.dvc("pull")
    clone.dvc("repro")
    assert clone.dvc("status").stdout.strip().endswith("Data and pipelines are up to date.")
    assert (clone.path / "data/corpora/multi30k/train.de.gz").is_file()
    assert (clone.path / "data/corpus/train.src").is_file()
    expected = json.loads((repo.path / "reports/metrics.json").read_text())
    assert json.loads((clone.path / "reports/metrics.json").read_text())["bleu"] == expected["bleu"]
