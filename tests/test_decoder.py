"""Tests for seqlab.decoder: one input-feeding step, and DecoderState's row selection."""

from __future__ import annotations

import pytest
import torch

from seqlab.decoder import Decoder, DecoderState

E, H, M, A, S = 12, 12, 24, 12, 5


def make_decoder(layers: int = 1) -> Decoder:
    torch.manual_seed(0)
    return Decoder(embed_dim=E, hidden_dim=H, memory_dim=M, attention_dim=A, layers=layers, dropout=0.1).eval()


def make_state(decoder: Decoder, lengths: list[int], layers: int = 1, seed: int = 0) -> DecoderState:
    g = torch.Generator().manual_seed(seed)
    n = len(lengths)
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    memory = torch.randn(n, S, M, generator=g) * mask.unsqueeze(-1)
    return DecoderState(
        hidden=torch.randn(layers, n, H, generator=g),
        cell=torch.randn(layers, n, H, generator=g),
        feed=torch.randn(n, H, generator=g),
        memory=memory,
        proj_keys=decoder.attention.project_keys(memory),
        src_mask=mask,
        src_ids=torch.randint(4, 20, (n, S), generator=g) * mask,
    )


@pytest.mark.parametrize("layers", [1, 2])
def test_step_shapes(layers: int) -> None:
    decoder = make_decoder(layers)
    state = make_state(decoder, [5, 2, 3], layers)
    step = decoder.step(torch.randn(3, E), state)
    feed, next_state, weights = step.feed, step.state, step.weights
    assert feed.shape == (3, H)
    assert weights.shape == (3, S)
    assert next_state.hidden.shape == (layers, 3, H)
    assert next_state.cell.shape == (layers, 3, H)
    assert torch.equal(next_state.feed, feed)
    # The encoder-side fields pass through untouched.
    assert next_state.memory is state.memory
    assert next_state.proj_keys is state.proj_keys
    assert next_state.src_mask is state.src_mask
    assert torch.allclose(weights.sum(-1), torch.ones(3), atol=1e-6)
    assert torch.all(weights[1, 2:] == 0) and torch.all(weights[2, 3:] == 0)


def test_step_rows_are_independent() -> None:
    decoder = make_decoder(2)
    state = make_state(decoder, [5, 2, 3, 4], layers=2)
    embedded = torch.randn(4, E)
    step = decoder.step(embedded, state)
    feed, weights = step.feed, step.weights
    for i in range(4):
        one = state.select(torch.tensor([i]))
        alone = decoder.step(embedded[i : i + 1], one)
        f, w = alone.feed, alone.weights
        assert torch.allclose(f[0], feed[i], atol=1e-6)
        assert torch.allclose(w[0], weights[i], atol=1e-6)


def test_select_indexes_rows_of_every_field() -> None:
    decoder = make_decoder(2)
    state = make_state(decoder, [5, 2, 3], layers=2)
    index = torch.tensor([2, 0, 0, 1])
    picked = state.select(index)
    assert torch.equal(picked.hidden, state.hidden[:, index])  # layers first: rows are dim 1
    assert torch.equal(picked.cell, state.cell[:, index])
    assert torch.equal(picked.feed, state.feed[index])
    assert torch.equal(picked.memory, state.memory[index])
    assert torch.equal(picked.proj_keys, state.proj_keys[index])
    assert torch.equal(picked.src_mask, state.src_mask[index])
    assert picked.hidden.shape == (2, 4, H) and picked.memory.shape == (4, S, M)


def test_reorder_moves_recurrent_fields_only() -> None:
    decoder = make_decoder(2)
    state = make_state(decoder, [5, 5, 2, 2], layers=2)
    index = torch.tensor([1, 1, 3, 2])  # beams of sentence 0 (rows 0-1) and sentence 1 (rows 2-3)
    moved = state.reorder(index)
    assert torch.equal(moved.hidden, state.hidden[:, index])
    assert torch.equal(moved.cell, state.cell[:, index])
    assert torch.equal(moved.feed, state.feed[index])
    assert moved.memory is state.memory
    assert moved.proj_keys is state.proj_keys
    assert moved.src_mask is state.src_mask
