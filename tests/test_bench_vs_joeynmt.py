"""bench/vs_joeynmt.py: the batches both tools train on, and the JoeyNMT config it writes.

The bench's figures are only a comparison if JoeyNMT trains the architecture
seqlab trains and both read the same batches; these check that without
JoeyNMT installed (the timing itself is the bench's job).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from seqlab.core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import vs_joeynmt  # noqa: E402  (bench scripts import their siblings by name)


def lengths(n: int = 1000) -> np.ndarray:
    return np.random.default_rng(0).integers(2, 40, n)


def test_bucketed_batches_hold_each_pair_once_and_similar_lengths_in_shuffled_order() -> None:
    tgt = lengths(20_000)
    batches = list(vs_joeynmt.bucketed_batches(tgt, 64, seed=1))
    flat = np.concatenate(batches)
    assert len(batches) == len(tgt) // 64 and all(len(b) == 64 for b in batches)
    assert len(set(flat.tolist())) == len(flat)  # no pair twice; the remainder (< 64) is left out
    spreads = [int(tgt[b].max() - tgt[b].min()) for b in batches]
    assert max(spreads) <= 1  # ~500 pairs per length: a batch spans at most two neighbouring ones
    firsts = [int(tgt[b].min()) for b in batches]
    assert firsts != sorted(firsts)  # the order of the batches is shuffled
    again = list(vs_joeynmt.bucketed_batches(tgt, 64, seed=1))
    assert all((a == b).all() for a, b in zip(batches, again))


def test_random_batches_mix_lengths() -> None:
    tgt = lengths()
    batches = list(vs_joeynmt.random_batches(len(tgt), 64, seed=1))
    assert len(batches) == len(tgt) // 64
    assert len(set(np.concatenate(batches).tolist())) == 64 * len(batches)
    assert np.median([tgt[b].max() - tgt[b].min() for b in batches]) > 20


def test_joeynmt_config_is_the_multi30k_architecture_and_optimiser(tmp_path: Path) -> None:
    config = load_config(ROOT / "tests/assets/presets/multi30k.yaml")
    cfg = vs_joeynmt.joeynmt_config(config, work=tmp_path, train="bucketed", shuffle=False, steps=200,
                                    log_every=50, batch=64)
    enc, dec, train = cfg["model"]["encoder"], cfg["model"]["decoder"], cfg["training"]
    m = config.model
    assert (enc["type"], enc["rnn_type"], enc["bidirectional"], enc["num_layers"]) == (
        "recurrent", m.rnn_type, m.bidirectional, m.encoder_layers)
    assert enc["hidden_size"] == dec["hidden_size"] == m.hidden_dim == 512
    assert enc["embeddings"]["embedding_dim"] == dec["embeddings"]["embedding_dim"] == m.embed_dim == 256
    assert (dec["attention"], dec["input_feeding"], dec["init_hidden"]) == ("bahdanau", True, "bridge")
    assert (train["batch_size"], train["batch_type"], train["shuffle"], train["updates"]) == (64, "sentence", False, 200)
    assert (train["learning_rate"], train["label_smoothing"], train["clip_grad_norm"]) == (
        config.train.lr, config.train.label_smoothing, config.train.clip_norm)
    assert train["validation_freq"] > train["updates"]  # no validation inside the timed windows
    assert cfg["data"]["train"] == str(tmp_path / "bucketed")
    assert cfg["data"]["src"]["tokenizer_cfg"]["model_file"] == str(tmp_path / "sp.model")
