"""Benchmark a whole pipeline run as a new user meets it.

Clones this repository's HEAD next to it (so `../shared/data` resolves as it
does for the project), composes params.yaml from conf/ with `-S` Hydra overrides
as `dvc exp run -S` does (a preset's corpus is imported from ../shared/data by
`dvc update`), runs `dvc repro`, then `dvc repro` again (the no-op), and reads
the scores, the training record and the model size. Writes
bench/results/<name>.json and .md.

    python bench/pipeline.py                                    # default data; translates "twenty-one"
    python bench/pipeline.py -S corpus=multi30k --name multi30k   # the reference RNN on Multi30k de->en
    python bench/pipeline.py -S corpus=gigaword --name gigaword   # copy attention on headlines
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml
from report import write_results

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout


def compose_params(clone: Path, overrides: tuple[str, ...]) -> dict:
    """params.yaml as `dvc exp run -S ...` composes it: conf/config.yaml with Hydra overrides applied."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(clone / "conf"), version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)), resolve=True)


def _accelerator() -> str:
    import torch  # only here: the bench itself runs dvc, not torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"


@click.command()
@click.option("-S", "--set", "overrides", multiple=True,
              help="A Hydra override of conf/: a preset group (corpus=multi30k, model=rnn_base) or section.key=value.")
@click.option("--name", default="pipeline", show_default=True, help="Label of the results files.")
@click.option("--keep-model", type=click.Path(dir_okay=False), default=None,
              help="Copy the trained models/model.pt here (e.g. for bench/decode.py) before the clone is removed.")
def main(overrides: tuple[str, ...], name: str, keep_model: str | None) -> None:
    clone = Path(tempfile.mkdtemp(prefix="seqlab-bench-", dir=ROOT.parent))
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        # The code that ran is the clone's; the provenance row is the checkout's when the run ends.
        ran = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, check=True, capture_output=True, text=True).stdout
        params = compose_params(clone, overrides)
        if overrides:  # the committed params.yaml is the composed default
            (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # The clone's src first; whatever PYTHONPATH already holds (dvc installed with --target) stays after it.
        pythonpath = os.pathsep.join(filter(None, [str(clone / "src"), os.environ.get("PYTHONPATH", "")]))
        env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=pythonpath,
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
        if Path(params["paths"]["raw"]).parent == Path("data/corpora"):  # a preset's corpus: import it once
            run([sys.executable, "-m", "dvc", "update", params["paths"]["raw"] + ".dvc"], clone, env)
        full, _ = run([sys.executable, "-m", "dvc", "repro"], clone, env)
        noop, _ = run([sys.executable, "-m", "dvc", "repro"], clone, env)
        _, info = run([sys.executable, "-m", "seqlab", "info", "models/model.pt"], clone, env)
        _, twenty_one = run([sys.executable, "-m", "seqlab", "translate", "--model", "models/model.pt"], clone, env, stdin="twenty-one\n")
        metrics = json.loads((clone / "reports/metrics.json").read_text())
        train = json.loads((clone / "reports/train/metrics.json").read_text())
        timings = json.loads((clone / "reports/timings/train.json").read_text())  # outside dvc.lock's hashes
        if keep_model:
            shutil.copy(clone / "models/model.pt", keep_model)
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    parameters = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("parameters:"))
    best = {k: round(v, 2) for k, v in train.items() if k.startswith("best_") and k != "best_step"}
    result = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "cpu": _cpu_model(),
        "accelerator": _accelerator(),
        "code_ran": ran.strip(),
        "overrides": " ".join(overrides) or "none",
        "parameters": parameters,
        "repro_seconds": round(full, 1),
        "noop_repro_seconds": round(noop, 2),
        "train_seconds": timings["wall_seconds"],
        "train_tokens_per_sec": timings["tokens_per_sec"],
        "train_steps": train["step"],
        **{f"valid_{k}": v for k, v in best.items()},
        **{f"test_{k}": metrics[k] for k in ("bleu", "chrf", "ter", "rouge1", "rouge2", "rougeL", "unk_glyph_outputs",
                                             "invented_word_pct", "repeat_pct") if k in metrics},
        "peak_rss_mb_largest_stage": round(peak_mb),
    }
    if not overrides:
        result["twenty_one"] = twenty_one.strip()
    write_results(name, f"Pipeline run, {name} (`python bench/pipeline.py`)", result,
                  options=click.get_current_context().params)


def _cpu_model() -> str:
    """The CPU's name (Linux), since the same 2 cores run at very different speeds on different hosts."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


if __name__ == "__main__":
    main()
