"""Subword regularization: sampled segmentations of the train split, drawn in preprocess and used
one per epoch by train (real sentencepiece, a tiny unigram model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqlab.core.data_config import PreprocessConfig, TokenizerConfig
from seqlab.core.errors import ConfigError
from seqlab.core.run_config import TrainConfig
from seqlab.core.text import ParallelText
from seqlab.preprocess import encode, read_encoded, read_samples, sample, sample_split, shard_path, usable, write_shard
from seqlab.tokenizer import Tokenizer, seed_sampling, train_tokenizer
from seqlab.train.batches import EncodedSplit, epoch_split
from seqlab.train.schedule import planned_steps

TEXT = ParallelText(
    src=["the little house by the river", "a house and a garden", "the garden by the house"] * 20,
    tgt=["la petite maison au bord de la riviere", "une maison et un jardin", "le jardin pres de la maison"] * 20,
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(TEXT, TokenizerConfig(vocab_size=40, model_type="unigram"), seed=1)


def encoded(tokenizer: Tokenizer, config: PreprocessConfig) -> pd.DataFrame:
    frame = encode(pd.DataFrame({"src": TEXT.src, "tgt": TEXT.tgt}), tokenizer)
    return frame[usable(frame, config)]


def test_samples_vary_decode_to_the_same_text_and_follow_the_seed(tokenizer: Tokenizer) -> None:
    config = PreprocessConfig()
    pairs = encoded(tokenizer, config)
    seed_sampling(7)
    first = sample(pairs, tokenizer, alpha=0.1, config=config)
    seed_sampling(7)
    again = sample(pairs, tokenizer, alpha=0.1, config=config)
    seed_sampling(8)
    other = sample(pairs, tokenizer, alpha=0.1, config=config)
    assert first.frame.equals(again.frame)
    assert not first.frame.equals(other.frame)
    drawn = [list(ids) for ids in first.frame["tgt_ids"]]
    assert drawn != [list(ids) for ids in pairs["tgt_ids"]]  # not the best segmentation everywhere
    assert tokenizer.decode_tgt(drawn) == TEXT.tgt  # only the split into pieces differs
    assert tokenizer.src.decode([list(ids) for ids in first.frame["src_ids"]]) == TEXT.src
    assert first.kept_best == 0


def test_a_side_sampled_over_the_limit_keeps_its_best_segmentation(tokenizer: Tokenizer) -> None:
    best_longest = max(len(ids) for ids in encoded(tokenizer, PreprocessConfig())["src_ids"])
    config = PreprocessConfig(max_src_len=best_longest)
    pairs = encoded(tokenizer, config)
    seed_sampling(3)
    drawn = sample(pairs, tokenizer, alpha=0.05, config=config)  # very varied: long segmentations
    lengths = [len(ids) for ids in drawn.frame["src_ids"]]
    assert max(lengths) <= best_longest
    fell_back = sum(list(s) == list(b) and len(s) == best_longest
                    for s, b in zip(drawn.frame["src_ids"], pairs["src_ids"]))
    assert drawn.kept_best >= 1 and drawn.kept_best >= fell_back > 0
    assert len(drawn.frame) == len(pairs)  # no pair is dropped


def test_samples_are_written_and_read_beside_the_split(tokenizer: Tokenizer, tmp_path: Path) -> None:
    config = PreprocessConfig()
    pairs = encoded(tokenizer, config)
    write_shard(pairs, shard_path(tmp_path, "train", 0))
    for number in range(3):
        seed_sampling(number)
        write_shard(sample(pairs, tokenizer, alpha=0.2, config=config).frame,
                    shard_path(tmp_path, sample_split(number), 0))
    samples = read_samples(tmp_path)
    assert len(samples) == 3
    assert len(read_encoded(tmp_path, "train")[0]) == len(pairs)  # train-* does not pick up the samples
    assert all(len(src) == len(tgt) == len(pairs) for src, tgt in samples)
    (tmp_path / "none").mkdir()
    assert read_samples(tmp_path / "none") == []


def test_epochs_cycle_through_the_samples() -> None:
    split = EncodedSplit([np.zeros(1, np.int32)], [np.zeros(1, np.int32)])
    samples = [EncodedSplit([np.full(2, k, np.int32)], [np.zeros(1, np.int32)]) for k in range(3)]
    assert [int(epoch_split(split, samples, e).src[0][0]) for e in range(1, 8)] == [0, 1, 2, 0, 1, 2, 0]
    assert epoch_split(split, [], 5) is split
    # the schedule's length: each epoch's own batch count, capped by max_steps
    assert planned_steps(TrainConfig(epochs=5), steps_per_epoch=[10, 11, 12]) == 10 + 11 + 12 + 10 + 11
    assert planned_steps(TrainConfig(epochs=5, max_steps=30), steps_per_epoch=[10, 11, 12]) == 30


def test_subword_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.subword_samples"):
        PreprocessConfig(subword_samples=-1)
    with pytest.raises(ConfigError, match=r"preprocess\.subword_alpha"):
        PreprocessConfig(subword_alpha=0.0)
