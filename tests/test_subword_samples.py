"""Subword regularization: sampled segmentations of the train split, drawn in preprocess and used
one per epoch by train (real sentencepiece, a tiny unigram model)."""

from __future__ import annotations

import json
from dataclasses import replace
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dvc_repo import Repo, make_repo, merge
from test_resume import RESUME, kill_after_first_save, outcome, scratch

from seqlab.core.config import load_config
from seqlab.core.data_config import MAX_NBEST, PreprocessConfig, TokenizerConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.run_config import TrainConfig
from seqlab.core.text import ParallelText
from seqlab.preprocess.encode import encode, usable
from seqlab.preprocess.samples import pick_segmentations, sample, write_nbest_samples, write_samples
from seqlab.preprocess.shards import read_encoded, sample_count, sample_split, shard_path, write_shard
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


def test_segmentations_are_drawn_in_proportion_to_their_probability_to_the_alpha() -> None:
    scores = np.log([0.5, 0.3, 0.2, 0.1])  # pieces 0..3
    candidates = [
        [[0], [1], [2, 3]],  # P: 0.5, 0.3, 0.02
        [[0, 0, 0], [1]],  # the first is over the limit of 2 pieces
        [[0, 0, 0]],  # none within the limit
        [],  # no segmentation at all
    ]
    uniform = np.random.default_rng(0).random((40_000, len(candidates)))
    picks = pick_segmentations(candidates, scores, alpha=0.5, limit=2, uniform=uniform)
    assert picks.shape == (40_000, 4)
    weights = np.sqrt([0.5, 0.3, 0.02])
    frequencies = np.bincount(picks[:, 0], minlength=3) / len(picks)
    np.testing.assert_allclose(frequencies, weights / weights.sum(), atol=0.01)
    assert (picks[:, 1] == 1).all() and (picks[:, 2] == -1).all() and (picks[:, 3] == -1).all()
    ends = pick_segmentations(candidates[:1], scores, alpha=1.0, limit=2, uniform=np.array([[0.0], [0.999999]]))
    assert ends.tolist() == [[0], [2]]  # the CDF's two ends
    assert pick_segmentations([[[0], [1]]], scores, alpha=1.0, limit=2, uniform=np.array([[0.6]])).tolist() == [[0]]
    assert pick_segmentations([[[0], [1]]], scores, alpha=1.0, limit=2, uniform=np.array([[0.7]])).tolist() == [[1]]


def nbest_files(tokenizer: Tokenizer, directory: Path, config: PreprocessConfig, *, seed: int,
                chunk: int = 7) -> dict[str, bytes]:
    """The sample shards written for ``config``, by name; ``chunk``: pairs a row group (7: several)."""
    directory.mkdir()
    kept_best = write_nbest_samples(encoded(tokenizer, config), directory, 0, tokenizer=tokenizer, config=config,
                                    seed=seed, chunk=chunk)
    assert kept_best == 0  # the best segmentation is one of the n-best, so a line within the limit has one
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_nbest_samples_follow_the_seed_and_decode_to_the_same_text(tokenizer: Tokenizer, tmp_path: Path) -> None:
    config = PreprocessConfig(subword_samples=3, subword_alpha=0.2, subword_nbest=16, threads=1)
    first = nbest_files(tokenizer, tmp_path / "a", config, seed=5)
    assert list(first) == [f"{sample_split(k)}-00000.parquet" for k in range(3)]
    assert nbest_files(tokenizer, tmp_path / "b", config, seed=5) == first
    assert nbest_files(tokenizer, tmp_path / "c", config, seed=6) != first
    best = encoded(tokenizer, config)
    drawn = [read_encoded(tmp_path / "a", sample_split(k)) for k in range(3)]
    for src, tgt in drawn:
        assert tokenizer.src.decode([list(ids) for ids in src]) == TEXT.src
        assert tokenizer.decode_tgt([list(ids) for ids in tgt]) == TEXT.tgt
    assert [list(ids) for ids in drawn[0][1]] != [list(ids) for ids in drawn[1][1]]
    changed = np.mean([list(a) != list(b) for a, b in zip(drawn[0][1], best["tgt_ids"])])
    assert 0 < changed < 1


def test_nbest_samples_are_the_same_bytes_drawn_on_worker_processes(tokenizer: Tokenizer, tmp_path: Path) -> None:
    # 60 pairs in chunks of 7: 18 tasks over 2 spawned processes, results taken in order
    config = PreprocessConfig(subword_samples=3, subword_alpha=0.2, subword_nbest=16, threads=1)
    alone = nbest_files(tokenizer, tmp_path / "one", config, seed=5)
    shared = nbest_files(tokenizer, tmp_path / "two", replace(config, threads=2), seed=5)
    assert shared == alone
    # one chunk is drawn here whatever preprocess.threads says: starting processes costs more
    assert nbest_files(tokenizer, tmp_path / "big", replace(config, threads=2), seed=5, chunk=len(TEXT.src)) != alone


def test_nbest_samples_stay_within_the_length_limit(tokenizer: Tokenizer, tmp_path: Path) -> None:
    best_longest = max(len(ids) for ids in encoded(tokenizer, PreprocessConfig())["src_ids"])
    config = PreprocessConfig(max_src_len=best_longest, subword_samples=4, subword_alpha=0.05)
    nbest_files(tokenizer, tmp_path / "a", config, seed=1)
    for k in range(4):
        src, _ = read_encoded(tmp_path / "a", sample_split(k))
        assert len(src) == len(TEXT.src) and max(map(len, src)) <= best_longest


def test_write_samples_uses_sentencepiece_for_bpe_and_for_nbest_minus_one(tokenizer: Tokenizer,
                                                                         tmp_path: Path) -> None:
    config = PreprocessConfig(subword_samples=1, subword_alpha=0.2, subword_nbest=-1)
    pairs = encoded(tokenizer, config)
    write_samples(pairs, tmp_path, 3, tokenizer=tokenizer, config=config, seed=10, unigram=True)
    seed_sampling(10 + 3)  # what write_samples seeds sentencepiece with for sample 0 of shard 3
    expected = sample(pairs, tokenizer, alpha=0.2, config=config).frame
    src, tgt = read_encoded(tmp_path, sample_split(0))
    assert [list(a) for a in src] == [list(a) for a in expected["src_ids"]]

    bpe = train_tokenizer(TEXT, TokenizerConfig(vocab_size=40, model_type="bpe"), seed=1)
    config = PreprocessConfig(subword_samples=2, subword_alpha=0.3)  # nbest 64 does not apply to BPE
    pairs = encoded(bpe, config)
    (tmp_path / "bpe").mkdir()
    write_samples(pairs, tmp_path / "bpe", 0, tokenizer=bpe, config=config, seed=10, unigram=False)
    for k in range(2):
        src, tgt = read_encoded(tmp_path / "bpe", sample_split(k))
        assert bpe.decode_tgt([list(a) for a in tgt]) == TEXT.tgt
    assert [list(a) for a in tgt] != [list(a) for a in pairs["tgt_ids"]]  # BPE-dropout split some words


def test_the_largest_accepted_nbest_runs_through_sentencepiece(tokenizer: Tokenizer) -> None:
    # The key's upper bound is sentencepiece's own: one more and nbest encoding raises
    largest = MAX_NBEST
    PreprocessConfig(subword_nbest=largest)
    candidates = tokenizer.nbest("src", ["the little house by the river"], size=largest)[0]
    assert 1 < len(candidates) <= largest
    assert all(tokenizer.src.decode(ids) == "the little house by the river" for ids in candidates)
    with pytest.raises(RuntimeError, match="nbest_size"):
        tokenizer.nbest("src", ["the little house"], size=largest + 1)


def test_subword_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.subword_samples"):
        PreprocessConfig(subword_samples=-1)
    with pytest.raises(ConfigError, match=r"preprocess\.subword_alpha"):
        PreprocessConfig(subword_alpha=0.0)
    for bad in (0, 1, 513, -2):
        with pytest.raises(ConfigError, match=r"preprocess\.subword_nbest: must be -1 .* or in \[2, 512\]"):
            PreprocessConfig(subword_nbest=bad)
    assert PreprocessConfig(subword_nbest=-1).subword_nbest == -1
    for model_type in ("char", "word"):
        params = tmp_path / f"{model_type}.yaml"
        params.write_text(f"tokenizer:\n  model_type: {model_type}\npreprocess:\n  subword_samples: 4\n")
        with pytest.raises(ConfigError, match=rf"preprocess\.subword_samples: needs a unigram or bpe tokenizer, "
                                              rf"and tokenizer\.model_type is {model_type}"):
            load_config(params)


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
    # The draws are seeded (the n-best path): a forced preprocess, in a new process, writes the same bytes.
    repo.dvc("repro", "-f", "preprocess")
    assert {path.name: path.read_bytes() for path in encoded.glob("train.sample*-*.parquet")} == drawn

    out = repo.dvc("repro", "train").stdout
    assert "starting fresh" in out
    straight = outcome(repo)
    shutil.rmtree(scratch(repo))
    # The whole pipeline forced and killed in train: preprocess draws the same samples again, so the
    # run resumes on the data it was killed on and ends where the straight run did.
    saved_step = kill_after_first_save(repo)
    out = repo.dvc("repro", "-f", "train").stdout
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
