"""tokenizer: train sentencepiece on the training split (streamed from the prepared corpus)."""

from pathlib import Path

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import atomic_path
from seqlab.tokenizer import save_tokenizer, train_tokenizer_on_files


def main() -> None:
    config = load_config()
    corpus = Path(config.paths.corpus)
    tokenizer = train_tokenizer_on_files(corpus / "train.src", corpus / "train.tgt", config.tokenizer, seed=config.seed)
    with atomic_path(config.paths.tokenizer) as tmp:
        save_tokenizer(tokenizer, tmp)
    kind = "joint" if tokenizer.joint else "separate"
    print(
        f"tokenizer: {kind} {config.tokenizer.model_type} vocabulary of {tokenizer.src_vocab_size} "
        f"(target {tokenizer.tgt_vocab_size}) -> {config.paths.tokenizer}"
    )


if __name__ == "__main__":
    run_stage(main)
