"""Tests for seqlab.train.averaging: snapshots, the last-k window and the element-wise mean."""

from __future__ import annotations

import pytest
import torch

from seqlab.train.averaging import average, keep_last, snapshot


def test_average_is_the_elementwise_mean_of_float_tensors() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = average([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(out["n"], torch.tensor(5))  # not a float: taken from the newest


def test_average_keeps_dtype_and_of_one_is_identity() -> None:
    a = {"w": torch.randn(3, 4, dtype=torch.bfloat16)}
    assert average([a])["w"].dtype == torch.bfloat16
    assert torch.equal(average([a])["w"], a["w"])
    with pytest.raises(ValueError):
        average([])


def test_keep_last_window() -> None:
    snaps: list = []
    for i in range(5):
        snaps = keep_last(snaps, {"i": torch.tensor(i)}, 3)
    assert [int(s["i"]) for s in snaps] == [2, 3, 4]
    assert keep_last(snaps, {"i": torch.tensor(9)}, 1) == []
    assert keep_last([], {"i": torch.tensor(9)}, 0) == []


def test_snapshot_is_a_copy_that_training_does_not_change() -> None:
    model = torch.nn.Linear(2, 2)
    snap = snapshot(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(snap["weight"], model.weight)
