"""bench/matmul_bound.py: what it records of a training step, the FLOPs it counts, and its replay.

The bench's bound is only as good as its recorder: every matmul of forward,
backward and the weight-gradient tapes must be seen and counted right, and the
replay must run the same calls. These check that on real torch with a tiny model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.model.seq2seq import build_model
from seqlab.train.loop import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import matmul_bound  # noqa: E402  (bench scripts import their siblings by name)
from train_speed import flops_per_target_token, synthetic_batches, train_step  # noqa: E402

aten = torch.ops.aten


def test_counts_each_kind_of_matmul() -> None:
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    with matmul_bound.MatmulRecorder() as recorder:
        torch.mm(a, b)
        torch.addmm(torch.randn(5), a, b)  # the added term does not count
        torch.bmm(torch.randn(2, 3, 4), torch.randn(2, 4, 5))
        torch.baddbmm(torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5))
        torch.mv(a, torch.randn(4))
        torch.dot(torch.randn(7), torch.randn(7))
    ops = [c.op for c in recorder.calls]
    assert ops == [aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default,
                   aten.mv.default, aten.dot.default]
    assert [c.flops for c in recorder.calls] == [2 * 3 * 4 * 5, 2 * 3 * 4 * 5, 2 * 2 * 3 * 4 * 5, 2 * 2 * 3 * 4 * 5,
                                                 2 * 3 * 4, 2 * 7]
    assert all(c.seconds > 0 for c in recorder.calls)


def test_sees_backward_and_the_optimizer_and_keeps_layouts() -> None:
    layer = torch.nn.Linear(6, 10)
    optimizer = torch.optim.Adam(layer.parameters(), fused=True)
    x = torch.randn(4, 6, requires_grad=True)
    with matmul_bound.MatmulRecorder() as recorder:
        layer(x).square().sum().backward()
        optimizer.step()
    # forward x @ W^T (+ b), then the input's and the weight's gradients
    assert [c.op for c in recorder.calls] == [aten.addmm.default, aten.mm.default, aten.mm.default]
    assert sum(c.flops for c in recorder.calls) == 3 * 2 * 4 * 6 * 10
    assert recorder.optimizer_seconds > 0 and recorder.other_seconds > 0
    bias, _, weight_t = recorder.calls[0].layouts
    assert bias == ((10,), (1,)) and weight_t == ((6, 10), (1, 6))  # the weight ran as a transposed view


def test_replays_the_same_calls_including_broadcast_and_transposed_layouts() -> None:
    calls = [
        matmul_bound.Call(aten.addmm.default, (((3, 5), (0, 1)), ((3, 4), (4, 1)), ((4, 5), (1, 4))), 120, 0.0),
        matmul_bound.Call(aten.bmm.default, (((2, 3, 4), (12, 4, 1)), ((2, 4, 5), (20, 1, 4))), 240, 0.0),
    ]
    assert matmul_bound.replay(calls, repeats=2) > 0


def test_a_seqlab_step_executes_about_the_analytic_flops(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=16, hidden_dim=32, attention_dim=32, dropout=0.1, output_vocab="target")
    model = build_model(config, src_vocab=100, tgt_vocab=100, output_ids=torch.arange(60)).train()
    optimizer = make_optimizer(model, TrainConfig())
    batches = synthetic_batches(batch_size=16, src_len=13, tgt_len=14, vocab=100, outputs=60, count=2)
    with matmul_bound.MatmulRecorder() as recorder:
        for batch in batches:
            train_step(model, optimizer, batch, bf16=False)
    tokens = sum(b.n_tokens for b in batches)
    executed = sum(c.flops for c in recorder.calls) / tokens
    analytic = flops_per_target_token(config, vocab=60, src_per_tgt=13 / 14, src_len=13)
    # the analytic count leaves out padding, the bridge and the energies' reduction; no more than that
    assert executed == pytest.approx(analytic, rel=0.25)
    shapes = matmul_bound.shape_classes(recorder.calls, top=3)
    share = lambda line: float(line.rsplit(", ", 1)[1].split("%")[0])  # noqa: E731
    assert len(shapes) == 3 and share(shapes[0]) >= share(shapes[1]) >= share(shapes[2]) > 0
