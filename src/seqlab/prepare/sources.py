"""Where ``prepare`` reads its pairs: the number generator, parallel text files or tables.

:func:`read_source` streams ``(split, frame)`` chunks, frames with columns
``src`` and ``tgt``, whatever the source, so the stage cleans and writes them
the same way. With ``prepare.valid_from_train`` the valid split is drawn from
the training file instead of read from its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from seqlab.core.data_config import SPLITS, PrepareConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.text import iter_parallel
from seqlab.prepare.numbers import generate_numbers
from seqlab.prepare.tables import iter_table, table_format

Chunks = Iterator[pd.DataFrame]


def read_source(config: PrepareConfig, *, seed: int) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(split, chunk)`` pairs covering the whole corpus: train (and valid with it, when held out), valid, test."""
    if config.source == "numbers":
        corpus = generate_numbers(config.numbers, seed=seed)
        for split in SPLITS:
            text = corpus.split(split)
            yield split, pd.DataFrame({"src": text.src, "tgt": text.tgt})
        return
    open_split = _opener(config)
    if config.valid_from_train:
        yield from _hold_out(open_split, config.valid_from_train, seed=seed)
    else:
        yield from (("train", chunk) for chunk in open_split("train"))
        yield from (("valid", chunk) for chunk in open_split("valid"))
    yield from (("test", chunk) for chunk in open_split("test"))


def _opener(config: PrepareConfig) -> Callable[[str], Chunks]:
    """A function from a split name to a fresh stream of that split's chunks."""

    def files(split: str) -> Chunks:
        src, tgt = (_existing(getattr(config.files, f"{split}_{side}"), f"prepare.files.{split}_{side}")
                    for side in ("src", "tgt"))
        return iter_parallel(src, tgt, chunk_size=config.chunk_size)

    def table(split: str) -> Chunks:
        table = config.table
        path = _existing(getattr(table, split), f"prepare.table.{split}")
        return iter_table(path, format=table_format(path, table.format), src_column=table.src_column,
                          tgt_column=table.tgt_column, chunk_size=config.chunk_size)

    return files if config.source == "files" else table


def _existing(path: str, key: str) -> Path:
    """``path`` if it is a file; otherwise an error naming the params key that set it."""
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found (set by {key} in params.yaml)")
    return Path(path)


def _hold_out(open_split: Callable[[str], Chunks], size: int, *, seed: int) -> Iterator[tuple[str, pd.DataFrame]]:
    """Train's chunks divided into ``train`` and ``valid``: ``size`` pairs drawn at random, seeded.

    The training file is read twice, once to count its pairs so that the draw is
    uniform over all of them, which keeps memory bounded whatever its size.
    """
    total = sum(len(chunk) for chunk in open_split("train"))
    if size >= total:
        raise ConfigError(f"prepare.valid_from_train: {size:,} leaves nothing to train on ({total:,} training pairs)")
    held = np.zeros(total, dtype=bool)
    held[np.random.default_rng(seed).choice(total, size=size, replace=False)] = True
    start = 0
    for chunk in open_split("train"):
        mask = held[start : start + len(chunk)]
        start += len(chunk)
        yield "train", chunk[~mask].reset_index(drop=True)
        yield "valid", chunk[mask].reset_index(drop=True)
