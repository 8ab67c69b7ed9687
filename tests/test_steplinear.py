"""Tests for seqlab.model.tape: deferred weight gradients equal plain autograd's, exactly."""

from __future__ import annotations

import pytest
import torch

from seqlab.core.run_config import ModelConfig
from seqlab.model.attention import Attention, AttentionOutput, masked_softmax
from seqlab.model.batch import make_batch
from seqlab.model.seq2seq import build_model
from seqlab.model.tape import WeightGradTape
from seqlab.train.loss import batch_loss

V = 30

CONFIGS = [
    dict(rnn_type="lstm", attention="bahdanau"),
    dict(rnn_type="gru", attention="general", encoder_layers=2, decoder_layers=2, bridge=False),
    dict(rnn_type="lstm", attention="bahdanau", decoder_layers=2, coverage=True, copy=True, share_embeddings=True),
    dict(rnn_type="gru", attention="bahdanau", input_feeding=False, coverage=True),
    dict(rnn_type="lstm", attention="dot", bidirectional=False, input_feeding=False),
    dict(rnn_type="lstm", attention="none", tie_embeddings=True, embed_dim=12),
]


def model_and_batch(overrides: dict, dtype=torch.float64, *, taped: bool = True):
    """taped=False: the reference, every step under ordinary autograd (the same weights)."""
    torch.manual_seed(0)
    fields = dict(embed_dim=10, hidden_dim=12, attention_dim=8, dropout=0.0)
    config = ModelConfig(**{**fields, **overrides})
    model = build_model(config, src_vocab=V, tgt_vocab=V, taped=taped).to(dtype)
    g = torch.Generator().manual_seed(1)
    batch = make_batch(
        [torch.randint(4, V, (n,), generator=g).numpy() for n in (5, 2, 7, 4)],
        [torch.randint(4, V, (n,), generator=g).numpy() for n in (3, 6, 1, 5)],
    )
    return model, batch


def gradients(model, batch, *, autocast: bool = False) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = batch_loss(model, batch, smoothing=0.1)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_taped_gradients_equal_plain_autograd(overrides: dict) -> None:
    model, batch = model_and_batch(overrides)
    loss, taped = gradients(model, batch)
    ref_loss, plain = gradients(*model_and_batch(overrides, taped=False))
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert taped.keys() == plain.keys()
    for name in plain:
        assert torch.allclose(taped[name], plain[name], rtol=0, atol=1e-12), name


def graph(tensor: torch.Tensor) -> set:
    """Every autograd node ``tensor`` was computed through."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(next_node for next_node, _ in node.next_functions)
    return seen


def names(nodes: set) -> set[str]:
    return {type(node).__name__ for node in nodes}


@pytest.mark.parametrize("taped", [True, False])
def test_taped_chooses_how_training_multiplies(taped: bool) -> None:
    """``build_model(taped=...)`` reaches the encoder and the decoder: with it, the encoder's
    recurrence and the decoder's products and context go through tapes; without, none does."""
    model, batch = model_and_batch(CONFIGS[0], taped=taped)
    state = model.encode(batch.src, batch.src_lengths)
    assert ("_TapedMatmulBackward" in names(graph(state.memory))) == taped
    steps = model.decoder.teacher_force(model.tgt_embed(batch.tgt_in), state)
    decoder_only = names(graph(steps[-1].feed) - graph(state.memory))
    assert ("_TapedMatmulBackward" in decoder_only) == taped
    assert ("_TapedContextBackward" in decoder_only) == taped


class ScaledDot(Attention):
    """A kind of attention the package does not have, defined only by the Attention interface:
    softmax(W q . k / sqrt(A)) with a query weight, so training fuses and tapes that weight."""

    def __init__(self, *, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_proj = torch.nn.Linear(query_dim, key_dim, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return keys

    def query_weight(self) -> torch.Tensor:
        return self.query_proj.weight

    def attend(self, query, proj_keys, values, mask, coverage=None, *, tape=None) -> AttentionOutput:
        n, _, a = proj_keys.shape
        scores = torch.bmm(query.view(n, -1, a), proj_keys.transpose(1, 2)) / a**0.5
        weights = masked_softmax(scores, mask.unsqueeze(1)).to(values.dtype)
        context = torch.bmm(weights, values) if tape is None or tape.values is None else tape.attend(weights)
        return AttentionOutput(context=context.view(-1, values.size(-1)), weights=weights.view(-1, weights.size(-1)))


@pytest.mark.parametrize("copy", [False, True])
def test_a_new_attention_is_added_in_one_place_and_trains_taped(copy: bool) -> None:
    """Swapping in an attention written against Attention alone, the taped and the module steps agree."""
    grads = []
    for taped in (True, False):
        overrides = dict(rnn_type="lstm", attention="general", decoder_layers=2, copy=copy, share_embeddings=copy)
        model, batch = model_and_batch(overrides, taped=taped)
        torch.manual_seed(2)
        model.decoder.attention = ScaledDot(query_dim=12, key_dim=model.config.memory_dim).double()
        grads.append(gradients(model, batch))
    (loss, taped), (ref_loss, plain) = grads
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert "decoder.attention.query_proj.weight" in plain
    for name in plain:
        assert torch.allclose(taped[name], plain[name], rtol=0, atol=1e-12), name


def test_taped_gradients_under_bf16_autocast_are_as_accurate_as_plain_autocast() -> None:
    overrides = dict(rnn_type="lstm", attention="bahdanau")
    model, batch = model_and_batch(overrides, dtype=torch.float32)
    reference, _ = model_and_batch(overrides, dtype=torch.float32, taped=False)
    _, exact = gradients(reference, batch)
    loss, taped = gradients(model, batch, autocast=True)
    ref_loss, plain = gradients(reference, batch, autocast=True)
    assert abs(loss - ref_loss) <= 1e-2 * abs(ref_loss)
    for name in plain:
        assert taped[name].dtype == torch.float32
        # bf16 rounding differs between one sequence-long matmul and T per-step ones;
        # measured against the fp32 gradient, the tape's error is no larger
        taped_err = (taped[name] - exact[name]).norm().item()
        plain_err = (plain[name] - exact[name]).norm().item()
        if name.startswith("encoder.rnn.") and torch.backends.cpu.get_cpu_capability() != "AVX512":
            # Without AVX-512 the module's LSTM runs in fp32 under autocast (runtime.lstm_autocast),
            # so there is no bf16 error to compare with: the tape's must stay at bf16's scale.
            assert taped_err <= 1e-2 * exact[name].norm().item(), name
            continue
        assert taped_err <= 1.5 * plain_err + 1e-3 * exact[name].norm().item(), name


def test_under_bf16_autocast_the_recurrent_states_stay_fp32() -> None:
    """The products run in bf16, but gates sum and cell states carry over steps in fp32."""
    model, batch = model_and_batch(dict(rnn_type="lstm", attention="bahdanau"), dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        state = model.encode(batch.src, batch.src_lengths)
        steps = model.decoder.teacher_force(model.tgt_embed(batch.tgt_in), state)
    assert state.memory.dtype == torch.float32
    assert steps[-1].state.cell.dtype == torch.float32 and steps[-1].state.hidden.dtype == torch.float32


def test_no_tape_without_gradients() -> None:
    model, batch = model_and_batch(CONFIGS[0])
    with torch.no_grad():
        out = model(batch.src, batch.src_lengths, batch.tgt_in)
    assert out.log_probs.grad_fn is None


def test_a_step_outside_the_anchor_raises_instead_of_a_partial_gradient() -> None:
    w = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    x0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    side = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    tape = WeightGradTape([w])
    late = tape.linear(w, side)  # does not pass through the anchor, so backward may reach it after
    (h,) = tape.anchor(x0)
    with pytest.raises(RuntimeError, match="1 of 2 steps reached before the anchor"):
        (tape.linear(w, h).sum() + late.sum()).backward()


def test_sequence_of_steps_gives_the_summed_weight_gradient() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, 4, dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64)

    def run(tape: WeightGradTape | None) -> torch.Tensor:
        h = h0 if tape is None else tape.anchor(h0)[0]
        total = h.new_zeros(())
        for _ in range(5):
            y = h @ w.t() if tape is None else tape.linear(w, h)
            h = torch.tanh(y) @ u.t()
            total = total + h.square().sum()
        return total

    run(None).backward()
    plain, w.grad = w.grad.clone(), None
    run(WeightGradTape([w])).backward()
    assert torch.allclose(w.grad, plain, rtol=0, atol=1e-12)


def test_attend_defers_the_values_gradient_to_one_matmul() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    encoder_in = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64)

    def run(taped: bool) -> torch.Tensor:
        values = torch.tanh(encoder_in)  # (B, S, D): not a leaf, as the encoder's states are not
        tape = WeightGradTape([w], values=values) if taped else None
        h = h0 if tape is None else tape.anchor(h0)[0]
        total = h.new_zeros(())
        for _ in range(4):
            scores = torch.bmm(values, h.unsqueeze(2)).squeeze(2)  # (B, S)
            weights = torch.softmax(scores, dim=-1).unsqueeze(1)  # (B, 1, S)
            context = torch.bmm(weights, values) if tape is None else tape.attend(weights)
            h = torch.tanh(context.squeeze(1) @ w.t() if tape is None else tape.linear(w, context.squeeze(1)))
            total = total + h.square().sum()
        return total

    run(False).backward()
    plain = (w.grad.clone(), encoder_in.grad.clone())
    w.grad = encoder_in.grad = None
    run(True).backward()
    assert torch.allclose(w.grad, plain[0], rtol=0, atol=1e-12)
    assert torch.allclose(encoder_in.grad, plain[1], rtol=0, atol=1e-12)
