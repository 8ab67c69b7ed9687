"""train: fit the attention seq2seq model; keep the checkpoint with the best validation loss."""

from pathlib import Path

from dvclive import Live

from seqlab.config import as_dict, load_config
from seqlab.errors import run_stage
from seqlab.preprocess import read_encoded
from seqlab.runtime import pick_device, seed_everything, set_threads
from seqlab.tokenizer import load_tokenizer
from seqlab.training import EncodedSplit, train


def main() -> None:
    config = load_config()
    seed_everything(config.seed)
    set_threads(config.train.threads)
    device = pick_device(config.train.device)
    tokenizer = load_tokenizer(config.paths.tokenizer)
    train_data = EncodedSplit(*read_encoded(f"{config.paths.encoded}/train.parquet"))
    valid_data = EncodedSplit(*read_encoded(f"{config.paths.encoded}/valid.parquet"))
    info = {"corpus": as_dict(config.prepare), "tokenizer": as_dict(config.tokenizer), "train": as_dict(config.train),
            "train_pairs": len(train_data.src), "seed": config.seed}
    with Live(config.paths.train_log, dvcyaml=False, save_dvc_exp=False) as live:
        result = train(train_data, valid_data, model_config=config.model, config=config.train, tokenizer=tokenizer,
                       seed=config.seed, device=device, checkpoint=Path(config.paths.model), info=info, live=live)
        live.summary["best_epoch"] = result.best_epoch
        live.summary["best_valid_loss"] = result.best_valid_loss
    print(f"train: best valid loss {result.best_valid_loss:.4f} at epoch {result.best_epoch} "
          f"in {result.wall_seconds:.0f}s -> {config.paths.model}")


if __name__ == "__main__":
    run_stage(main)
