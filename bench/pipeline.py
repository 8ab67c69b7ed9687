"""Benchmark the default pipeline as a new user meets it.

Clones this repository's HEAD into a temporary folder, runs `dvc repro` on the
default data, then `dvc repro` again (the no-op), and translates "twenty-one".
Writes bench/results/pipeline.json and bench/results/pipeline.md.

    python bench/pipeline.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_results

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "seqlab"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(clone / "src"),
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
        full, log = run([sys.executable, "-m", "dvc", "repro"], clone, env)
        noop, _ = run([sys.executable, "-m", "dvc", "repro"], clone, env)
        _, twenty_one = run(["seqlab", "translate", "--model", "models/model.pt"], clone, env, stdin="twenty-one\n")
        metrics = json.loads((clone / "reports/metrics.json").read_text())
        train = json.loads((clone / "reports/train/metrics.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "repro_seconds": round(full, 1),
        "noop_repro_seconds": round(noop, 2),
        "bleu": metrics["bleu"],
        "chrf": metrics["chrf"],
        "rougeL": metrics["rougeL"],
        "train_tokens_per_sec_last_epoch": round(train["tokens_per_sec"]),
        "peak_rss_mb_largest_stage": round(peak_mb),
        "twenty_one": twenty_one.strip(),
    }
    write_results("pipeline", "Default pipeline (`python bench/pipeline.py`)", result)
    print(log[-600:], file=sys.stderr)


if __name__ == "__main__":
    main()
