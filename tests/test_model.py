"""Tests for seqlab.model: build_model, teacher forcing, decode_step, embedding sharing."""

from __future__ import annotations

import pytest
import torch

from seqlab.batching import pad
from seqlab.config import ModelConfig
from seqlab.decoder import DecoderState
from seqlab.errors import ConfigError
from seqlab.model import Seq2Seq, StepOutput, build_model, count_parameters
from seqlab.tokenizer import BOS_ID, PAD_ID

V = 20


def tiny_config(**overrides) -> ModelConfig:
    fields = dict(embed_dim=12, hidden_dim=12, attention_dim=12, dropout=0.1)
    return ModelConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, src_vocab: int = V, tgt_vocab: int = V, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    return build_model(tiny_config(**overrides), src_vocab=src_vocab, tgt_vocab=tgt_vocab).eval()


def batch(lengths: list[int], seed: int = 0, vocab: int = V) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return pad([torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths])


@pytest.mark.parametrize("layers", [1, 2])
def test_forward_logits_shape(layers: int) -> None:
    model = tiny_model(encoder_layers=layers, decoder_layers=layers)
    src, lengths = batch([5, 3, 7])
    tgt_in = torch.randint(4, V, (3, 6))
    tgt_in[:, 0] = BOS_ID
    logits = model(src, lengths, tgt_in)
    assert logits.shape == (3, 6, V)
    assert torch.isfinite(logits).all()


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
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
        state = model.encode(src, lengths)
        for t in range(tgt_in.size(1)):
            out = model.decode_step(tgt_in[:, t], state)
            assert torch.allclose(out.log_probs, torch.log_softmax(logits[:, t], -1), atol=1e-5)
            state = out.state


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout() -> None:
    model = tiny_model(dropout=0.5)
    src, lengths = batch([4, 6])
    tgt_in = torch.full((2, 3), BOS_ID)
    assert torch.equal(model(src, lengths, tgt_in), model(src, lengths, tgt_in))
    model.train()
    torch.manual_seed(1)
    first = model(src, lengths, tgt_in)
    assert not torch.equal(first, model(src, lengths, tgt_in))


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
