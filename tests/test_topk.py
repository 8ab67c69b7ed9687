"""row_topk: the same entries as torch.topk, found through group maxima."""

import pytest
import torch

from seqlab.search.topk import row_topk


@pytest.mark.parametrize("columns", [7, 128, 333, 3961, 8000, 8003])
@pytest.mark.parametrize("k", [1, 10])
def test_row_topk_equals_torch_topk(columns: int, k: int) -> None:
    g = torch.Generator().manual_seed(columns * 31 + k)
    scores = torch.randn(37, columns, generator=g).log_softmax(dim=-1)
    k = min(k, columns)
    values, indices = row_topk(scores, k)
    expected = scores.topk(k, dim=1)
    assert torch.equal(values, expected.values)
    assert torch.equal(indices, expected.indices)  # random floats: no ties


def test_row_topk_when_the_best_crowd_into_one_group() -> None:
    # columns 0, 1000, 2000, ... share a group of the 8 stripes of width 1000: the top 8 all live there
    scores = torch.full((2, 8000), -5.0)
    scores[0, torch.arange(0, 8000, 1000)] = torch.arange(8, dtype=torch.float32)
    scores[1, 4321] = 3.0
    values, indices = row_topk(scores, 8)
    assert indices[0].tolist() == list(range(7000, -1, -1000))
    assert values[0].tolist() == [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert indices[1, 0] == 4321 and values[1].tolist() == [3.0] + [-5.0] * 7


def test_row_topk_rows_of_minus_infinity_keep_their_finite_entries_first() -> None:
    scores = torch.full((1, 5000), float("-inf"))
    scores[0, 4999] = -1.0  # EOS-only rows, as force_eos leaves them
    values, indices = row_topk(scores, 10)
    assert indices[0, 0] == 4999 and values[0, 0] == -1.0
    assert torch.isinf(values[0, 1:]).all()


def test_row_topk_finds_the_best_among_the_columns_left_over_by_the_stripes() -> None:
    # 8007 columns: 8 stripes of 1000, and columns 8000-8006 outside them
    scores = torch.full((1, 8007), -5.0)
    scores[0, 8006], scores[0, 8000], scores[0, 3] = 2.0, 1.0, 0.5
    values, indices = row_topk(scores, 3)
    assert indices[0].tolist() == [8006, 8000, 3] and values[0].tolist() == [2.0, 1.0, 0.5]
