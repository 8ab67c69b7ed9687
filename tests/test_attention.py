"""Tests for seqlab.model.attention: Bahdanau attention with caller-held projected keys."""

from __future__ import annotations

import torch

from seqlab.model.attention import AttentionOutput, BahdanauAttention

B, S, DQ, DK, A = 3, 5, 12, 24, 12


def make_attention(seed: int = 0) -> BahdanauAttention:
    torch.manual_seed(seed)
    return BahdanauAttention(query_dim=DQ, key_dim=DK, attention_dim=A).eval()


def inputs(seed: int, lengths: list[int], width: int = S) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """query (B, DQ), keys = values (B, width, DK) with zeros on padding, mask (B, width)."""
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(len(lengths), DQ, generator=g)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    keys = torch.randn(len(lengths), width, DK, generator=g) * mask.unsqueeze(-1)
    return query, keys, mask


def test_shapes() -> None:
    attention = make_attention()
    query, keys, mask = inputs(0, [5, 3, 1])
    proj = attention.project_keys(keys)
    assert proj.shape == (B, S, A)
    out = attention(query, proj, keys, mask)
    assert isinstance(out, AttentionOutput)
    assert out.context.shape == (B, DK)
    assert out.weights.shape == (B, S)


def test_weights_sum_to_one_and_padding_gets_exactly_zero() -> None:
    attention = make_attention()
    query, keys, mask = inputs(1, [5, 3, 1])
    # Garbage (not zero) on the padded positions must still get no weight.
    keys = keys + (~mask).unsqueeze(-1) * 100.0
    out = attention(query, attention.project_keys(keys), keys, mask)
    assert torch.allclose(out.weights.sum(dim=-1), torch.ones(B), atol=1e-6)
    assert torch.all(out.weights[~mask] == 0.0)
    assert torch.all(out.weights[mask] > 0.0)
    assert torch.equal(out.weights[2], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))  # one real token
    # The context is the weighted sum of the real values only.
    expected = torch.einsum("bs,bsd->bd", out.weights, keys * mask.unsqueeze(-1))
    assert torch.allclose(out.context, expected, atol=1e-5)


def test_padding_width_does_not_change_the_result() -> None:
    attention = make_attention()
    query, keys, mask = inputs(2, [3, 2], width=3)
    wide_keys = torch.cat((keys, torch.randn(2, 4, DK)), dim=1)
    wide_mask = torch.cat((mask, torch.zeros(2, 4, dtype=torch.bool)), dim=1)
    narrow = attention(query, attention.project_keys(keys), keys, mask)
    wide = attention(query, attention.project_keys(wide_keys), wide_keys, wide_mask)
    assert torch.allclose(narrow.weights, wide.weights[:, :3], atol=1e-6)
    assert torch.allclose(narrow.context, wide.context, atol=1e-6)


def test_no_state_between_calls() -> None:
    """Different key sets in any order give the same results: nothing is cached on the module."""
    attention = make_attention()
    sets = [inputs(seed, lengths) for seed, lengths in [(3, [5, 4, 2]), (4, [1, 5, 3]), (5, [2, 2, 5])]]
    params_before = {k: v.clone() for k, v in attention.state_dict().items()}
    buffers_before = [name for name, _ in attention.named_buffers()]

    def run(order: list[int]) -> dict[int, AttentionOutput]:
        out = {}
        for i in order:
            query, keys, mask = sets[i]
            out[i] = attention(query, attention.project_keys(keys), keys, mask)
        return out

    forward, backward, again = run([0, 1, 2]), run([2, 1, 0]), run([1, 0, 2])
    for i in range(3):
        for other in (backward, again):
            assert torch.equal(forward[i].weights, other[i].weights)
            assert torch.equal(forward[i].context, other[i].context)
    # Projected keys of one set used with another set's query: still a function of the arguments only.
    q0, k0, m0 = sets[0]
    q1, _, _ = sets[1]
    proj0 = attention.project_keys(k0)
    first = attention(q1, proj0, k0, m0)
    attention(q0, attention.project_keys(sets[2][1]), sets[2][1], sets[2][2])
    assert torch.equal(attention(q1, proj0, k0, m0).weights, first.weights)
    assert [name for name, _ in attention.named_buffers()] == buffers_before == []
    assert not [name for name, value in vars(attention).items() if isinstance(value, torch.Tensor)]
    for k, v in attention.state_dict().items():
        assert torch.equal(v, params_before[k])


def test_project_keys_is_the_key_projection() -> None:
    attention = make_attention()
    _, keys, _ = inputs(6, [5, 5, 5])
    assert torch.allclose(attention.project_keys(keys), keys @ attention.key_proj.weight.T)
