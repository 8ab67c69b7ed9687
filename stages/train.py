"""train: fit the model, keep the best validation checkpoint, continue a killed run exactly."""

import json
import signal
import sys
from pathlib import Path

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import write_text
from seqlab.core.text import read_parallel
from seqlab.model.runtime import limit_kernel_cache, seed_everything, set_threads
from seqlab.preprocess.shards import read_encoded
from seqlab.tokenizer import load_tokenizer
from seqlab.train.batches import EncodedSplit, sampled_splits
from seqlab.train.distributed import device_for, from_env, start, stop
from seqlab.train.job import TrainInputs, run_job
from seqlab.train.launch import as_rank, check_world, relaunched

TIMINGS = Path("reports/timings")


def main() -> None:
    # SIGTERM ends the run like Ctrl-C, so no temporary file is left behind; the saved state stays.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    limit_kernel_cache()
    config = load_config()
    if relaunched(config.train, sys.argv):  # several processes: this one ran them under torchrun
        return
    world = from_env()
    check_world(config.train, world.size)
    claim = device_for(config.train.device, world)  # held until the process ends
    device = claim.device
    seed_everything(config.seed)
    set_threads(config.train.threads)
    paths = config.paths
    inputs = TrainInputs(train=EncodedSplit(*read_encoded(paths.encoded, "train")),
                         valid=EncodedSplit(*read_encoded(paths.encoded, "valid")),
                         valid_text=read_parallel(f"{paths.corpus}/valid.src", f"{paths.corpus}/valid.tgt"),
                         tokenizer=load_tokenizer(paths.tokenizer), samples=sampled_splits(paths.encoded))
    start(world, device)
    try:
        job = run_job(inputs, config, device=device, world=world)
    finally:
        stop()
    if not world.leader:
        return
    if job.result is not None:
        # Timings go to a git-ignored file that no stage declares, so that they never change dvc.lock.
        result = job.result
        timings = {"wall_seconds": round(result.wall_seconds, 1), "tokens_per_sec": round(result.tokens_per_sec),
                   "steps": result.steps, "resumed_from": result.resumed_from}
        write_text(TIMINGS / ".gitignore", "*\n")
        write_text(TIMINGS / "train.json", json.dumps(timings, indent=2) + "\n")
    print(f"train: {job.summary} -> {paths.model}")


if __name__ == "__main__":
    run_stage(as_rank(main))
