"""Two queued experiments with `dvc queue start -j 1` and `-j 2`: does a second job help on this machine?

Each round clones this repository's HEAD next to it, queues the same two experiments
(train.lr=0.002,0.003 on a small number corpus, so each trains for a while), starts the queue
with the given jobs and thread budget, and times it until both succeed. A job's torch takes
one thread per core unless OMP_NUM_THREADS says otherwise, so the rounds are -j 1 with every
core, -j 2 with every core (two trainings on each core), and -j 2 with the cores split.
Writes bench/results/queue.{json,md}.

    python bench/queue_jobs.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from report import write_results

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("-S", "train.lr=0.002,0.003", "-S", "prepare.numbers.train_size=3000", "-S", "train.epochs=1",
               "-S", "preprocess.threads=1", "-S", "evaluate.bootstrap_resamples=0")


def dvc(clone: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=clone, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def queue_seconds(jobs: int, threads: int | None, *, timeout: float) -> float:
    """Wall time of `dvc queue start -j jobs` over the two queued experiments in a fresh clone."""
    clone = Path(tempfile.mkdtemp(prefix="seqlab-queue-", dir=ROOT.parent))
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(clone / "src"),
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
        env.pop("OMP_NUM_THREADS", None)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        dvc(clone, env, "exp", "run", "--queue", *EXPERIMENTS)
        start = time.perf_counter()
        dvc(clone, env, "queue", "start", "-j", str(jobs))
        while time.perf_counter() - start < timeout:
            status = dvc(clone, env, "queue", "status")
            if "Failed" in status:
                raise SystemExit(status)
            if status.count("Success") == 2:
                return time.perf_counter() - start
            time.sleep(1)
        raise SystemExit(f"the queue did not finish in {timeout:.0f} s:\n{status}")
    finally:
        shutil.rmtree(clone, ignore_errors=True)


@click.command()
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds to wait for one round.")
def main(timeout: float) -> None:
    cores = len(os.sched_getaffinity(0))
    rounds = {"j1_all_cores": (1, None), "j2_all_cores": (2, None), "j2_split_cores": (2, max(1, cores // 2))}
    result: dict[str, object] = {"cores": cores, "experiments": " ".join(EXPERIMENTS)}
    for label, (jobs, threads) in rounds.items():
        result[f"{label}_seconds"] = round(queue_seconds(jobs, threads, timeout=timeout), 1)
        print(label, result[f"{label}_seconds"], flush=True)
    write_results("queue", "Two queued experiments, `dvc queue start -j 1` against `-j 2` (`python bench/queue_jobs.py`)",
                  result, options=click.get_current_context().params)


if __name__ == "__main__":
    main()
