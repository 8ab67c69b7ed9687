"""Tests for seqlab.model.encoder: the packed bidirectional LSTM."""

from __future__ import annotations

import pytest
import torch

from seqlab.model.encoder import Encoder

E, H = 12, 12


def make_encoder(layers: int = 1, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(embed_dim=E, hidden_dim=H, layers=layers, dropout=0.1).eval()


def padded(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, E) embeddings, padding filled with noise (the encoder must ignore it), and (B,) lengths."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), max(lengths), E, generator=g), torch.tensor(lengths)


@pytest.mark.parametrize("layers", [1, 2])
def test_shapes(layers: int) -> None:
    encoder = make_encoder(layers)
    embedded, lengths = padded([4, 7, 2])
    out = encoder(embedded, lengths)
    assert encoder.output_dim == 2 * H
    assert out.memory.shape == (3, 7, 2 * H)
    assert out.final_h.shape == (3, 2 * H)
    assert out.final_c.shape == (3, 2 * H)


def test_memory_is_zero_on_padding() -> None:
    out = make_encoder()(*padded([4, 7, 2]))
    assert torch.all(out.memory[0, 4:] == 0)
    assert torch.all(out.memory[2, 2:] == 0)
    assert torch.all(out.memory[1].abs().sum(-1) > 0)


@pytest.mark.parametrize("layers", [1, 2])
def test_packing_makes_a_sentence_independent_of_its_batch(layers: int) -> None:
    encoder = make_encoder(layers)
    embedded, lengths = padded([3, 9, 6, 1, 9], seed=1)
    batched = encoder(embedded, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = encoder(embedded[i : i + 1, :n], lengths[i : i + 1])
        assert torch.allclose(alone.memory[0], batched.memory[i, :n], atol=1e-6)
        assert torch.allclose(alone.final_h[0], batched.final_h[i], atol=1e-6)
        assert torch.allclose(alone.final_c[0], batched.final_c[i], atol=1e-6)


def test_final_states_are_last_forward_and_first_backward() -> None:
    """final_h joins the forward state after the last real token and the backward state at the first."""
    encoder = make_encoder()
    embedded, lengths = padded([5, 3])
    out = encoder(embedded, lengths)
    for i, n in enumerate(lengths.tolist()):
        assert torch.allclose(out.final_h[i, :H], out.memory[i, n - 1, :H], atol=1e-6)
        assert torch.allclose(out.final_h[i, H:], out.memory[i, 0, H:], atol=1e-6)


def test_unsorted_lengths() -> None:
    encoder = make_encoder()
    embedded, lengths = padded([2, 6, 4])
    # Unsorted lengths are fine (enforce_sorted=False); a reversed batch gives reversed rows.
    forward = encoder(embedded, lengths)
    backward = encoder(embedded.flip(0), lengths.flip(0))
    assert torch.allclose(forward.memory, backward.memory.flip(0), atol=1e-6)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_training_recurrence_equals_the_packed_module(rnn_type, layers, bidirectional) -> None:
    """On CPU with gradients the encoder runs its own taped recurrence; outputs,
    final states and every gradient equal one call of the module (float64)."""
    embedded, lengths = padded([3, 9, 6, 1, 8, 9], seed=2)
    embedded = embedded.double().requires_grad_()

    def run(taped: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        encoder = Encoder(embed_dim=E, hidden_dim=H, layers=layers, dropout=0.0, rnn_type=rnn_type,
                          bidirectional=bidirectional, taped=taped).double()
        out = encoder(embedded, lengths)
        parts = [out.memory, out.final_h] + ([] if out.final_c is None else [out.final_c])
        loss = sum((p * torch.linspace(-1, 2, p.numel(), dtype=p.dtype).view_as(p)).sum() for p in parts)
        return parts + list(torch.autograd.grad(loss, [embedded, *encoder.parameters()]))

    expected, got = run(False), run(True)
    assert len(expected) == len(got)
    for want, have in zip(expected, got):
        assert torch.allclose(have, want, rtol=0, atol=1e-12)




def test_lstm_runs_under_cpu_autocast_in_fp32_where_onednn_has_no_bf16_kernel(monkeypatch) -> None:
    """On CPUs without AVX-512 (AMD Zen 1, ...) oneDNN cannot build a bf16 LSTM kernel, and the call failed
    (train.cpu_bf16's validation, decode under CPU autocast): there the LSTM runs in fp32, as without autocast."""
    encoder = make_encoder()
    embedded, lengths = padded([4, 7, 2])
    with torch.no_grad():
        fp32 = encoder(embedded, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            here = encoder(embedded, lengths)  # this machine's own path, whichever it is
            monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
            without_avx512 = encoder(embedded, lengths)
    assert without_avx512.memory.dtype == torch.float32
    assert torch.equal(without_avx512.memory, fp32.memory) and torch.equal(without_avx512.final_c, fp32.final_c)
    torch.testing.assert_close(here.memory.float(), fp32.memory, atol=0.03, rtol=0.03)
