"""prepare: write the train/valid/test corpus splits named by ``params.yaml:prepare``."""

from seqlab.atomic import atomic_path
from seqlab.config import load_config
from seqlab.data import SPLITS, generate_numbers, read_files, write_corpus
from seqlab.errors import run_stage


def main() -> None:
    config = load_config()
    if config.prepare.source == "numbers":
        corpus = generate_numbers(config.prepare.numbers, seed=config.seed)
    else:
        corpus = read_files(config.prepare.files)
    with atomic_path(config.paths.corpus) as tmp:
        write_corpus(corpus, tmp)
    sizes = ", ".join(f"{split} {len(corpus.split(split)):,}" for split in SPLITS)
    print(f"prepare: {config.prepare.source} corpus -> {config.paths.corpus} ({sizes} pairs)")


if __name__ == "__main__":
    run_stage(main)
