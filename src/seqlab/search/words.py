"""Word-safe copying: output words are whole vocabulary pieces or spans of source words.

A copy model copies pieces, and a piece from the middle of a source word
(``computer`` of ``▁super computer``) glued onto the previous output word
makes a word that exists nowhere (``joincomputer``). Here a word is a piece
that starts one (``▁``-prefixed, or a special piece) followed by continuation
pieces. Under the constraint an output word either is a single piece or
follows one source word piece by piece from its start, and once it has
begun a source word that is longer it must reach that word's end: no
``russian-in`` cut from ``russian-installed``, no ``productiv`` of ``productiv e``
(unless the source has it as a whole word too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqlab.core.errors import ConfigError
from seqlab.model.seq2seq import Seq2Seq
from seqlab.tokenizer import EOS_ID, UNK_WORD, Tokenizer


def word_starts(tokenizer: Tokenizer, model: Seq2Seq) -> torch.Tensor:
    """(V,) True for target pieces that begin a word: ``▁``-prefixed, special, or the unknown word."""
    if model.output_ids is not None:
        # Search emits output indices, the source holds piece ids: the two must be one.
        raise ConfigError("decode.word_safe_copy: needs a model trained with model.output_vocab: full")
    sp = tokenizer.tgt
    return torch.tensor([
        sp.id_to_piece(i).startswith("\u2581") or sp.is_control(i) or sp.is_unknown(i) or sp.id_to_piece(i) == UNK_WORD
        for i in range(sp.get_piece_size())
    ])


@dataclass(frozen=True)
class SourceWords:
    """The words of a batch's sources, as piece tuples, for :func:`restrict_to_words`.

    continuations[b]: a word's first pieces -> the pieces that may follow them in sentence b;
    complete[b]: the whole words of sentence b; starts: (V,) bool, see :func:`word_starts`.
    """

    continuations: list[dict[tuple[int, ...], set[int]]]
    complete: list[set[tuple[int, ...]]]
    starts: torch.Tensor


def source_words(src: torch.Tensor, src_lengths: torch.Tensor, starts: torch.Tensor) -> SourceWords:
    """src: (B, S) piece ids, padded; src_lengths: (B,). Splits each source into words."""
    continuations: list[dict[tuple[int, ...], set[int]]] = []
    complete: list[set[tuple[int, ...]]] = []
    is_start = starts.tolist()
    for ids, length in zip(src.tolist(), src_lengths.tolist()):
        words = _split_words(ids[:length], is_start)
        following: dict[tuple[int, ...], set[int]] = {}
        for word in words:
            for k in range(1, len(word)):
                following.setdefault(word[:k], set()).add(word[k])
        continuations.append(following)
        complete.append(set(words))
    return SourceWords(continuations, complete, starts)


def _split_words(ids: list[int], is_start: list[bool]) -> list[tuple[int, ...]]:
    words: list[list[int]] = []
    for i in ids:
        if is_start[i] or not words:
            words.append([i])
        else:
            words[-1].append(i)
    return [tuple(w) for w in words]


def _current_word(tokens: list[int], is_start: list[bool]) -> tuple[int, ...]:
    """The last word of ``tokens``: from its last word-starting piece on (empty before any)."""
    for k in range(len(tokens) - 1, -1, -1):
        if is_start[tokens[k]]:
            return tuple(tokens[k:])
    return tuple(tokens)


def restrict_to_words(
    log_probs: torch.Tensor, *, tokens: torch.Tensor, sentences: torch.Tensor, words: SourceWords
) -> torch.Tensor:
    """Forbid the pieces that would make a word of neither one piece nor a source word.

    log_probs: (N, V); tokens: (N, t) emitted so far; sentences: (N,) each row's batch sentence.
    A continuation piece must extend the row's last word along a source word; a row
    whose last word is a proper start of a source word (and not itself one) may only continue it.
    """
    is_start = words.starts.tolist()
    starts = words.starts.to(log_probs.device)
    mask = (~starts).expand_as(log_probs).clone()  # every continuation piece ...
    for row, (emitted, sentence) in enumerate(zip(tokens.tolist(), sentences.tolist())):
        word = _current_word(emitted, is_start)
        allowed = list(words.continuations[sentence].get(word, ())) if word else []
        mask[row, allowed] = False  # ... but those that follow this word in a source word
        if allowed and word not in words.complete[sentence]:
            mask[row] |= starts  # a partial source word must go on
            mask[row, EOS_ID] = True
    return log_probs.masked_fill(mask, float("-inf"))
