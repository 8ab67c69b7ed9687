"""Subword regularization: sampled segmentations of the train split, drawn in preprocess and used
one per epoch by train (real sentencepiece, a tiny unigram model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dvc_repo import Repo, make_repo, merge
from test_resume import RESUME, kill_after_first_save, outcome, scratch

from seqlab.core.data_config import PreprocessConfig, TokenizerConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.run_config import TrainConfig
from seqlab.core.text import ParallelText
from seqlab.preprocess import encode, read_encoded, sample, sample_count, sample_split, shard_path, usable, write_shard
from seqlab.tokenizer import Tokenizer, seed_sampling, train_tokenizer
from seqlab.train.batches import EncodedSplit, SampledSplits, epoch_split, sampled_splits
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


def test_samples_vary_decode_to_the_same_text_and_follow_the_seed_within_a_process(tokenizer: Tokenizer) -> None:
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
    assert sample_count(tmp_path) == 3
    assert len(read_encoded(tmp_path, "train")[0]) == len(pairs)  # train-* does not pick up the samples
    loads = []

    def load(number: int) -> EncodedSplit:
        loads.append(number)
        return EncodedSplit(*read_encoded(tmp_path, sample_split(number)))

    samples = SampledSplits(3, load=load)
    assert all(len(s.src) == len(s.tgt) == len(pairs) for s in samples)
    assert samples[2] is samples[2] and loads == [0, 1, 2]  # read once while it is the current one
    assert [list(a) for a in samples[0].src] != [list(a) for a in samples[1].src]
    assert loads == [0, 1, 2, 0, 1]
    with pytest.raises(IndexError):
        samples[3]
    from_disk = sampled_splits(tmp_path)  # what the train stage reads
    assert len(from_disk) == 3
    assert [list(a) for a in from_disk[1].tgt] == [list(a) for a in samples[1].tgt]
    (tmp_path / "none").mkdir()
    assert sample_count(tmp_path / "none") == 0
    shard_path(tmp_path, sample_split(1), 0).unlink()  # a gap: 0 and 2 only
    with pytest.raises(DataError, match="not numbered"):
        sample_count(tmp_path)


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


# ---------------------------------------------------------------- under real dvc


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return make_repo(tmp_path_factory.mktemp("subword"),
                     overrides=merge(RESUME, {"preprocess": {"subword_samples": 2, "subword_alpha": 0.2}}))


def test_samples_are_stage_outputs_and_a_killed_run_resumes_exactly(repo: Repo) -> None:
    repo.dvc("repro", "preprocess")
    report = json.loads((repo.path / "reports/preprocess.json").read_text())
    assert report["train"]["subword_samples"] == 2 and "subword_samples" not in report["valid"]
    encoded = repo.path / "data/encoded"
    drawn = {path.name: path.read_bytes() for path in encoded.glob("train.sample*-*.parquet")}
    assert sorted(drawn) == ["train.sample000-00000.parquet", "train.sample001-00000.parquet"]
    assert drawn["train.sample000-00000.parquet"] != drawn["train.sample001-00000.parquet"]
    # sentencepiece 0.2's draws differ from process to process whatever the seed, so the samples
    # are what DVC versions: the run below trains on these bytes, and resumes on them.
    assert "up to date" in repo.dvc("status", "preprocess").stdout

    out = repo.dvc("repro", "train").stdout
    assert "starting fresh" in out
    straight = outcome(repo)
    shutil.rmtree(scratch(repo))
    # -s: a forced preprocess would draw new samples, and so start a new run rather than resume this one.
    saved_step = kill_after_first_save(repo, only_train=True)
    out = repo.dvc("repro", "-f", "-s", "train").stdout
    assert f"resuming from step {saved_step} " in out
    weights, best, curves = outcome(repo)
    assert all(torch.equal(weights[k], straight[0][k]) for k in weights)
    assert all(torch.equal(best[k], straight[1][k]) for k in best)
    assert curves == straight[2]

    # Without the samples the same seed trains another model: the samples were used.
    params = repo.params()
    repo.write_params(merge(params, {"preprocess": {"subword_samples": 0}}))
    try:
        repo.dvc("repro", "train")
        assert not list(encoded.glob("train.sample*"))
        plain = torch.load(repo.path / "models/model.pt", weights_only=True)["state_dict"]
    finally:
        repo.write_params(params)
    assert any(not torch.equal(plain[k], straight[1][k]) for k in plain if k in straight[1])
