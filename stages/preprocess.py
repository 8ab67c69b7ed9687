"""preprocess: encode train and valid to piece ids in parquet shards, dropping and counting bad pairs."""

import dataclasses
import json
from pathlib import Path

from seqlab.core.config import load_config
from seqlab.core.data_config import PreprocessConfig
from seqlab.core.errors import DataError, run_stage
from seqlab.core.files import atomic_path, remove_leftovers, write_text
from seqlab.core.text import iter_parallel
from seqlab.preprocess.encode import SplitStats, encode, encode_threads, filter_pairs, usable
from seqlab.preprocess.samples import write_samples
from seqlab.preprocess.shards import ENCODED_SPLITS, shard_path, write_shard
from seqlab.tokenizer import Tokenizer, load_tokenizer


def encode_split(corpus: Path, split: str, out: Path, *, tokenizer: Tokenizer, config: PreprocessConfig,
                 seed: int, unigram: bool) -> dict:
    """Stream one split through encode and filter, one shard per chunk (and per subword sample of
    train); its counts for the report."""
    stats, shards, kept_best = SplitStats(), 0, 0
    threads = encode_threads(config.threads)
    samples = config.subword_samples if split == "train" else 0
    for chunk in iter_parallel(corpus / f"{split}.src", corpus / f"{split}.tgt", chunk_size=config.shard_size):
        encoded = encode(chunk, tokenizer, threads=threads)
        kept, chunk_stats = filter_pairs(encoded, config)
        write_shard(kept, shard_path(out, split, shards))
        if samples:
            kept_best += write_samples(encoded[usable(encoded, config)], out, shards, tokenizer=tokenizer,
                                       config=config, seed=seed, unigram=unigram)
        stats, shards = stats + chunk_stats, shards + 1
    if not stats.kept:
        raise DataError(f"preprocess: every {split} pair was dropped ({stats.dropped_empty:,} empty, "
                        f"{stats.dropped_too_long:,} too long); raise preprocess.max_src_len or max_tgt_len")
    report = {**dataclasses.asdict(stats), "shards": shards}
    return {**report, "subword_samples": samples, "sampled_sides_kept_best": kept_best} if samples else report


def main() -> None:
    config = load_config()
    for path in (config.paths.encoded, config.paths.preprocess_stats):
        remove_leftovers(path)  # of a run killed while writing it
    tokenizer = load_tokenizer(config.paths.tokenizer)
    with atomic_path(config.paths.encoded) as tmp:
        tmp.mkdir()
        report = {split: encode_split(Path(config.paths.corpus), split, tmp, tokenizer=tokenizer,
                                      config=config.preprocess, seed=config.seed,
                                      unigram=config.tokenizer.model_type == "unigram") for split in ENCODED_SPLITS}
    write_text(config.paths.preprocess_stats, json.dumps(report, indent=2) + "\n")
    for split, s in report.items():
        print(f"preprocess: {split}: kept {s['kept']:,} of {s['input']:,} pairs in {s['shards']} shards "
              f"(dropped {s['dropped_empty']:,} empty, {s['dropped_too_long']:,} too long)")
        if s.get("subword_samples"):
            print(f"preprocess: {split}: {s['subword_samples']} sampled segmentations (subword regularization); "
                  f"{s['sampled_sides_kept_best']:,} sides sampled over the length limit kept the best one")


if __name__ == "__main__":
    run_stage(main)
