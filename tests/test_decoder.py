"""Tests for seqlab.model.decoder (one input-feeding step) and seqlab.model.state (DecoderState's row selection)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from seqlab.model.decoder import Decoder
from seqlab.model.state import DecoderState, shared_sources

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


@pytest.mark.parametrize(
    "owner, sources, width",
    [
        ([0, 0, 0, 1, 1, 1], [0, 1], 3),
        ([2, 2, 5, 5], [2, 5], 2),
        ([1, 1, 0, 0, 1, 1], [1, 0, 1], 2),  # a source may appear in two runs
        ([0, 0, 1], [0, 0, 1], 1),  # unequal runs: one copy per row
        ([0, 1, 2], [0, 1, 2], 1),
        ([], [], 1),
    ],
)
def test_shared_sources(owner: list[int], sources: list[int], width: int) -> None:
    got, w = shared_sources(torch.tensor(owner, dtype=torch.long))
    assert got.tolist() == sources and w == width


def replicated(state: DecoderState) -> DecoderState:
    """The same state with one copy of the encoder-side fields per row."""
    owner = torch.arange(state.memory.size(0)).repeat_interleave(state.rows_per_source)
    return replace(
        state, memory=state.memory[owner], proj_keys=state.proj_keys[owner], src_mask=state.src_mask[owner],
        src_ids=state.src_ids[owner], rows_per_source=1,
    )


@pytest.mark.parametrize("attention", ["bahdanau", "general", "dot", "none"])
def test_beams_sharing_encoder_rows_step_as_if_each_had_its_own(attention: str) -> None:
    torch.manual_seed(0)
    memory_dim = H if attention == "dot" else M
    decoder = Decoder(embed_dim=E, hidden_dim=H, memory_dim=memory_dim, attention_dim=A, layers=1, dropout=0.0,
                      attention=attention, coverage=attention == "bahdanau").eval()
    g = torch.Generator().manual_seed(1)
    lengths = [5, 2, 3]
    mask = torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    memory = torch.randn(3, S, memory_dim, generator=g) * mask.unsqueeze(-1)
    state = DecoderState(
        hidden=torch.randn(1, 3, H, generator=g), cell=torch.randn(1, 3, H, generator=g), feed=torch.randn(3, H, generator=g),
        memory=memory, proj_keys=decoder.attention.project_keys(memory), src_mask=mask,
        src_ids=torch.randint(4, 20, (3, S), generator=g), coverage=torch.rand(3, S, generator=g) * mask,
    )
    beams = state.select(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))  # widen to 3 beams
    assert beams.rows_per_source == 3 and beams.memory.shape[0] == 3
    beams = beams.reorder(torch.tensor([2, 0, 1, 3, 3, 4, 8, 7, 6]))
    kept = beams.select(torch.tensor([0, 1, 2, 6, 7, 8]))  # sentence 1 finished
    assert kept.rows_per_source == 3 and kept.memory.shape[0] == 2
    assert torch.equal(kept.row_src_ids(), state.src_ids[[0, 0, 0, 2, 2, 2]])
    embedded = torch.randn(6, E, generator=g)
    with torch.no_grad():
        shared, own = decoder.step(embedded, kept), decoder.step(embedded, replicated(kept))
    assert torch.allclose(shared.feed, own.feed, atol=1e-6)
    assert torch.allclose(shared.weights, own.weights, atol=1e-6)
    assert torch.allclose(shared.context, own.context, atol=1e-6)
    if attention == "bahdanau":
        assert torch.allclose(shared.state.coverage, own.state.coverage, atol=1e-6)
