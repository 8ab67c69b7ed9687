"""Search options beyond plain beam search: length bounds, n-gram blocking, coverage penalty, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from test_search import ARCH_CONFIGS, decisive, each_arch

from seqlab.core.run_config import DecodeConfig
from seqlab.model.batch import pad
from seqlab.model.seq2seq import build_model
from seqlab.search.beam import sample_search, search
from seqlab.search.scores import (
    NEG_INF,
    block_repeats,
    coverage_penalty,
    filter_distribution,
    forbid_eos,
    max_lengths,
    min_lengths,
)
from seqlab.search.texts import batches
from seqlab.tokenizer import EOS_ID

VOCAB = 30


def tiny_model(seed: int = 4, arch: str = "rnn"):
    torch.manual_seed(seed)
    return decisive(build_model(ARCH_CONFIGS[arch], src_vocab=VOCAB, tgt_vocab=VOCAB), arch, rnn_output_gain=1.0)


def sources(seed: int = 0, count: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return pad([torch.randint(4, VOCAB, (int(n),), generator=g).tolist() for n in torch.randint(2, 10, (count,), generator=g)])


def ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ---------------------------------------------------------------- pure helpers


def test_block_repeats_bans_the_token_that_would_repeat_an_ngram() -> None:
    log_probs = torch.zeros(2, 10)
    tokens = torch.tensor([[5, 6, 7, 5], [5, 6, 7, 8]])
    blocked = block_repeats(log_probs, tokens, 2)
    assert blocked[0, 6] == NEG_INF  # "5 6" is there, and the row ends in 5
    assert torch.isfinite(blocked[0, [0, 1, 2, 3, 4, 5, 7, 8, 9]]).all()
    assert torch.isfinite(blocked[1]).all()  # row 1 ends in 8, never seen before
    trigram = block_repeats(log_probs, torch.tensor([[1, 2, 3, 1, 2]]).repeat(2, 1), 3)
    assert trigram[0, 3] == NEG_INF and torch.isfinite(trigram[0, :3]).all()
    unigram = block_repeats(log_probs, tokens, 1)
    assert (unigram[0, [5, 6, 7]] == NEG_INF).all() and unigram[0, 8] == 0
    assert block_repeats(log_probs, tokens, 0) is log_probs
    assert block_repeats(log_probs, tokens[:, :1], 2) is log_probs  # no complete bigram yet


def test_forbid_eos_and_min_lengths() -> None:
    log_probs = torch.zeros(3, 6)
    out = forbid_eos(log_probs, torch.tensor([True, False, True]))
    assert out[0, EOS_ID] == NEG_INF and out[2, EOS_ID] == NEG_INF and out[1, EOS_ID] == 0
    cfg = DecodeConfig(min_length=2, min_length_ratio=0.5)
    assert min_lengths(torch.tensor([1, 4, 9]), cfg).tolist() == [2, 2, 4]


def test_coverage_penalty_hand_values() -> None:
    attention_sum = torch.tensor([[1.0, 0.5, 2.0, 0.0], [0.25, 1.0, 0.0, 0.0]])
    out = coverage_penalty(attention_sum, torch.tensor([3, 2]), 1.0)
    assert out[0].item() == pytest.approx(math.log(0.5))  # min(.,1) caps over-attention; padding ignored
    assert out[1].item() == pytest.approx(math.log(0.25))
    assert coverage_penalty(attention_sum, torch.tensor([3, 2]), 0.0).tolist() == [0.0, 0.0]


def test_filter_distribution_top_k_top_p_temperature() -> None:
    log_probs = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    top2 = filter_distribution(log_probs, top_k=2, top_p=1.0, temperature=1.0).exp()
    assert top2[0].tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    nucleus = filter_distribution(log_probs, top_k=0, top_p=0.75, temperature=1.0).exp()
    assert nucleus[0].tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    first = filter_distribution(log_probs, top_k=0, top_p=0.1, temperature=1.0).exp()
    assert first[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    sharp = filter_distribution(log_probs, top_k=0, top_p=1.0, temperature=0.5).exp()
    assert sharp[0, 0] > 0.5 and sharp.sum().item() == pytest.approx(1.0)


# ---------------------------------------------------------------- searches


@each_arch
@torch.inference_mode()
@pytest.mark.parametrize("beam_size", [1, 4])
def test_min_length_and_blocked_ngrams_hold_in_every_hypothesis(beam_size: int, arch: str) -> None:
    model = tiny_model(arch=arch)
    src, lengths = sources()
    cfg = DecodeConfig(beam_size=beam_size, n_best=beam_size, min_length=4, no_repeat_ngram=2, max_length_ratio=3.0)
    for hyps in search(model, src, lengths, cfg):
        for hyp in hyps:
            assert len(hyp.tokens) >= 4
            grams = ngrams(hyp.tokens, 2)
            assert len(grams) == len(set(grams))
            assert EOS_ID not in hyp.tokens


@each_arch
@torch.inference_mode()
def test_max_length_wins_over_min_length(arch: str) -> None:
    model = tiny_model(arch=arch)
    src, lengths = sources()
    cfg = DecodeConfig(beam_size=3, min_length=50, max_length=5)
    limits = max_lengths(lengths, cfg).tolist()
    assert max(limits) == 5
    for (hyp,), limit in zip(search(model, src, lengths, cfg), limits):
        assert len(hyp.tokens) == limit


@each_arch
@torch.inference_mode()
def test_coverage_penalty_is_added_to_the_score(arch: str) -> None:
    model = tiny_model(arch=arch)
    src, lengths = sources()
    plain = search(model, src, lengths, DecodeConfig(beam_size=1, length_penalty=0.0))
    penalised = search(model, src, lengths, DecodeConfig(beam_size=1, length_penalty=0.0, coverage_penalty=0.5))
    for (a,), (b,), n in zip(plain, penalised, lengths.tolist()):
        assert a.tokens == b.tokens  # greedy picks tokens by probability alone
        expected = coverage_penalty(b.attention.sum(0, keepdim=True), torch.tensor([n]), 0.5).item()
        assert b.score == pytest.approx(a.score + expected, abs=1e-5)
        assert expected <= 0.0


@each_arch
@torch.inference_mode()
def test_sampling_is_seeded_and_respects_top_k(arch: str) -> None:
    model = tiny_model(arch=arch)
    src, lengths = sources()
    cfg = DecodeConfig(strategy="sample", n_best=3, top_k=1, max_length_ratio=2.0)
    greedy = search(model, src, lengths, DecodeConfig(beam_size=1))
    sampled = sample_search(model, src, lengths, cfg, generator=torch.Generator().manual_seed(1))
    for hyps, (best,) in zip(sampled, greedy):
        assert len(hyps) == 3
        assert all(h.tokens == best.tokens for h in hyps)  # top-1 sampling is greedy
    free = DecodeConfig(strategy="sample", n_best=4, temperature=1.5)
    one = sample_search(model, src, lengths, free, generator=torch.Generator().manual_seed(7))
    two = sample_search(model, src, lengths, free, generator=torch.Generator().manual_seed(7))
    other = sample_search(model, src, lengths, free, generator=torch.Generator().manual_seed(8))
    tokens = lambda results: [[h.tokens for h in hyps] for hyps in results]
    assert tokens(one) == tokens(two)
    assert tokens(one) != tokens(other)
    for hyps in one:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_batches_respect_sentence_and_token_limits() -> None:
    lengths = [5, 1, 9, 3, 9, 2, 7, 4]
    cfg = DecodeConfig(beam_size=2, batch_size=3, batch_tokens=40)
    groups = list(batches(lengths, cfg))
    assert sorted(i for g in groups for i in g) == list(range(8))
    for group in groups:
        assert len(group) <= 3
        assert max(lengths[i] for i in group) * len(group) * 2 <= 40 or len(group) == 1
    assert [lengths[g[0]] for g in groups] == sorted((lengths[g[0]] for g in groups), reverse=True)
    unbounded = list(batches(lengths, DecodeConfig(batch_size=64)))
    assert len(unbounded) == 1
