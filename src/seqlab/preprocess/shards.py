"""Encoded splits on disk: parquet shards of int32 piece-id lists, ``<split>-00000.parquet``, ...

Every chunk of a split is one shard, so memory stays bounded by the shard size whatever the
corpus size; ids are Arrow lists of int32 from end to end, with no Python object per sentence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seqlab.core.errors import DataError

ENCODED_SPLITS = ("train", "valid")  # the test split is decoded from raw text, never filtered
IDS = pa.list_(pa.int32())


def sample_split(number: int) -> str:
    """The shards' name of the train split's ``number``-th sampled segmentation (from 0)."""
    return f"train.sample{number:03d}"


def shard_path(directory: str | Path, split: str, number: int) -> Path:
    return Path(directory) / f"{split}-{number:05d}.parquet"


def write_shard(frame: pd.DataFrame, path: Path) -> None:
    """One shard: columns ``src_ids`` and ``tgt_ids`` as parquet lists of int32."""
    table = pa.table({name: pa.array(frame[name], type=IDS) for name in ("src_ids", "tgt_ids")})
    pq.write_table(table, path)


def _arrays(column: pa.ChunkedArray) -> list[np.ndarray]:
    """One int32 array per row: views into one flat buffer per parquet chunk (fast, compact)."""
    out: list[np.ndarray] = []
    for chunk in column.chunks:
        values = chunk.flatten().to_numpy(zero_copy_only=False)
        ends = np.cumsum(chunk.value_lengths().to_numpy(zero_copy_only=False))
        out.extend(np.split(values, ends[:-1]) if len(chunk) else [])
    return out


def read_encoded(directory: str | Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Source and target id arrays of an encoded split, its shards read in order."""
    paths = sorted(Path(directory).glob(f"{split}-*.parquet"))
    if not paths:
        raise DataError(f"{directory}: no {split}-*.parquet shards; run the preprocess stage")
    table = pa.concat_tables(pq.read_table(path, columns=["src_ids", "tgt_ids"]) for path in paths)
    return _arrays(table.column("src_ids")), _arrays(table.column("tgt_ids"))


def sample_count(directory: str | Path) -> int:
    """How many sampled segmentations of the train split preprocess wrote (0: subword regularization off);
    each is read with ``read_encoded(directory, sample_split(number))``."""
    names = {path.name.rsplit("-", 1)[0] for path in Path(directory).glob("train.sample*-*.parquet")}
    if names != {sample_split(number) for number in range(len(names))}:
        raise DataError(f"{directory}: the subword samples are not numbered 0 to {len(names) - 1}; "
                        "run the preprocess stage again")
    return len(names)
