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

from seqlab.config import DecodeConfig
from seqlab.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqlab.topk import row_topk

NEG_INF = float("-inf")


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


# ---------------------------------------------------------------- pure helpers


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT length penalty ((5 + length) / 6) ** alpha; 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(attention_sum: torch.Tensor, src_lengths: torch.Tensor, beta: float) -> torch.Tensor:
    """GNMT coverage penalty beta * sum_i log(min(sum_t a_ti, 1)) over real source positions.

    attention_sum: (N, S) attention summed over a hypothesis' tokens; src_lengths:
    (N,). Returns (N,), never positive: it only punishes source words left unread.
    """
    if beta == 0:
        return attention_sum.new_zeros(attention_sum.size(0))
    real = torch.arange(attention_sum.size(1), device=attention_sum.device) < src_lengths.unsqueeze(1)
    covered = attention_sum.float().clamp(min=1e-10, max=1.0).log()
    return beta * (covered * real).sum(dim=1)


def max_lengths(src_lengths: torch.Tensor, config: DecodeConfig) -> torch.Tensor:
    """(B,) most output pieces (EOS excluded): ratio x source length, capped by max_length."""
    by_ratio = torch.ceil(src_lengths.float() * config.max_length_ratio).long()
    return by_ratio.clamp(min=1, max=config.max_length)


def min_lengths(src_lengths: torch.Tensor, config: DecodeConfig) -> torch.Tensor:
    """(B,) fewest output pieces before EOS is allowed: the larger of min_length and ratio x source."""
    by_ratio = torch.floor(src_lengths.float() * config.min_length_ratio).long()
    return by_ratio.clamp(min=config.min_length)


def force_eos(log_probs: torch.Tensor, at_limit: torch.Tensor) -> torch.Tensor:
    """log_probs: (N, V); rows where ``at_limit`` (N,) may only emit EOS."""
    if not bool(at_limit.any()):
        return log_probs
    blocked = log_probs.clone()
    eos = blocked[:, EOS_ID].clone()
    blocked[at_limit] = NEG_INF
    blocked[:, EOS_ID] = eos
    return blocked


def forbid_eos(log_probs: torch.Tensor, too_short: torch.Tensor) -> torch.Tensor:
    """log_probs: (N, V); rows where ``too_short`` (N,) may not emit EOS yet."""
    if not bool(too_short.any()):
        return log_probs
    blocked = log_probs.clone()
    blocked[too_short, EOS_ID] = NEG_INF
    return blocked


def block_repeats(log_probs: torch.Tensor, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid any token that would repeat an n-gram already in its row.

    log_probs: (N, V); tokens: (N, t) emitted so far (BOS excluded). A window
    of the row that equals its last n-1 tokens bans the token that followed it.
    """
    t = tokens.size(1)
    if n < 1 or t < n:  # off, or no n-gram complete yet
        return log_probs
    if n == 1:
        return log_probs.scatter(1, tokens, NEG_INF)
    windows = tokens.unfold(1, n - 1, 1)[:, : t - n + 1]  # (N, t-n+1, n-1), each followed by a token
    matches = (windows == tokens[:, t - n + 1 :].unsqueeze(1)).all(dim=-1)  # (N, t-n+1)
    if not bool(matches.any()):
        return log_probs
    rows, starts = matches.nonzero(as_tuple=True)
    banned = tokens[rows, starts + n - 1]
    blocked = log_probs.clone()
    blocked[rows, banned] = NEG_INF
    return blocked


def constrain(
    log_probs: torch.Tensor, *, tokens: torch.Tensor, limits: torch.Tensor, minimums: torch.Tensor, config: DecodeConfig
) -> torch.Tensor:
    """Apply the length limits and n-gram blocking to one step. tokens: (N, t) emitted so far;
    limits, minimums: (N,) per-row bounds. The maximum wins over the minimum."""
    step = tokens.size(1)
    log_probs = block_repeats(log_probs, tokens, config.no_repeat_ngram)
    log_probs = forbid_eos(log_probs, (minimums > step) & (limits > step))
    return force_eos(log_probs, limits <= step)


def best_possible(alive_scores: torch.Tensor, limits: torch.Tensor, alpha: float) -> torch.Tensor:
    """(n,) upper bound on any future ranking score of each sentence's alive beams.

    alive_scores: (n, K) raw log-probabilities, which only fall as tokens are
    added. With a length penalty a longer hypothesis is divided by more, so the
    bound divides by the penalty at the longest length allowed. The coverage
    penalty is at most 0, so it cannot raise the bound.
    """
    best = alive_scores.max(dim=1).values
    if alpha == 0:
        return best
    return best / length_penalty(limits.float() + 1.0, alpha)


def select_alive(top_tokens: torch.Tensor, beam_size: int) -> torch.Tensor:
    """(n, K) positions, in rank order, of the K best candidates that do not end in EOS.

    top_tokens: (n, 2K). Each beam has one EOS candidate, so at least K of
    the 2K are not EOS; a stable sort keeps their ranking.
    """
    is_eos = (top_tokens == EOS_ID).to(torch.int8)
    return torch.sort(is_eos, dim=1, stable=True).indices[:, :beam_size]


def filter_distribution(log_probs: torch.Tensor, *, top_k: int, top_p: float, temperature: float) -> torch.Tensor:
    """Sampling distribution (N, V) as log-probabilities: tempered, then top-k, then nucleus (top-p)."""
    logits = log_probs / temperature
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, NEG_INF))
    return logits.log_softmax(dim=-1)


# ---------------------------------------------------------------- greedy and sampling


def _sequential(
    model: Searchable,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    config: DecodeConfig,
    *,
    copies: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
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
        log_probs = constrain(out.log_probs, tokens=tokens, limits=limits, minimums=minimums, config=config)
        prev = pick(log_probs)
        log_prob = log_prob + log_probs.gather(1, prev.unsqueeze(1)).squeeze(1)
        tokens = torch.cat((tokens, prev.unsqueeze(1)), dim=1)
        attn = torch.cat((attn, out.attention.float().unsqueeze(1)), dim=1)
        done = prev == EOS_ID
        for i in done.nonzero().view(-1).tolist():
            finished[int(rows[i])].append(
                _hypothesis(tokens[i, :-1], float(log_prob[i]), attn[i], int(lengths[i]), config)
            )
        keep = (~done).nonzero().view(-1)
        if keep.numel() < rows.numel():
            rows, lengths, limits, minimums = rows[keep], lengths[keep], limits[keep], minimums[keep]
            tokens, attn, log_prob, prev = tokens[keep], attn[keep], log_prob[keep], prev[keep]
            state = out.state.select(keep)
        else:
            state = out.state
    return [sorted(hyps, key=lambda h: h.score, reverse=True) for hyps in finished]


def _hypothesis(tokens: torch.Tensor, log_prob: float, attention: torch.Tensor, src_len: int, config: DecodeConfig) -> Hypothesis:
    """tokens: (t,) without EOS; attention: (t + 1, S)."""
    score = log_prob / float(length_penalty(tokens.numel() + 1, config.length_penalty))
    penalty = coverage_penalty(attention.sum(0, keepdim=True), torch.tensor([src_len], device=attention.device), config.coverage_penalty)
    return Hypothesis(tokens.tolist(), score + float(penalty[0]), log_prob, attention.float().cpu())


def greedy_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """The most probable next token at every step; one hypothesis per sentence."""
    return _sequential(model, src, src_lengths, config, copies=1, pick=lambda lp: lp.argmax(dim=-1))


def sample_search(
    model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig, *, generator: torch.Generator
) -> list[list[Hypothesis]]:
    """``config.n_best`` samples per sentence (temperature, top-k, top-p), best-scoring first."""

    def pick(log_probs: torch.Tensor) -> torch.Tensor:
        dist = filter_distribution(log_probs, top_k=config.top_k, top_p=config.top_p, temperature=config.temperature)
        return torch.multinomial(dist.exp(), 1, generator=generator).squeeze(1)

    return _sequential(model, src, src_lengths, config, copies=config.n_best, pick=pick)


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


def beam_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
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
        beams = _beam_step(model, beams, finished, config)
        done = _sentences_done(finished, beams, config)
        if bool(done.any()):
            beams = beams.keep((~done).nonzero().view(-1))
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[: config.n_best] for hyps in finished]


def top_candidates(scores: torch.Tensor, log_probs: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` best one-token extensions of each sentence's W beams.

    scores: (n, W) beam log-probabilities; log_probs: (n*W, V) next-token ones.
    Returns (n, count) scores, tokens and parent beams (0..W-1), best first;
    when W*V < count the missing places are -inf extensions of beam 0 by PAD.

    A sentence's best ``count`` are among the union of each beam's own best
    ``count``, so the beams are ranked first (one pass over V per row) and the
    sentence's W x count survivors second, instead of adding the beam scores to,
    and ranking, all W x V extensions.
    """
    n, width = scores.shape
    per_row = min(count, log_probs.size(-1))
    row_scores, row_tokens = row_topk(log_probs, per_row)  # (n*W, c), best first
    candidates = (scores.view(-1, 1) + row_scores).view(n, width * per_row)
    tokens = row_tokens.view(n, width * per_row)
    if width * per_row < count:
        dead = count - width * per_row
        candidates = torch.cat((candidates, candidates.new_full((n, dead), NEG_INF)), dim=1)
        # PAD, never EOS: select_alive relies on at most one EOS candidate per beam
        tokens = torch.cat((tokens, tokens.new_full((n, dead), PAD_ID)), dim=1)
    top_scores, top_ids = candidates.topk(count, dim=1)
    parents = torch.where(top_ids < width * per_row, top_ids // per_row, 0)
    return top_scores, tokens.gather(1, top_ids), parents


def _beam_step(model: Searchable, beams: _Beams, finished: list[list[Hypothesis]], config: DecodeConfig) -> _Beams:
    """Expand every beam by one token; record candidates that end in EOS; keep the K best others."""
    (n, width), k = beams.scores.shape, config.beam_size
    prev = beams.tokens[:, -1] if beams.tokens.size(1) else torch.full((n * width,), BOS_ID, device=beams.scores.device)
    out = model.decode_step(prev, beams.state)
    log_probs = constrain(
        out.log_probs, tokens=beams.tokens, limits=beams.limits.repeat_interleave(width),
        minimums=beams.minimums.repeat_interleave(width), config=config,
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
    ended = ((top_tokens == EOS_ID) & torch.isfinite(top_scores)).nonzero().tolist()
    for i, j in ended:
        row = int(parents[i, j])
        attention = torch.cat((beams.attn[row], step_attention[row].float().unsqueeze(0)), dim=0)
        hyp = _hypothesis(beams.tokens[row], float(top_scores[i, j]), attention, int(beams.lengths[i]), config)
        finished[int(beams.index[i])].append(hyp)


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
) -> list[list[Hypothesis]]:
    """Sampling when asked for; greedy for beam size 1; beam search otherwise."""
    if config.strategy == "sample":
        if generator is None:
            generator = torch.Generator(device=src.device).manual_seed(0)
        return sample_search(model, src, src_lengths, config, generator=generator)
    if config.beam_size == 1:
        return greedy_search(model, src, src_lengths, config)
    return beam_search(model, src, src_lengths, config)
