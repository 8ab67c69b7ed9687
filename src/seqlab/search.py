"""Greedy and beam search over a batch of sentences.

Both talk to the model through two calls only: ``model.encode(src, lengths)``
for the initial :class:`~seqlab.decoder.DecoderState`, and
``model.decode_step(prev_tokens, state)`` for the next-token log-probabilities.
A stub with those two methods (and a state with ``select``/``reorder``) is
enough to test everything here.

Each sentence's search is independent of the others in its batch: candidates
are ranked per sentence, a sentence stops as soon as its own result can no
longer change, and finished sentences leave the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from seqlab.config import DecodeConfig
from seqlab.tokenizer import BOS_ID, EOS_ID

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
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor): ...

    def decode_step(self, prev_tokens: torch.Tensor, state): ...


# ---------------------------------------------------------------- pure helpers


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT length penalty ((5 + length) / 6) ** alpha; 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: torch.Tensor, config: DecodeConfig) -> torch.Tensor:
    """(B,) most output pieces (EOS excluded): ratio x source length, capped by max_length."""
    by_ratio = torch.ceil(src_lengths.float() * config.max_length_ratio).long()
    return by_ratio.clamp(min=1, max=config.max_length)


def force_eos(log_probs: torch.Tensor, at_limit: torch.Tensor) -> torch.Tensor:
    """log_probs: (N, V); rows where ``at_limit`` (N,) may only emit EOS."""
    if not bool(at_limit.any()):
        return log_probs
    blocked = log_probs.clone()
    eos = blocked[:, EOS_ID].clone()
    blocked[at_limit] = NEG_INF
    blocked[:, EOS_ID] = eos
    return blocked


def best_possible(alive_scores: torch.Tensor, limits: torch.Tensor, alpha: float) -> torch.Tensor:
    """(n,) upper bound on any future ranking score of each sentence's alive beams.

    alive_scores: (n, K) raw log-probabilities, which only fall as tokens are
    added. With a length penalty a longer hypothesis is divided by more, so the
    bound divides by the penalty at the longest length allowed.
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


# ---------------------------------------------------------------- search


def greedy_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """The most probable next token at every step; one hypothesis per sentence."""
    state = model.encode(src, src_lengths)
    batch = src.size(0)
    limits = max_lengths(src_lengths, config).to(src.device)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens, attention, log_prob = [], [], torch.zeros(batch, device=src.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    ended_at = torch.full((batch,), -1, dtype=torch.long)
    for step in range(int(limits.max()) + 1):
        out = model.decode_step(prev, state)
        log_probs = force_eos(out.log_probs, limits <= step)
        best, prev = log_probs.max(dim=-1)
        log_prob += torch.where(done, torch.zeros_like(best), best)
        tokens.append(prev)
        attention.append(out.attention)
        newly = (prev == EOS_ID) & ~done
        ended_at[newly.cpu()] = step
        done |= newly
        state = out.state
        if bool(done.all()):
            break
    token_rows = torch.stack(tokens, dim=1).tolist()
    attn = torch.stack(attention, dim=1).float().cpu()
    results = []
    for i in range(batch):
        end = int(ended_at[i])
        score = float(log_prob[i]) / float(length_penalty(end + 1, config.length_penalty))
        results.append([Hypothesis(token_rows[i][:end], score, float(log_prob[i]), attn[i, : end + 1])])
    return results


def beam_search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """The ``config.n_best`` best hypotheses per sentence, best first.

    A sentence stops when its n_best-th finished hypothesis scores at least the
    bound of :func:`best_possible`, so its result is the same as if the search
    had run to the maximum length with this beam.
    """
    k, device = config.beam_size, src.device
    batch = src.size(0)
    state = model.encode(src, src_lengths)
    state = state.select(torch.arange(batch, device=device).repeat_interleave(k))
    limits = max_lengths(src_lengths, config).to(device)
    active = torch.arange(batch, device=device)  # original index of each active sentence
    scores = torch.full((batch, k), NEG_INF, device=device)
    scores[:, 0] = 0.0  # all beams start identical: only the first may expand
    seqs = torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device)
    attn = torch.zeros(batch * k, 0, src.size(1), device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    step = 0
    while active.numel() > 0:
        n = active.numel()
        out = model.decode_step(seqs[:, -1], state)
        log_probs = force_eos(out.log_probs, (limits <= step).repeat_interleave(k))
        vocab = log_probs.size(-1)
        step += 1  # hypotheses now hold `step` tokens, EOS included
        candidates = (scores.view(-1, 1) + log_probs).view(n, k * vocab)
        top_scores, top_ids = candidates.topk(min(2 * k, k * vocab), dim=1)
        origin, top_tokens = top_ids // vocab, top_ids % vocab
        rows = (torch.arange(n, device=device) * k).unsqueeze(1) + origin  # (n, 2K) parent row
        step_attn = torch.cat((attn.index_select(0, rows.view(-1)), out.attention.index_select(0, rows.view(-1)).unsqueeze(1)), dim=1)
        _finish(finished, active, top_scores[:, :k], top_tokens[:, :k], seqs.index_select(0, rows[:, :k].reshape(-1)), step_attn.view(n, -1, step, src.size(1))[:, :k], alpha=config.length_penalty, step=step)
        keep = select_alive(top_tokens, k)
        scores = top_scores.gather(1, keep)
        parents = rows.gather(1, keep).view(-1)
        seqs = torch.cat((seqs.index_select(0, parents), top_tokens.gather(1, keep).view(-1, 1)), dim=1)
        attn = step_attn.view(n, -1, step, src.size(1)).gather(1, keep.view(n, k, 1, 1).expand(n, k, step, src.size(1))).view(n * k, step, -1)
        state = out.state.reorder(parents)
        done = _sentences_done(finished, active, scores, limits, config)
        if bool(done.any()):
            still = (~done).nonzero().view(-1)
            beam_rows = (still.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            active, scores, limits = active[still], scores[still], limits[still]
            seqs, attn = seqs.index_select(0, beam_rows), attn.index_select(0, beam_rows)
            state = state.select(beam_rows)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[: config.n_best] for hyps in finished]


def _finish(finished, active, top_scores, top_tokens, parent_seqs, top_attn, *, alpha: float, step: int) -> None:
    """Record every top-K candidate that ends in EOS as a finished hypothesis.

    top_scores, top_tokens: (n, K); parent_seqs: (n*K, step) BOS + tokens;
    top_attn: (n, K, step, S).
    """
    ended = ((top_tokens == EOS_ID) & torch.isfinite(top_scores)).nonzero().tolist()
    if not ended:
        return
    penalty = float(length_penalty(step, alpha))
    k = top_tokens.size(1)
    for i, j in ended:
        log_prob = float(top_scores[i, j])
        finished[int(active[i])].append(
            Hypothesis(
                tokens=parent_seqs[i * k + j, 1:].tolist(),
                score=log_prob / penalty,
                log_prob=log_prob,
                attention=top_attn[i, j].float().cpu(),
            )
        )


def _sentences_done(finished, active, scores, limits, config: DecodeConfig) -> torch.Tensor:
    """(n,) True where a sentence's n-best can no longer change."""
    bound = best_possible(scores, limits, config.length_penalty).tolist()
    done = []
    for i, sentence in enumerate(active.tolist()):
        hyps = finished[sentence]
        if bound[i] == NEG_INF:
            done.append(True)
        elif len(hyps) < config.n_best:
            done.append(False)
        else:
            nth = sorted((h.score for h in hyps), reverse=True)[config.n_best - 1]
            done.append(nth >= bound[i])
    return torch.tensor(done, device=scores.device)


def search(model: Searchable, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodeConfig) -> list[list[Hypothesis]]:
    """Greedy for beam size 1, beam search otherwise."""
    if config.beam_size == 1:
        return greedy_search(model, src, src_lengths, config)
    return beam_search(model, src, src_lengths, config)
