"""train: fit the model, keep the best validation checkpoint, continue a killed run exactly."""

import signal
from pathlib import Path

from dvclive import Live

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import remove_leftovers
from seqlab.core.params import as_dict
from seqlab.core.text import read_parallel
from seqlab.model.runtime import limit_kernel_cache, pick_device, seed_everything, set_threads
from seqlab.preprocess import read_encoded
from seqlab.tokenizer import load_tokenizer
from seqlab.train.batches import EncodedSplit
from seqlab.train.loop import Outputs, train
from seqlab.train.state import fingerprint, load_state, trim_live_log


def main() -> None:
    # SIGTERM ends the run like Ctrl-C, so no temporary file is left behind; the saved state stays.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    limit_kernel_cache()
    config = load_config()
    seed_everything(config.seed)
    set_threads(config.train.threads)
    device = pick_device(config.train.device)
    paths = config.paths
    tokenizer = load_tokenizer(paths.tokenizer)
    train_data = EncodedSplit(*read_encoded(paths.encoded, "train"))
    valid_data = EncodedSplit(*read_encoded(paths.encoded, "valid"))
    valid_text = read_parallel(f"{paths.corpus}/valid.src", f"{paths.corpus}/valid.tgt")
    run_id = fingerprint(
        params={"seed": config.seed, "model": as_dict(config.model), "train": as_dict(config.train)},
        arrays=[train_data.src, train_data.tgt, valid_data.src, valid_data.tgt],
        blobs=[tokenizer.src_model, tokenizer.tgt_model, "\n".join(valid_text.src + valid_text.tgt).encode()])
    for path in (paths.model, paths.train_state):
        remove_leftovers(path)  # of a run killed while saving
    check = load_state(paths.train_state, fingerprint=run_id)
    print(check.note, flush=True)
    info = {"corpus": as_dict(config.prepare), "tokenizer": as_dict(config.tokenizer), "train": as_dict(config.train),
            "train_pairs": len(train_data.src), "seed": config.seed,
            "max_src_len": config.preprocess.max_src_len}  # seqlab translate truncates longer sources to it
    with Live(paths.train_log, dvcyaml=False, save_dvc_exp=False, resume=check.saved is not None) as live:
        if check.saved is not None:
            trim_live_log(paths.train_log, last_step=check.saved.progress.valid_step)
        result = train(train_data, valid_data, valid_text, model_config=config.model, config=config.train,
                       tokenizer=tokenizer, seed=config.seed, device=device, info=info, resume=check.saved, live=live,
                       outputs=Outputs(Path(paths.model), Path(paths.train_state), run_id))
        live.summary.update({"best_step": result.best_step, f"best_{config.train.valid_metric}": result.best_metric,
                             "train_seconds": round(result.wall_seconds, 1)})
    print(f"train: best valid {config.train.valid_metric} {result.best_metric:.4f} at step {result.best_step} "
          f"of {result.steps}{' (stopped early)' if result.stopped_early else ''} in {result.wall_seconds:.0f}s "
          f"-> {paths.model}")


if __name__ == "__main__":
    run_stage(main)
