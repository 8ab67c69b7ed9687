"""Tests for seqlab.prepare.sources: one stream of (split, chunk) whatever the source, and valid held out of train."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from seqlab.core.data_config import SPLITS, FilesConfig, NumbersConfig, PrepareConfig, TableConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.prepare.sources import read_source


def collect(config: PrepareConfig, seed: int = 1) -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for split, chunk in read_source(config, seed=seed):
        assert list(chunk.columns) == ["src", "tgt"]
        parts[split].append(chunk)
    return {split: pd.concat(chunks, ignore_index=True) for split, chunks in parts.items()}


def parallel_files(tmp_path: Path, sizes: dict[str, int]) -> FilesConfig:
    names = {}
    for split, n in sizes.items():
        for side in ("src", "tgt"):
            path = tmp_path / f"{split}.{side}"
            path.write_text("".join(f"{split} {side} {i}\n" for i in range(n)), encoding="utf-8")
            names[f"{split}_{side}"] = str(path)
    return FilesConfig(**names)


def test_numbers_source() -> None:
    config = PrepareConfig(numbers=NumbersConfig(train_size=120, valid_size=5, test_size=6))
    splits = collect(config)
    assert {split: len(frame) for split, frame in splits.items()} == {"train": 120, "valid": 5, "test": 6}


def test_files_source_in_chunks(tmp_path: Path) -> None:
    files = parallel_files(tmp_path, {"train": 7, "valid": 2, "test": 3})
    chunks = list(read_source(PrepareConfig(source="files", files=files, chunk_size=3), seed=1))
    assert [(split, len(chunk)) for split, chunk in chunks] == [
        ("train", 3), ("train", 3), ("train", 1), ("valid", 2), ("test", 3)
    ]
    assert chunks[4][1].to_dict("list") == {"src": ["test src 0", "test src 1", "test src 2"],
                                            "tgt": ["test tgt 0", "test tgt 1", "test tgt 2"]}


def test_table_source(tmp_path: Path) -> None:
    for split in SPLITS:
        (tmp_path / f"{split}.jsonl").write_text(f'{{"q": "{split} question", "a": "{split} answer"}}\n')
    table = TableConfig(src_column="q", tgt_column="a", **{s: str(tmp_path / f"{s}.jsonl") for s in SPLITS})
    splits = collect(PrepareConfig(source="table", table=table))
    assert splits["valid"].to_dict("list") == {"src": ["valid question"], "tgt": ["valid answer"]}


def test_missing_file_names_the_params_key(tmp_path: Path) -> None:
    files = parallel_files(tmp_path, {"train": 2, "valid": 2, "test": 2})
    (tmp_path / "valid.tgt").unlink()
    with pytest.raises(DataError, match=r"valid\.tgt: file not found \(set by prepare\.files\.valid_tgt in params\.yaml\)"):
        collect(PrepareConfig(source="files", files=files))


def test_valid_held_out_of_train(tmp_path: Path) -> None:
    files = parallel_files(tmp_path, {"train": 50, "test": 3})
    config = PrepareConfig(source="files", files=files, valid_from_train=8, chunk_size=7)
    splits = collect(config, seed=5)
    train, valid = splits["train"], splits["valid"]
    assert (len(train), len(valid), len(splits["test"])) == (42, 8, 3)
    assert sorted(train["src"].tolist() + valid["src"].tolist()) == sorted(f"train src {i}" for i in range(50))
    assert (valid["src"].str.replace("src", "tgt") == valid["tgt"]).all()  # pairs stay pairs
    assert collect(config, seed=5)["valid"].equals(valid)  # seeded
    assert not collect(config, seed=6)["valid"].equals(valid)


def test_valid_from_train_must_leave_training_pairs(tmp_path: Path) -> None:
    files = parallel_files(tmp_path, {"train": 5, "test": 1})
    with pytest.raises(ConfigError, match=r"prepare\.valid_from_train: 5 leaves nothing to train on \(5 training pairs\)"):
        collect(PrepareConfig(source="files", files=files, valid_from_train=5))


# ---------------------------------------------------------------- the prepare section's own checks


def test_valid_files_must_be_empty_when_held_out(tmp_path: Path) -> None:
    files = parallel_files(tmp_path, {"train": 5, "valid": 2, "test": 1})
    with pytest.raises(ConfigError, match=r"prepare\.files\.valid_src: leave empty when prepare\.valid_from_train is set"):
        PrepareConfig(source="files", files=files, valid_from_train=1)


def test_table_source_requires_its_files() -> None:
    with pytest.raises(ConfigError, match=r"prepare\.table\.train: required when prepare\.source is 'table'"):
        PrepareConfig(source="table")
    with pytest.raises(ConfigError, match=r"prepare\.table\.test: required"):
        PrepareConfig(source="table", table=TableConfig(train="a.tsv"), valid_from_train=10)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"chunk_size": 0}, "prepare.chunk_size"),
        ({"valid_from_train": -1}, "prepare.valid_from_train"),
        ({"valid_from_train": 10}, "prepare.valid_from_train"),  # the numbers source has its own valid_size
        ({"source": "table", "table": TableConfig(train="a", valid="b", test="c", src_column="")},
         "prepare.table.src_column"),
    ],
)
def test_prepare_checks_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        PrepareConfig(**kwargs)
