"""Greedy, beam and sampling search over a batch of sentences.

All of them talk to the model through two calls only: ``model.encode(src,
lengths)`` for the initial state (which must offer ``select(index)`` and
``reorder(index)``), and ``model.decode_step(prev_tokens, state)`` for the
next-token log-probabilities. A stub with those methods is enough to test
everything here.

Each sentence's search is independent of the others in its batch: candidates
are ranked per sentence, a sentence stops as soon as its own result can no
longer change, and finished sentences leave the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from seqlab.core.run_config import DecodeConfig
from seqlab.search.scores import (
    NEG_INF,
    best_possible,
    constrain,
    coverage_penalty,
    filter_distribution,
    length_penalty,
    max_lengths,
    min_lengths,
    select_alive,
)
from seqlab.search.topk import top_candidates
from seqlab.search.words import SourceWords, source_words
from seqlab.tokenizer import BOS_ID, EOS_ID


@dataclass(frozen=True)
class Hypothesis:
    """A finished output: ``tokens`` without EOS; ``score`` ranks, ``log_prob`` is the model's.

    attention: (len(tokens) + 1, S) weights per emitted token (EOS included).
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: torch.Tensor


class Searchable(Protocol):
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Any: ...

    def decode_step(self, prev_tokens: torch.Tensor, state: Any) -> Any: ...


# ---------------------------------------------------------------- greedy and sampling


def _sequential(
    model: Searchable,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    config: DecodeConfig,
    *,
    copies: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
    words: SourceWords | None = None,
) -> list[list[Hypothesis]]:
    """One token per row per step, chosen by ``pick`` (N, V) -> (N,); ``copies`` rows per sentence.
    Rows that emit EOS are finished and leave the batch."""
    device, batch = src.device, src.size(0)
    rows = torch.arange(batch, device=device).repeat_interleave(copies)
    state = model.encode(src, src_lengths).select(rows)
    lengths, limits, minimums = src_lengths[rows], max_lengths(src_lengths, config)[rows], min_lengths(src_lengths, config)[rows]
    tokens = torch.empty(rows.numel(), 0, dtype=torch.long, device=device)
    attn = torch.zeros(rows.numel(), 0, src.size(1), device=device)
    log_prob = torch.zeros(rows.numel(), device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    prev = torch.full((rows.numel(),), BOS_ID, dtype=torch.long, device=device)
    while rows.numel() > 0:
        out = model.decode_step(prev, state)
        log_probs = constrain(out.log_probs, tokens=tokens, limits=limits, minimums=minimums, config=config,
                              words=words, sentences=rows)
        prev = pick(log_probs)
        log_prob = log_prob + log_probs.gather(1, prev.unsqueeze(1)).squeeze(1)
        tokens = torch.cat((tokens, prev.unsqueeze(1)), dim=1)
        attn = torch.cat((attn, out.attention.float().unsqueeze(1)), dim=1)
        done = prev == EOS_ID
        ended = done.nonzero().view(-1)
        if ended.numel():
            _record(finished, sentences=rows[ended], tokens=tokens[ended, :-1], log_probs=log_prob[ended],
                    attention=attn[ended], src_lengths=lengths[ended], config=config)
        keep = (~done).nonzero().view(-1)
        if keep.numel() < rows.numel():
            rows, lengths, limits, minimums = rows[keep], lengths[keep], limits[keep], minimums[keep]
            tokens, attn, log_prob, prev = tokens[keep], attn[keep], log_prob[keep], prev[keep]
            state = out.state.select(keep)
        else:
            state = out.state
    return [sorted(hyps, key=lambda h: h.score, reverse=True) for hyps in finished]


def _record(finished: list[list[Hypothesis]], *, sentences: torch.Tensor, tokens: torch.Tensor, log_probs: torch.Tensor,
            attention: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> None:
    """Add m hypotheses that end at this step, all t tokens long, to their sentences' lists.

    sentences, log_probs, src_lengths: (m,); tokens: (m, t) without EOS; attention: (m, t + 1, S).
    One batch of tensor operations and host copies for all m: the per-hypothesis indexing this
    replaces cost more than the search's own arithmetic once many beams end at once.
    """
    divisor = float(length_penalty(tokens.size(1) + 1, config.length_penalty))
    penalties = coverage_penalty(attention.sum(1), src_lengths, config.coverage_penalty).tolist()
    attention = attention.float().cpu()
    for k, (sentence, pieces, log_prob, penalty) in enumerate(
            zip(sentences.tolist(), tokens.tolist(), log_probs.tolist(), penalties)):
        finished[sentence].append(Hypothesis(pieces, log_prob / divisor + penalty, log_prob, attention[k]))


def greedy_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig,
                  *, words: SourceWords | None = None) -> list[list[Hypothesis]]:
    """The most probable next token at every step; one hypothesis per sentence."""
    return _sequential(model, src, src_lengths, config, copies=1, pick=lambda lp: lp.argmax(dim=-1), words=words)


def sample_search(
    model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig, *, generator: torch.Generator,
    words: SourceWords | None = None,
) -> list[list[Hypothesis]]:
    """``config.n_best`` samples per sentence (temperature, top-k, top-p), best-scoring first."""

    def pick(log_probs: torch.Tensor) -> torch.Tensor:
        dist = filter_distribution(log_probs, top_k=config.top_k, top_p=config.top_p, temperature=config.temperature)
        return torch.multinomial(dist.exp(), 1, generator=generator).squeeze(1)

    return _sequential(model, src, src_lengths, config, copies=config.n_best, pick=pick, words=words)


# ---------------------------------------------------------------- beam search


@dataclass(frozen=True)
class _Beams:
    """The unfinished sentences of a beam search: n sentences x W beams.

    W is 1 before the first step (every beam would start identical, so only
    one is computed) and K after it. index: (n,) original sentence; scores:
    (n, W) raw log-probabilities; tokens: (n*W, t) emitted so far; attn:
    (n*W, t, S); lengths, limits, minimums: (n,) source length and output
    bounds; state: the model's, n*W rows.
    """

    index: torch.Tensor
    scores: torch.Tensor
    tokens: torch.Tensor
    attn: torch.Tensor
    lengths: torch.Tensor
    limits: torch.Tensor
    minimums: torch.Tensor
    state: Any

    def keep(self, still: torch.Tensor) -> _Beams:
        """Only the sentences ``still`` (m,): finished ones leave the batch."""
        width = self.scores.size(1)
        rows = (still.unsqueeze(1) * width + torch.arange(width, device=still.device)).view(-1)
        return _Beams(
            self.index[still], self.scores[still], self.tokens[rows], self.attn[rows],
            self.lengths[still], self.limits[still], self.minimums[still], self.state.select(rows),
        )


def beam_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig,
                *, words: SourceWords | None = None) -> list[list[Hypothesis]]:
    """The ``config.n_best`` best hypotheses per sentence, best first.

    A sentence stops when its n_best-th finished hypothesis scores at least the
    bound of :func:`best_possible`, so its result is the same as if the search
    had run to the maximum length with this beam.
    """
    batch, device = src.size(0), src.device
    beams = _Beams(
        index=torch.arange(batch, device=device),
        scores=torch.zeros(batch, 1, device=device),
        tokens=torch.empty(batch, 0, dtype=torch.long, device=device),
        attn=torch.zeros(batch, 0, src.size(1), device=device),
        lengths=src_lengths,
        limits=max_lengths(src_lengths, config),
        minimums=min_lengths(src_lengths, config),
        state=model.encode(src, src_lengths),
    )
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    while beams.index.numel() > 0:
        beams = _beam_step(model, beams, finished, config, words)
        done = _sentences_done(finished, beams, config)
        if bool(done.any()):
            beams = beams.keep((~done).nonzero().view(-1))
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[: config.n_best] for hyps in finished]


def _beam_step(model: Searchable, beams: _Beams, finished: list[list[Hypothesis]], config: DecodeConfig,
               words: SourceWords | None) -> _Beams:
    """Expand every beam by one token; record candidates that end in EOS; keep the K best others."""
    (n, width), k = beams.scores.shape, config.beam_size
    prev = beams.tokens[:, -1] if beams.tokens.size(1) else torch.full((n * width,), BOS_ID, device=beams.scores.device)
    out = model.decode_step(prev, beams.state)
    log_probs = constrain(
        out.log_probs, tokens=beams.tokens, limits=beams.limits.repeat_interleave(width),
        minimums=beams.minimums.repeat_interleave(width), config=config,
        words=words, sentences=beams.index.repeat_interleave(width),
    )
    top_scores, top_tokens, parents = top_candidates(beams.scores, log_probs, 2 * k)
    parents = (torch.arange(n, device=parents.device) * width).unsqueeze(1) + parents  # (n, 2K) parent row
    _finish(finished, beams, out.attention, top_scores[:, :k], top_tokens[:, :k], parents[:, :k], config)
    keep = select_alive(top_tokens, k)
    rows = parents.gather(1, keep).view(-1)
    # The first step widens one row per sentence to K: every field must follow.
    state = out.state.reorder(rows) if width == k else out.state.select(rows)
    return replace(
        beams,
        scores=top_scores.gather(1, keep),
        tokens=torch.cat((beams.tokens[rows], top_tokens.gather(1, keep).view(-1, 1)), dim=1),
        attn=torch.cat((beams.attn[rows], out.attention[rows].float().unsqueeze(1)), dim=1),
        state=state,
    )


def _finish(finished, beams: _Beams, step_attention, top_scores, top_tokens, parents, config: DecodeConfig) -> None:
    """Record every top-K candidate that ends in EOS as a finished hypothesis.

    top_scores, top_tokens, parents: (n, K); step_attention: (n*K, S) this step's weights.
    """
    i, j = ((top_tokens == EOS_ID) & torch.isfinite(top_scores)).nonzero(as_tuple=True)
    if i.numel() == 0:
        return
    rows = parents[i, j]
    attention = torch.cat((beams.attn[rows], step_attention[rows].float().unsqueeze(1)), dim=1)
    _record(finished, sentences=beams.index[i], tokens=beams.tokens[rows], log_probs=top_scores[i, j],
            attention=attention, src_lengths=beams.lengths[i], config=config)


def _sentences_done(finished: list[list[Hypothesis]], beams: _Beams, config: DecodeConfig) -> torch.Tensor:
    """(n,) True where a sentence's n-best can no longer change."""
    bound = best_possible(beams.scores, beams.limits, config.length_penalty).tolist()
    done = []
    for i, sentence in enumerate(beams.index.tolist()):
        hyps = finished[sentence]
        if bound[i] == NEG_INF:
            done.append(True)
        elif len(hyps) < config.n_best:
            done.append(False)
        else:
            nth = sorted((h.score for h in hyps), reverse=True)[config.n_best - 1]
            done.append(nth >= bound[i])
    return torch.tensor(done, device=beams.scores.device)


def search(
    model: Searchable,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    config: DecodeConfig,
    *,
    generator: torch.Generator | None = None,
    word_starts: torch.Tensor | None = None,
) -> list[list[Hypothesis]]:
    """Sampling when asked for; greedy for beam size 1; beam search otherwise.

    word_starts: (V,) the pieces that begin a word (:func:`seqlab.search.words.word_starts`),
    needed for ``config.word_safe_copy``.
    """
    words = None
    if config.word_safe_copy:
        assert word_starts is not None, "decode.word_safe_copy needs the pieces that start words"
        words = source_words(src, src_lengths, word_starts)
    if config.strategy == "sample":
        if generator is None:
            generator = torch.Generator(device=src.device).manual_seed(0)
        return sample_search(model, src, src_lengths, config, generator=generator, words=words)
    if config.beam_size == 1:
        return greedy_search(model, src, src_lengths, config, words=words)
    return beam_search(model, src, src_lengths, config, words=words)
