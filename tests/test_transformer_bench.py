"""bench/train_speed.py --arch transformer: its analytic FLOPs are what torch multiplies."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from seqlab.model.batch import make_batch
from seqlab.model.seq2seq import build_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from train_speed import bench_config, flops_per_target_token  # noqa: E402  (bench scripts import siblings by name)


@pytest.mark.parametrize(("src_len", "tgt_len", "layers", "decoder_layers"), [(7, 5, 1, 0), (4, 9, 2, 0), (6, 5, 3, 1)])
def test_transformer_flops_match_the_counted_forward(src_len: int, tgt_len: int, layers: int,
                                                     decoder_layers: int) -> None:
    """Forward FLOPs counted by torch (attention on its math kernel, made of countable matmuls) on unpadded
    batches equal a third of the analytic training count (backward is twice the forward)."""
    vocab, batch = 50, 3
    config = bench_config("transformer", embed=16, hidden=24, heads=2, layers=layers, output_vocab=0,
                          decoder_layers=decoder_layers, tie=bool(decoder_layers))
    assert config.decoder_layers == (decoder_layers or layers)
    model = build_model(config, src_vocab=vocab, tgt_vocab=vocab).eval()
    rng = np.random.default_rng(0)
    # tgt_in is BOS + target: tgt_len positions from tgt_len - 1 target pieces
    data = make_batch([rng.integers(4, vocab, src_len) for _ in range(batch)],
                      [rng.integers(4, vocab, tgt_len - 1) for _ in range(batch)])
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(data.src, data.src_lengths, data.tgt_in)
    per_token = flops_per_target_token(config, vocab=vocab, src_per_tgt=src_len / tgt_len, src_len=src_len)
    assert counter.get_total_flops() == pytest.approx(per_token / 3 * batch * tgt_len, rel=1e-9)


def test_bench_config_builds_each_arch() -> None:
    assert bench_config("rnn", embed=8, hidden=8, heads=2, layers=3, output_vocab=0).arch == "rnn"
    transformer = bench_config("transformer", embed=32, hidden=64, heads=4, layers=3, output_vocab=10)
    assert (transformer.model_dim, transformer.ff_dim, transformer.encoder_layers, transformer.output_vocab) == (
        32, 64, 3, "target")
