"""How search scores and constrains candidates: penalties, length limits, EOS rules, n-gram blocking,
the best score a beam can still reach, and the sampling filter. Pure functions on tensors.
"""

from __future__ import annotations

import torch

from seqlab.core.run_config import DecodeConfig
from seqlab.search.words import SourceWords, restrict_to_words
from seqlab.tokenizer import EOS_ID

NEG_INF = float("-inf")


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


def force_eos(log_probs: torch.Tensor, at_limit: torch.Tensor, *, eos_from: torch.Tensor | None = None) -> torch.Tensor:
    """log_probs: (N, V); rows where ``at_limit`` (N,) may only emit EOS, scored as in ``eos_from``
    (N, V) when given, else as in ``log_probs``."""
    if not bool(at_limit.any()):
        return log_probs
    eos = (log_probs if eos_from is None else eos_from)[at_limit, EOS_ID]
    blocked = log_probs.clone()
    blocked[at_limit] = NEG_INF
    blocked[at_limit, EOS_ID] = eos
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


def block_adjacent_repeats(log_probs: torch.Tensor, tokens: torch.Tensor, max_n: int) -> torch.Tensor:
    """Forbid any token that would make an n-gram (n <= max_n) follow itself at once ("ar ar", "a b a b").

    Unlike :func:`block_repeats` a phrase may come back later, as headlines' names do;
    only the stutter of a copied piece repeated to the length limit is cut. log_probs:
    (N, V); tokens: (N, t) emitted so far (BOS excluded).
    """
    t = tokens.size(1)
    banned = []
    for n in range(1, min(max_n, (t + 1) // 2) + 1):
        # the last n-1 tokens repeat the n-1 before the n-gram's start: its next token would close the repeat
        same = (tokens[:, t - n + 1 :] == tokens[:, t - 2 * n + 1 : t - n]).all(dim=1)  # (N,)
        rows = same.nonzero().view(-1)
        banned.append((rows, tokens[rows, t - n]))
    if not banned:
        return log_probs
    blocked = log_probs.clone()
    for rows, tokens_to_ban in banned:
        blocked[rows, tokens_to_ban] = NEG_INF
    return blocked


def constrain(
    log_probs: torch.Tensor, *, tokens: torch.Tensor, limits: torch.Tensor, minimums: torch.Tensor, config: DecodeConfig,
    words: SourceWords | None = None, sentences: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the length limits, n-gram blocking and word-safe copying (with ``words``; sentences:
    (N,) each row's batch sentence) to one step. tokens: (N, t) emitted so far; limits, minimums:
    (N,) per-row bounds. The maximum wins over the minimum and over the word constraint."""
    step = tokens.size(1)
    log_probs = block_repeats(log_probs, tokens, config.no_repeat_ngram)
    log_probs = block_adjacent_repeats(log_probs, tokens, config.no_adjacent_repeat)
    if words is not None and sentences is not None:
        restricted = restrict_to_words(log_probs, tokens=tokens, sentences=sentences, words=words)
        # A row inside a source word whose next piece the repeat blocking forbids may
        # only end: letting the word go on would let the repeat through, and a row with
        # no candidate at all could leave its sentence without any output.
        log_probs = force_eos(restricted, _dead(restricted) | (limits <= step), eos_from=log_probs)
        return forbid_eos(log_probs, (minimums > step) & (limits > step))
    log_probs = forbid_eos(log_probs, (minimums > step) & (limits > step))
    return force_eos(log_probs, limits <= step)


def _dead(log_probs: torch.Tensor) -> torch.Tensor:
    """(N,) rows of ``log_probs`` (N, V) with no allowed token left."""
    return torch.isneginf(log_probs).all(dim=1)


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
