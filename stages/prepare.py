"""prepare: read, clean and write the train/valid/test corpus splits named by ``params.yaml:prepare``."""

import dataclasses
import json

from seqlab.core.config import load_config
from seqlab.core.data_config import SPLITS
from seqlab.core.errors import DataError, run_stage
from seqlab.core.files import atomic_path, remove_leftovers, write_text
from seqlab.core.text import CorpusWriter
from seqlab.prepare.clean import Cleaner
from seqlab.prepare.sources import read_source


def main() -> None:
    config = load_config()
    for path in (config.paths.corpus, config.paths.prepare_stats):
        remove_leftovers(path)  # of a run killed while writing it
    # The test split is scored in full: it is normalised like the others but never filtered.
    cleaners = {split: Cleaner(config.prepare.clean, filter=split != "test") for split in SPLITS}
    with atomic_path(config.paths.corpus) as tmp, CorpusWriter(tmp) as writer:
        for split, chunk in read_source(config.prepare, seed=config.seed):
            writer.write(split, cleaners[split](chunk))
        for split, cleaner in cleaners.items():
            if not cleaner.stats.kept:
                raise DataError(f"prepare: no {split} pairs left ({cleaner.stats.summary()}); see prepare.clean")
    stats = {split: dataclasses.asdict(cleaner.stats) for split, cleaner in cleaners.items()}
    write_text(config.paths.prepare_stats, json.dumps(stats, indent=2) + "\n")
    print(f"prepare: {config.prepare.source} corpus -> {config.paths.corpus}, counts in {config.paths.prepare_stats}")
    for split, cleaner in cleaners.items():
        print(f"prepare: {split}: {cleaner.stats.summary()}")


if __name__ == "__main__":
    run_stage(main)
