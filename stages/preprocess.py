"""preprocess: encode train and valid to piece ids (parquet), dropping and counting bad pairs."""

import dataclasses
import json

from seqlab.atomic import atomic_path, write_text
from seqlab.config import load_config
from seqlab.data import read_corpus
from seqlab.errors import run_stage
from seqlab.preprocess import ENCODED_SPLITS, encode, filter_pairs
from seqlab.tokenizer import load_tokenizer


def main() -> None:
    config = load_config()
    corpus = read_corpus(config.paths.corpus)
    tokenizer = load_tokenizer(config.paths.tokenizer)
    stats = {}
    with atomic_path(config.paths.encoded) as tmp:
        tmp.mkdir()
        for split in ENCODED_SPLITS:
            kept, stats[split] = filter_pairs(encode(corpus.split(split), tokenizer), config.preprocess)
            kept.to_parquet(tmp / f"{split}.parquet", index=False)
    report = {split: dataclasses.asdict(s) for split, s in stats.items()}
    write_text(config.paths.preprocess_stats, json.dumps(report, indent=2) + "\n")
    for split, s in stats.items():
        print(
            f"preprocess: {split}: kept {s.kept:,} of {s.input:,} pairs "
            f"(dropped {s.dropped_empty:,} empty, {s.dropped_too_long:,} too long)"
        )


if __name__ == "__main__":
    run_stage(main)
