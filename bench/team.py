"""What a teammate saves: push, pull and restore times of an experiment against running it.

Starts an S3 API server on localhost (moto's server mode; dvc-s3 talks to it as to S3),
clones this repository's HEAD next to it (clone A), composes params.yaml from conf/ with
the `-S` Hydra overrides and commits it, times `dvc repro` and `dvc push --run-cache`;
then clones A (clone B, a teammate) and times the `dvc repro --pull` that fetches the
run-cache and restores every stage's outputs from it instead of running the stage. Writes bench/results/<name>.{json,md}.

    python bench/team.py -S prepare.numbers.train_size=3000 -S train.epochs=1 --name team-small
    python bench/team.py -S corpus=multi30k --name team-multi30k   # about 50 min of training on 2 cores
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import logging

import boto3
import click
import yaml
from moto.server import ThreadedMotoServer
from pipeline import compose_params, run
from report import write_results

ROOT = Path(__file__).resolve().parents[1]
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
CREDENTIALS = {"access_key_id": "bench", "secret_access_key": "bench"}


def clone_with_remote(source: Path, target: Path, env: dict[str, str]) -> None:
    """A teammate's clone with their own credentials for the committed remote."""
    run(["git", "clone", "-q", str(source), str(target)], ROOT, env)  # into the empty folder
    for key, value in CREDENTIALS.items():
        run([sys.executable, "-m", "dvc", "remote", "modify", "--local", "team", key, value], target, env)


def timed_dvc(clone: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    return run([sys.executable, "-m", "dvc", *args], clone, env)


@click.command()
@click.option("-S", "--set", "overrides", multiple=True, help="A Hydra override of conf/ (corpus=multi30k, train.epochs=1).")
@click.option("--name", default="team", show_default=True, help="Label of the results files.")
def main(overrides: tuple[str, ...], name: str) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket="team")
    # Both beside this repository, so that a preset's ../shared/data resolves as it does here.
    a = Path(tempfile.mkdtemp(prefix="seqlab-team-a-", dir=ROOT.parent))
    b = Path(tempfile.mkdtemp(prefix="seqlab-team-b-", dir=ROOT.parent))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@seqlab.invalid", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@seqlab.invalid")
    try:
        run(["git", "clone", "-q", str(ROOT), str(a)], ROOT, env)
        env_a, env_b = dict(env, PYTHONPATH=str(a / "src")), dict(env, PYTHONPATH=str(b / "src"))
        params = compose_params(a, overrides)
        (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        timed_dvc(a, env_a, "remote", "add", "-d", "team", "s3://team/seqlab")
        timed_dvc(a, env_a, "remote", "modify", "team", "endpointurl", endpoint)
        run(["git", "commit", "-qam", "the experiment"], a, env_a)
        for key, value in CREDENTIALS.items():
            timed_dvc(a, env_a, "remote", "modify", "--local", "team", key, value)
        if Path(params["paths"]["raw"]).parent == Path("data/corpora"):
            timed_dvc(a, env_a, "update", params["paths"]["raw"] + ".dvc")
        repro, _ = timed_dvc(a, env_a, "repro")
        push, _ = timed_dvc(a, env_a, "push", "--run-cache")
        clone_with_remote(a, b, env_b)
        restore, out = timed_dvc(b, env_b, "repro", "--pull")  # pulls the run-cache, then each stage's outputs
        stored = sum(f.stat().st_size for f in (a / ".dvc/cache").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)
        server.stop()
    result = {
        "overrides": " ".join(overrides) or "none",
        "repro_seconds": round(repro, 1),
        "push_run_cache_seconds": round(push, 1),
        "pull_and_restore_seconds": round(restore, 1),
        "stages_restored": len(re.findall(r"is cached - skipping run", out)),
        "stages_run_by_b": len(re.findall(r"Running stage", out)),
        "cache_mb": round(stored / 1e6, 1),
    }
    write_results(name, f"A teammate restores an experiment from an S3 remote, {name} (`python bench/team.py`)", result,
                  options=click.get_current_context().params)


if __name__ == "__main__":
    main()
