"""Tests for seqlab.search.scores.block_adjacent_repeats: no n-gram right after itself."""

from __future__ import annotations

import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import DecodeConfig
from seqlab.search.scores import NEG_INF, block_adjacent_repeats, constrain

V = 8


def banned(tokens: list[int], max_n: int) -> set[int]:
    out = block_adjacent_repeats(torch.zeros(1, V), torch.tensor([tokens], dtype=torch.long), max_n)
    return set((out[0] == NEG_INF).nonzero().view(-1).tolist())


@pytest.mark.parametrize(("tokens", "max_n", "expected"), [
    ([], 2, set()),
    ([4], 1, {4}),  # "ar" then "ar"
    ([4], 0, set()),  # off
    ([4, 5], 1, {5}),
    ([4, 5], 2, {5}),  # "a b" may go on as "a b a" ...
    ([4, 5, 4], 2, {4, 5}),  # ... but not "a b a b"; nor "a a"
    ([4, 5, 6, 4, 5], 3, {5, 6}),  # "a b c a b" -> no "c"; and no "b b"
    ([4, 5, 6, 4, 5], 2, {5}),  # a trigram repeat needs max_n 3
])
def test_block_adjacent_repeats(tokens: list[int], max_n: int, expected: set[int]) -> None:
    assert banned(tokens, max_n) == expected


def test_a_phrase_may_come_back_later() -> None:
    """Unlike no_repeat_ngram, a repeat that is not adjacent stays allowed."""
    assert 4 not in banned([4, 5, 6], 2)


def test_constrain_applies_it_per_row() -> None:
    config = DecodeConfig(no_adjacent_repeat=1, max_length=10)
    tokens = torch.tensor([[4, 5], [5, 4]])
    out = constrain(torch.zeros(2, V), tokens=tokens, limits=torch.tensor([10, 10]), minimums=torch.zeros(2, dtype=torch.long),
                    config=config)
    assert out[0, 5] == NEG_INF and out[1, 4] == NEG_INF and out[0, 4] == 0 and out[1, 5] == 0


def test_negative_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"decode\.no_adjacent_repeat"):
        DecodeConfig(no_adjacent_repeat=-1)
