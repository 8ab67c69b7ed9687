"""The Transformer (model/transformer.py): exact padding masks, incremental decoding equal to teacher forcing."""

from __future__ import annotations

import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import ModelConfig
from seqlab.model.batch import pad
from seqlab.model.seq2seq import build_model
from seqlab.model.transformer import Transformer
from seqlab.tokenizer import BOS_ID, PAD_ID

VOCAB = 23


def tiny(**overrides) -> ModelConfig:
    base = dict(arch="transformer", model_dim=16, heads=4, ff_dim=24, encoder_layers=2, decoder_layers=2,
                dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, max_positions=40)
    return ModelConfig(**{**base, **overrides})


def make(config: ModelConfig, seed: int = 0, output_ids: torch.Tensor | None = None) -> Transformer:
    torch.manual_seed(seed)
    model = build_model(config, src_vocab=VOCAB, tgt_vocab=VOCAB, output_ids=output_ids)
    assert isinstance(model, Transformer)
    return model.eval()


SOURCES = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
TARGETS = [[BOS_ID, 7, 8, 9, 4], [BOS_ID, 12, 11, 4, 5, 6, 17], [BOS_ID, 20]]
VARIANTS = {
    "pre-sinusoidal": {},
    "post-learned-gelu": dict(norm="post", positions="learned", activation="gelu"),
    "unshared-tied-unscaled": dict(share_embeddings=False, tie_embeddings=True, scale_embeddings=False),
    "one-layer": dict(encoder_layers=1, decoder_layers=1),
    "copy": dict(copy=True),
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_padding_changes_no_encoder_state(overrides: dict) -> None:
    model = make(tiny(**overrides))
    batch, _ = pad(SOURCES)
    states = model.encoder_states(batch, batch != PAD_ID)
    for row, sentence in enumerate(SOURCES):
        alone = torch.tensor([sentence])
        own = model.encoder_states(alone, alone != PAD_ID)[0]
        torch.testing.assert_close(states[row, : len(sentence)], own, rtol=0, atol=1e-6)


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_incremental_steps_equal_teacher_forcing_at_every_position(overrides: dict) -> None:
    model = make(tiny(**overrides))
    src, src_lengths = pad(SOURCES)
    tgt_in, _ = pad(TARGETS)
    with torch.no_grad():
        forced = model(src, src_lengths, tgt_in).log_probs  # (B, T, V)
        state = model.encode(src, src_lengths)
        for t in range(tgt_in.size(1)):
            step = model.decode_step(tgt_in[:, t], state)
            state = step.state
            assert state.position == t + 1
            torch.testing.assert_close(step.log_probs, forced[:, t], rtol=0, atol=1e-5)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied-rows"])
def test_incremental_steps_equal_teacher_forcing_in_the_target_output_space(tied: bool) -> None:
    output_ids = torch.tensor([0, 1, 2, 3, 7, 8, 9, 11, 12, 20])
    model = make(tiny(output_vocab="target", tie_embeddings=tied), output_ids=output_ids)
    src, src_lengths = pad(SOURCES[:1])
    tgt_pieces = torch.tensor([[BOS_ID, 7, 20, 9]])
    with torch.no_grad():
        forced = model(src, src_lengths, tgt_pieces).log_probs
        assert forced.shape == (1, 4, output_ids.numel())
        state = model.encode(src, src_lengths)
        for t, piece in enumerate(tgt_pieces[0].tolist()):
            step = model.decode_step(model.to_output(torch.tensor([piece])), state)
            state = step.state
            torch.testing.assert_close(step.log_probs, forced[:, t], rtol=0, atol=1e-5)


def test_tied_target_outputs_are_the_embedding_rows_of_their_pieces_as_the_optimizer_leaves_them() -> None:
    output_ids = torch.tensor([0, 1, 2, 3, 7, 8, 9, 11, 12, 20])
    model = make(tiny(output_vocab="target", tie_embeddings=True, share_embeddings=False), output_ids=output_ids)
    assert [name for name, _ in model.output.named_parameters()] == ["bias"]
    src, src_lengths = pad(SOURCES[:1])
    prev = torch.tensor([BOS_ID])

    def step_and_expected() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            state = model.encode(src, src_lengths)
            hidden = model._decode(model._embed(model.tgt_embed, prev.unsqueeze(1), 0), state,
                                 cache=state.cache.advance()).hidden
            logits = hidden[:, 0] @ model.tgt_embed.weight[output_ids].T + model.output.bias
            return model.decode_step(prev, state).log_probs, torch.log_softmax(logits, -1)

    torch.testing.assert_close(*step_and_expected())
    before = step_and_expected()[0]
    # fused Adam updates the weights in place without bumping their version: nothing may keep stale rows
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    model.train()
    model(src, src_lengths, torch.tensor([[BOS_ID, 5, 6]])).log_probs[..., 9].sum().backward()
    used = model.tgt_embed.weight.grad.abs().sum(-1)
    assert used[20] > 0  # an output piece the decoder never read: only the output rows reach it
    assert used[5] > 0 and used[6] > 0  # input pieces outside the output space: only their embedding use
    assert used[10] == 0  # in neither
    optimizer.step()
    model.eval()
    after, expected = step_and_expected()
    torch.testing.assert_close(after, expected)
    assert not torch.allclose(after, before)


@pytest.mark.parametrize("copy", [False, True], ids=["cross-attention", "copy-head"])
def test_step_attention_is_a_distribution_over_the_real_source_pieces(copy: bool) -> None:
    model = make(tiny(copy=copy))
    src, src_lengths = pad(SOURCES)
    with torch.no_grad():
        step = model.decode_step(torch.full((3,), BOS_ID), model.encode(src, src_lengths))
    assert step.attention.shape == (3, src.size(1))
    torch.testing.assert_close(step.attention.sum(-1), torch.ones(3))
    assert bool((step.attention[src == PAD_ID] == 0).all())


@pytest.mark.parametrize("copy", [False, True], ids=["plain", "copy"])
def test_beams_sharing_a_source_decode_as_their_own_copies(copy: bool) -> None:
    """select() widens each sentence to 3 beams that share its encoder rows; rows decode as if alone."""
    model = make(tiny(copy=copy))
    src, src_lengths = pad(SOURCES)
    rows = torch.arange(3).repeat_interleave(3)
    with torch.no_grad():
        shared = model.encode(src, src_lengths).select(rows)
        assert shared.rows_per_source == 3 and shared.cross[0].keys.size(0) == 3
        copied = model.encode(src[rows], src_lengths[rows])
        tokens = torch.tensor([BOS_ID] * 9)
        for _ in range(3):
            a, b = model.decode_step(tokens, shared), model.decode_step(tokens, copied)
            torch.testing.assert_close(a.log_probs, b.log_probs, rtol=0, atol=1e-5)
            torch.testing.assert_close(a.attention, b.attention, rtol=0, atol=1e-6)
            tokens = a.log_probs.argmax(-1)
            order = torch.tensor([2, 0, 1, 3, 3, 4, 8, 7, 6])  # back-pointers within each sentence
            shared, copied = a.state.reorder(order), b.state.select(order)
            tokens = tokens[order]


@pytest.mark.parametrize("copy", [False, True], ids=["plain", "copy"])
def test_training_mode_uses_dropout_and_gradients_reach_every_parameter(copy: bool) -> None:
    model = make(tiny(copy=copy)).train()
    src, src_lengths = pad(SOURCES)
    tgt_in, _ = pad(TARGETS)
    first, second = model(src, src_lengths, tgt_in).scores, model(src, src_lengths, tgt_in).scores
    assert not torch.equal(first, second)
    first.logsumexp(-1).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("which", ["dropout", "attention_dropout", "activation_dropout"])
def test_each_dropout_key_alone_makes_training_passes_differ(which: str) -> None:
    """Every dropout reaches the model on its own: with the other two at 0, passes differ only through it."""
    quiet = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    src, src_lengths = pad(SOURCES)
    tgt_in, _ = pad(TARGETS)
    silent = make(tiny(**quiet)).train()
    assert torch.equal(silent(src, src_lengths, tgt_in).scores, silent(src, src_lengths, tgt_in).scores)
    model = make(tiny(**{**quiet, which: 0.5})).train()
    assert not torch.equal(model(src, src_lengths, tgt_in).scores, model(src, src_lengths, tgt_in).scores)


def test_positions_beyond_max_positions_are_a_one_line_error() -> None:
    model = make(tiny(max_positions=5, positions="learned"))
    src = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with pytest.raises(ConfigError, match=r"model\.max_positions: position 5 asked for, the model has 5"):
        model.encode(src, torch.tensor([6]))


def test_copying_alone_puts_the_copy_attention_on_the_source_pieces() -> None:
    """With the gate shut (p_gen = 0) the output distribution is the copy head's attention, summed per piece."""
    model = make(tiny(copy=True))
    with torch.no_grad():
        model.copy_head.gate.bias.fill_(-100.0)
    src, src_lengths = pad(SOURCES)
    with torch.no_grad():
        step = model.decode_step(torch.full((3,), BOS_ID), model.encode(src, src_lengths))
    expected = torch.zeros(3, VOCAB).scatter_add(1, src, step.attention)
    torch.testing.assert_close(step.log_probs.exp(), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(step.log_probs.logsumexp(-1), torch.zeros(3), rtol=0, atol=1e-5)
