"""train: fit the model, keep the best validation checkpoint, continue a killed run exactly."""

import json
import signal
from pathlib import Path

from dvclive import Live

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import remove_leftovers, write_text
from seqlab.core.params import as_dict
from seqlab.core.text import read_parallel
from seqlab.model.runtime import limit_kernel_cache, pick_device, seed_everything, set_threads
from seqlab.preprocess import read_encoded
from seqlab.tokenizer import load_tokenizer
from seqlab.train.batches import EncodedSplit
from seqlab.train.loop import Outputs, TrainResult, train
from seqlab.train.scratch import check_writable, no_space_message, prune, publish, run_dir
from seqlab.train.state import load_state, run_fingerprint, trim_live_log

TIMINGS = Path("reports/timings")


def main() -> None:
    # SIGTERM ends the run like Ctrl-C, so no temporary file is left behind; the saved state stays.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    limit_kernel_cache()
    config = load_config()
    seed_everything(config.seed)
    set_threads(config.train.threads)
    paths, device = config.paths, pick_device(config.train.device)
    tokenizer = load_tokenizer(paths.tokenizer)
    train_data = EncodedSplit(*read_encoded(paths.encoded, "train"))
    valid_data = EncodedSplit(*read_encoded(paths.encoded, "valid"))
    valid_text = read_parallel(f"{paths.corpus}/valid.src", f"{paths.corpus}/valid.tgt")
    settings = {"seed": config.seed, "model": as_dict(config.model), "train": config.train.results_keys(),
                "tokenize": config.evaluate.tokenize}
    run_id = run_fingerprint(settings, train=[train_data.src, train_data.tgt], valid=[valid_data.src, valid_data.tgt],
                             valid_text=valid_text.src + valid_text.tgt,
                             tokenizers=[tokenizer.src_model, tokenizer.tgt_model])
    scratch = run_dir(paths.train_scratch, run_id)
    check_writable(paths.model, f"{paths.train_log}/metrics.json", scratch.state)
    prune(paths.train_scratch, keep=scratch)
    for path in (scratch.state, scratch.model):
        remove_leftovers(path)  # of a run killed while saving
    check = load_state(scratch.state, fingerprint=run_id)
    print(check.note, flush=True)
    with no_space_message(scratch.root):
        if check.finished and scratch.model.is_file():
            best = check.saved.progress  # nothing to train: its outputs are written again
            summary = f"best valid {config.train.valid_metric} {best.best_metric:.4f} at step {best.best_step}"
        else:
            resume = None if check.finished else check.saved
            info = {"corpus": as_dict(config.prepare), "tokenizer": as_dict(config.tokenizer),
                    "train": settings["train"], "train_pairs": len(train_data.src), "seed": config.seed}
            with Live(str(scratch.log), dvcyaml=False, save_dvc_exp=False, resume=resume is not None) as live:
                if resume is not None:
                    trim_live_log(scratch.log, last_step=resume.progress.valid_step)
                result = train(train_data, valid_data, valid_text, model_config=config.model, config=config.train,
                               tokenizer=tokenizer, seed=config.seed, device=device, info=info, resume=resume,
                               live=live, outputs=Outputs(scratch.model, scratch.state, run_id),
                               tokenize=config.evaluate.tokenize)
                # the saved model's: the average's when it replaced the best
                live.summary.update({"best_step": result.best_step,
                                     f"best_{config.train.valid_metric}": result.best_metric})
            summary = write_timings(result, metric=config.train.valid_metric)
        publish(scratch, model=paths.model, log=paths.train_log)
    print(f"train: {summary} -> {paths.model}")


def write_timings(result: TrainResult, *, metric: str) -> str:
    """Timings go to a git-ignored file that no stage declares, so that they never change dvc.lock."""
    timings = {"wall_seconds": round(result.wall_seconds, 1), "tokens_per_sec": round(result.tokens_per_sec),
               "steps": result.steps, "resumed_from": result.resumed_from}
    write_text(TIMINGS / ".gitignore", "*\n")
    write_text(TIMINGS / "train.json", json.dumps(timings, indent=2) + "\n")
    return (f"best valid {metric} {result.best_metric:.4f} at step {result.best_step} of {result.steps}"
            f"{' (stopped early)' if result.stopped_early else ''}{' (averaged)' if result.averaged else ''} "
            f"in {result.wall_seconds:.0f}s, {result.tokens_per_sec:,.0f} tokens/s")


if __name__ == "__main__":
    run_stage(main)
