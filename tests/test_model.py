"""Tests for seqlab.model.seq2seq: build_model, teacher forcing, decode_step, embedding sharing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import ModelConfig
from seqlab.model.batch import make_batch, pad
from seqlab.model.decoder import DecoderState
from seqlab.model.seq2seq import Seq2Seq, StepOutput, build_model, count_parameters, output_pieces
from seqlab.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seqlab.train.loss import batch_loss

V = 20


def tiny_config(**overrides) -> ModelConfig:
    fields = dict(embed_dim=12, hidden_dim=12, attention_dim=12, dropout=0.1)
    return ModelConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, src_vocab: int = V, tgt_vocab: int = V, output_ids: torch.Tensor | None = None,
               **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    config = tiny_config(**overrides)
    return build_model(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, output_ids=output_ids).eval()


def batch(lengths: list[int], seed: int = 0, vocab: int = V) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return pad([torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths])


@pytest.mark.parametrize("layers", [1, 2])
def test_forward_log_probs_shape(layers: int) -> None:
    model = tiny_model(encoder_layers=layers, decoder_layers=layers)
    src, lengths = batch([5, 3, 7])
    tgt_in = torch.randint(4, V, (3, 6))
    tgt_in[:, 0] = BOS_ID
    out = model(src, lengths, tgt_in)
    assert out.log_probs.shape == (3, 6, V)
    assert torch.isfinite(out.log_probs).all()
    assert torch.allclose(out.log_probs.logsumexp(-1), torch.zeros(3, 6), atol=1e-5)
    assert float(out.coverage_loss) == 0.0


def test_encode_gives_initial_state_shapes() -> None:
    model = tiny_model(decoder_layers=2)
    src, lengths = batch([5, 3])
    state = model.encode(src, lengths)
    assert isinstance(state, DecoderState)
    assert state.hidden.shape == state.cell.shape == (2, 2, 12)
    assert state.feed.shape == (2, 12) and torch.all(state.feed == 0)
    assert state.memory.shape == (2, 5, 24)
    assert state.proj_keys.shape == (2, 5, 12)
    assert torch.equal(state.src_mask, src != PAD_ID)


@pytest.mark.parametrize("tgt_vocab", [V, 9])
def test_decode_step_log_probs_are_normalized(tgt_vocab: int) -> None:
    model = tiny_model(share_embeddings=tgt_vocab == V, tgt_vocab=tgt_vocab)
    src, lengths = batch([5, 3, 1])
    state = model.encode(src, lengths)
    prev = torch.full((3,), BOS_ID)
    for _ in range(3):
        out = model.decode_step(prev, state)
        assert isinstance(out, StepOutput)
        assert out.log_probs.shape == (3, tgt_vocab) and out.log_probs.dtype == torch.float32
        assert torch.allclose(out.log_probs.logsumexp(-1), torch.zeros(3), atol=1e-5)
        assert out.attention.shape == (3, 5)
        assert torch.all(out.attention[1, 3:] == 0) and torch.all(out.attention[2, 1:] == 0)
        state, prev = out.state, out.log_probs.argmax(-1)


def test_decode_step_matches_teacher_forcing() -> None:
    """Step-by-step decoding and the one-shot forward compute the same distributions."""
    model = tiny_model(decoder_layers=2)
    src, lengths = batch([5, 2])
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, 4]])
    log_probs = model(src, lengths, tgt_in).log_probs.detach()  # training's path
    with torch.no_grad():
        state = model.encode(src, lengths)
        for t in range(tgt_in.size(1)):
            out = model.decode_step(tgt_in[:, t], state)
            assert torch.allclose(out.log_probs, log_probs[:, t], atol=1e-5)
            state = out.state


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout() -> None:
    model = tiny_model(dropout=0.5)
    src, lengths = batch([4, 6])
    tgt_in = torch.full((2, 3), BOS_ID)
    assert torch.equal(model(src, lengths, tgt_in).log_probs, model(src, lengths, tgt_in).log_probs)
    model.train()
    torch.manual_seed(1)
    first = model(src, lengths, tgt_in).log_probs
    assert not torch.equal(first, model(src, lengths, tgt_in).log_probs)


def test_share_embeddings_uses_one_matrix() -> None:
    shared = tiny_model(share_embeddings=True)
    assert shared.src_embed is shared.tgt_embed
    separate = tiny_model(share_embeddings=False)
    assert separate.src_embed is not separate.tgt_embed
    assert count_parameters(shared) == count_parameters(separate) - V * 12


def test_tie_embeddings_shares_output_weight() -> None:
    tied = tiny_model(tie_embeddings=True)
    assert tied.output.weight is tied.tgt_embed.weight
    untied = tiny_model(tie_embeddings=False)
    assert untied.output.weight is not untied.tgt_embed.weight
    assert count_parameters(tied) == count_parameters(untied) - V * 12
    # Tied with separate vocabularies: the output layer follows the target side.
    both = tiny_model(share_embeddings=False, tie_embeddings=True, src_vocab=V, tgt_vocab=9)
    assert both.output.weight is both.tgt_embed.weight
    assert both.output.weight.shape == (9, 12)


def test_share_embeddings_with_different_vocab_sizes_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.share_embeddings"):
        build_model(tiny_config(share_embeddings=True), src_vocab=V, tgt_vocab=V + 1)
    model = build_model(tiny_config(share_embeddings=False), src_vocab=V, tgt_vocab=V + 1)
    assert model.src_embed.num_embeddings == V and model.tgt_embed.num_embeddings == V + 1
    assert model.output.out_features == V + 1


def test_tie_embeddings_needs_equal_sizes() -> None:
    with pytest.raises(ConfigError, match="model.tie_embeddings"):
        tiny_config(embed_dim=12, hidden_dim=16, tie_embeddings=True)


def test_padding_embedding_is_zero() -> None:
    model = tiny_model()
    assert torch.all(model.src_embed.weight[PAD_ID] == 0)


def test_build_model_is_seeded() -> None:
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


# ---------------------------------------------------------------- architecture options

VARIANTS = [
    {"rnn_type": "gru"},
    {"rnn_type": "gru", "decoder_layers": 2, "bridge": False},
    {"attention": "general"},
    {"attention": "dot", "bidirectional": False},
    {"attention": "none"},
    {"input_feeding": False},
    {"copy": True},
    {"coverage": True},
    {"copy": True, "coverage": True, "rnn_type": "gru"},
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_every_variant_steps_like_it_trains(overrides: dict) -> None:
    """Each architecture option: normalized outputs, padding ignored, decode_step == teacher forcing."""
    model = tiny_model(**overrides)
    src, lengths = batch([5, 2])
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 8, 9, 4]])
    out = model(src, lengths, tgt_in)  # with gradients: training's taped path (fused products)
    assert torch.allclose(out.log_probs.logsumexp(-1), torch.zeros(2, 4), atol=1e-4)
    with torch.no_grad():
        state = model.encode(src, lengths)
        # the cheaper combine (context half applied to the memory once), except where copying needs the context
        assert (state.memory_out is None) == bool(overrides.get("copy"))
        for t in range(tgt_in.size(1)):
            step = model.decode_step(tgt_in[:, t], state)
            assert torch.allclose(step.log_probs, out.log_probs[:, t], atol=1e-5)
            assert torch.all(step.attention[1, 2:] == 0)
            state = step.state
    loss = -out.log_probs[:, :, 4].sum() + out.coverage_loss
    loss.backward()
    assert model.output.weight.grad is not None and torch.isfinite(model.output.weight.grad).all()


def test_gru_has_no_cell_state_and_no_bridge_starts_at_zero() -> None:
    model = tiny_model(rnn_type="gru", bridge=False)
    state = model.encode(*batch([3, 2]))
    assert state.cell is None
    assert torch.all(state.hidden == 0)


def test_copy_puts_probability_on_source_tokens() -> None:
    """With the gate forced to copy, all probability mass sits on the source's own ids."""
    model = tiny_model(copy=True)
    with torch.no_grad():
        model.copy_gate.weight.zero_()
        model.copy_gate.bias.fill_(-30.0)  # p_gen ~ 0: copy only
    src, lengths = batch([4])
    with torch.no_grad():
        step = model.decode_step(torch.tensor([BOS_ID]), model.encode(src, lengths))
    probs = step.log_probs.exp()[0]
    on_source = probs[src[0].unique()].sum()
    assert float(on_source) == pytest.approx(1.0, abs=1e-5)


def test_coverage_accumulates_attention_and_its_loss_is_nonnegative() -> None:
    model = tiny_model(coverage=True)
    src, lengths = batch([5, 3])
    state = model.encode(src, lengths)
    assert torch.all(state.coverage == 0)
    total = torch.zeros_like(state.coverage)
    prev = torch.full((2,), BOS_ID)
    for _ in range(3):
        step = model.decode_step(prev, state)
        total += step.attention
        state, prev = step.state, step.log_probs.argmax(-1)
    assert torch.allclose(state.coverage, total, atol=1e-6)
    tgt_in = torch.tensor([[BOS_ID, 5, 6], [BOS_ID, 7, PAD_ID]])
    loss = model(src, lengths, tgt_in).coverage_loss
    assert float(loss.detach()) > 0.0
    # the first step has no coverage yet, so one-step targets cost nothing
    assert float(model(src, lengths, tgt_in[:, :1]).coverage_loss.detach()) == 0.0


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"attention": "dot"}, "model.attention"),
        ({"copy": True, "attention": "none"}, "model.copy"),
        ({"coverage": True, "attention": "general"}, "model.coverage"),
    ],
)
def test_inconsistent_options_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        tiny_config(**overrides)


def test_copy_needs_a_joint_vocabulary() -> None:
    with pytest.raises(ConfigError, match="model.copy"):
        build_model(tiny_config(copy=True, share_embeddings=False), src_vocab=V, tgt_vocab=V + 3)


# ---------------------------------------------------------------- target-side output vocabulary


def test_output_pieces_are_sorted_unique_with_the_specials() -> None:
    targets = [np.array([9, 5, 9]), np.array([17, 5])]
    assert output_pieces(targets, V).tolist() == [PAD_ID, UNK_ID, BOS_ID, EOS_ID, 5, 9, 17]


def test_target_output_vocab_scores_only_its_pieces_and_steps_like_it_trains() -> None:
    ids = output_pieces([np.array([5, 6, 7, 9, 12])], V)  # 0-3, 5, 6, 7, 9, 12
    model = tiny_model(output_vocab="target", output_ids=ids)
    assert model.output.out_features == ids.numel() == 9
    src, lengths = batch([5, 2])
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7], [BOS_ID, 12, 9, 5]])
    out = model(src, lengths, tgt_in)  # embeddings read piece ids; scores are over the 9 outputs
    assert out.log_probs.shape == (2, 4, 9)
    with torch.no_grad():
        state = model.encode(src, lengths)
        for t in range(tgt_in.size(1)):
            step = model.decode_step(model.to_output(tgt_in[:, t]), state)  # search feeds back output indices
            assert torch.allclose(step.log_probs, out.log_probs[:, t], atol=1e-5)
            state = step.state
    # the loss reads targets as output indices; a piece outside the set counts as UNK
    pairs = make_batch([np.array([4, 5, 6])], [np.array([5, 12, 13])])
    log_probs = model(pairs.src, pairs.src_lengths, pairs.tgt_in).log_probs[0]
    expected = -(log_probs[0, 4] + log_probs[1, 8] + log_probs[2, UNK_ID] + log_probs[3, EOS_ID])
    assert torch.allclose(batch_loss(model, pairs), expected, atol=1e-5)
    assert model.to_output(torch.tensor([EOS_ID, 12, 13])).tolist() == [EOS_ID, 8, UNK_ID]
    assert model.piece_ids([4, 8, EOS_ID]) == [5, 12, EOS_ID]


def test_target_output_vocab_needs_its_ids_and_excludes_copy_and_the_rnns_tying() -> None:
    with pytest.raises(ValueError, match="output_ids"):
        tiny_model(output_vocab="target")
    with pytest.raises(ConfigError, match="model.output_vocab: 'target' cannot be combined with model.copy"):
        tiny_config(output_vocab="target", copy=True)
    with pytest.raises(ConfigError, match="model.tie_embeddings: with model.arch: rnn it needs model.output_vocab: full"):
        tiny_config(output_vocab="target", tie_embeddings=True)
