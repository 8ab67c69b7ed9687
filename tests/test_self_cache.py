"""The decoder's self-attention cache: in-place appends that never change what an older cache reads."""

from __future__ import annotations

import torch

from seqlab.model.self_cache import FIRST_CAPACITY, SelfCache

N, H, DH = 3, 2, 4


def position(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, H, 1, DH, generator=g), torch.randn(N, H, 1, DH, generator=g)


def grown(length: int, *, seed: int = 0) -> tuple[SelfCache, torch.Tensor, torch.Tensor]:
    """A cache of ``length`` positions, with the keys and values (N, H, length, Dh) it should hold."""
    cache = SelfCache.empty(N, H, DH, like=torch.zeros(()))
    keys, values = [], []
    for t in range(length):
        k, v = position(seed + t)
        cache = cache.append(k, v)
        keys.append(k)
        values.append(v)
    return cache, torch.cat(keys, dim=2), torch.cat(values, dim=2)


def test_appends_past_the_first_capacity_keep_every_position() -> None:
    cache, keys, values = grown(2 * FIRST_CAPACITY + 3)
    assert cache.length == 2 * FIRST_CAPACITY + 3
    assert torch.equal(cache.keys, keys) and torch.equal(cache.values, values)


def test_two_steps_from_one_cache_each_read_their_own_position() -> None:
    cache, keys, _ = grown(5)
    first_k, first_v = position(100)
    second_k, second_v = position(200)
    first = cache.append(first_k, first_v)
    second = cache.append(second_k, second_v)
    assert torch.equal(first.keys, torch.cat((keys, first_k), dim=2))
    assert torch.equal(second.keys, torch.cat((keys, second_k), dim=2))
    assert torch.equal(cache.keys, keys)  # the older cache still reads its 5 positions
    assert torch.equal(first.append(*position(300)).keys[:, :, :6], first.keys)


def test_rows_reorder_and_repeat_every_position() -> None:
    cache, keys, values = grown(7)
    index = torch.tensor([2, 2, 0, 1])
    picked = cache.rows(index)
    assert torch.equal(picked.keys, keys[index]) and torch.equal(picked.values, values[index])
    longer = picked.append(torch.zeros(4, H, 1, DH), torch.ones(4, H, 1, DH))
    assert torch.equal(cache.keys, keys) and longer.length == 8 and cache.length == 7
