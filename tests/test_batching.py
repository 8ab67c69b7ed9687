"""Tests for seqlab.model.batch: padding, teacher-forcing batches, token-based buckets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.model.batch import Batch, make_batch, pad
from seqlab.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqlab.train.batches import bucket_indices


def arrays(*rows: list[int]) -> list[np.ndarray]:
    return [np.asarray(row, dtype=np.int32) for row in rows]


# ---------------------------------------------------------------- pad


def test_pad_shapes_and_values() -> None:
    padded, lengths = pad([[5, 6, 7], [8], [9, 10]])
    assert padded.dtype == torch.long
    assert lengths.dtype == torch.long
    assert padded.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID], [9, 10, PAD_ID]]
    assert lengths.tolist() == [3, 1, 2]


def test_pad_accepts_int32_arrays() -> None:
    padded, lengths = pad(arrays([4, 5], [6]))
    assert padded.tolist() == [[4, 5], [6, PAD_ID]]
    assert lengths.tolist() == [2, 1]


def test_pad_all_empty_keeps_one_column() -> None:
    padded, lengths = pad([[], []])
    assert padded.shape == (2, 1)
    assert padded.tolist() == [[PAD_ID], [PAD_ID]]
    assert lengths.tolist() == [0, 0]


# ---------------------------------------------------------------- make_batch


def test_make_batch_layout() -> None:
    src = arrays([10, 11, 12], [13])
    tgt = arrays([20], [21, 22, 23])
    batch = make_batch(src, tgt)
    assert batch.src.tolist() == [[10, 11, 12], [13, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 20, PAD_ID, PAD_ID], [BOS_ID, 21, 22, 23]]
    assert batch.tgt_out.tolist() == [[20, EOS_ID, PAD_ID, PAD_ID], [21, 22, 23, EOS_ID]]
    assert batch.tgt_in.shape == batch.tgt_out.shape == (2, 4)
    assert batch.n_tokens == 2 + 4  # target tokens plus EOS, padding excluded


def test_make_batch_invariants() -> None:
    rng = np.random.default_rng(0)
    tgt = [rng.integers(4, 50, size=n).astype(np.int32) for n in (1, 4, 2, 7, 3)]
    src = [rng.integers(4, 50, size=n).astype(np.int32) for n in (2, 2, 5, 1, 3)]
    batch = make_batch(src, tgt)
    assert (batch.tgt_in[:, 0] == BOS_ID).all()
    for row, target in enumerate(tgt):
        n = len(target)
        assert batch.tgt_in[row, 1 : n + 1].tolist() == target.tolist()
        assert batch.tgt_out[row, :n].tolist() == target.tolist()
        assert int(batch.tgt_out[row, n]) == EOS_ID
        assert (batch.tgt_out[row, n + 1 :] == PAD_ID).all()
        assert (batch.tgt_in[row, n + 1 :] == PAD_ID).all()
        # teacher forcing: the input is the output shifted right by one
        assert batch.tgt_in[row, 1 : n + 1].tolist() == batch.tgt_out[row, :n].tolist()
    assert batch.n_tokens == sum(len(t) + 1 for t in tgt)


def test_batch_to_device_keeps_values() -> None:
    batch = make_batch(arrays([4, 5]), arrays([6]))
    moved = batch.to(torch.device("cpu"))
    assert isinstance(moved, Batch)
    assert torch.equal(moved.tgt_out, batch.tgt_out)
    assert torch.equal(moved.src_lengths, batch.src_lengths)


# ---------------------------------------------------------------- bucket_indices


def lengths(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 20, size=n), rng.integers(1, 20, size=n)


def padded_tokens(batch: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> int:
    """What one batch costs: its size times its longest side (target counted with BOS/EOS)."""
    return len(batch) * max(int(src[batch].max()), int(tgt[batch].max()) + 1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_buckets_cover_every_index_once(seed: int | None) -> None:
    src, tgt = lengths(3)
    batches = bucket_indices(src, tgt, batch_tokens=50, generator=None if seed is None else generator(seed))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(src)))
    assert all(len(b) > 0 for b in batches)


@pytest.mark.parametrize("batch_tokens", [20, 50, 200])
def test_buckets_respect_batch_tokens(batch_tokens: int) -> None:
    src, tgt = lengths(4)
    for gen in (None, generator(5)):
        for batch in bucket_indices(src, tgt, batch_tokens=batch_tokens, generator=gen):
            assert padded_tokens(batch, src, tgt) <= batch_tokens or len(batch) == 1


def test_oversize_item_is_a_batch_of_its_own() -> None:
    src = np.array([2, 2, 30, 2])
    tgt = np.array([2, 2, 2, 2])
    batches = bucket_indices(src, tgt, batch_tokens=10, generator=None)
    assert [b.tolist() for b in batches] == [[0, 1, 3], [2]]


def test_buckets_fill_up_to_the_limit() -> None:
    # Every pair costs 4 padded tokens (target 3 + 1), so 12 tokens hold exactly 3 pairs.
    src = np.full(7, 2)
    tgt = np.full(7, 3)
    batches = bucket_indices(src, tgt, batch_tokens=12, generator=None)
    assert [len(b) for b in batches] == [3, 3, 1]


def test_buckets_deterministic_for_a_seed() -> None:
    src, tgt = lengths(6)
    first = bucket_indices(src, tgt, batch_tokens=60, generator=generator(11))
    second = bucket_indices(src, tgt, batch_tokens=60, generator=generator(11))
    assert [b.tolist() for b in first] == [b.tolist() for b in second]


def test_buckets_differ_between_seeds() -> None:
    src, tgt = lengths(6)
    first = bucket_indices(src, tgt, batch_tokens=60, generator=generator(11))
    second = bucket_indices(src, tgt, batch_tokens=60, generator=generator(12))
    assert [b.tolist() for b in first] != [b.tolist() for b in second]


def test_one_generator_gives_a_new_order_each_epoch() -> None:
    src, tgt = lengths(6)
    gen = generator(11)
    epoch1 = bucket_indices(src, tgt, batch_tokens=60, generator=gen)
    epoch2 = bucket_indices(src, tgt, batch_tokens=60, generator=gen)
    assert [b.tolist() for b in epoch1] != [b.tolist() for b in epoch2]


def test_without_generator_sorted_by_length() -> None:
    src, tgt = lengths(7)
    batches = bucket_indices(src, tgt, batch_tokens=60, generator=None)
    order = np.concatenate(batches)
    # Sorted by target length, then source length, then index: fully deterministic.
    keys = [(int(tgt[i]), int(src[i]), int(i)) for i in order]
    assert keys == sorted(keys)
    again = bucket_indices(src, tgt, batch_tokens=60, generator=None)
    assert [b.tolist() for b in again] == [b.tolist() for b in batches]


def test_shuffled_batches_still_group_similar_lengths() -> None:
    src, tgt = lengths(8, n=200)
    batches = bucket_indices(src, tgt, batch_tokens=80, generator=generator(3))
    # Within a batch the target lengths come from a contiguous run of the sorted order.
    spread = max(int(tgt[b].max() - tgt[b].min()) for b in batches)
    assert spread <= 2
