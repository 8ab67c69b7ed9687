"""Text in, text out: batching sentences by length for search, restoring their order, formatting the results."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from seqlab.core.errors import SeqlabError
from seqlab.core.run_config import DecodeConfig
from seqlab.model.batch import pad
from seqlab.model.runtime import autocast
from seqlab.model.seq2seq import Seq2Seq
from seqlab.search.beam import Hypothesis, search
from seqlab.search.words import word_starts
from seqlab.tokenizer import Tokenizer


@dataclass(frozen=True)
class Translation:
    """The n-best outputs for one input line, best first."""

    source_pieces: list[str]
    hypotheses: list[Hypothesis]
    texts: list[str]
    truncated: bool  # the source was longer than the model may read and was cut


def batches(lengths: list[int], config: DecodeConfig) -> Iterator[list[int]]:
    """Indices grouped for search: at most ``batch_size`` sentences, and at most ``batch_tokens``
    padded source pieces x search rows (beam or samples) when that is set, which bounds memory.

    Longest first, so similar lengths share a batch and little work goes to padding.
    """
    rows = config.n_best if config.strategy == "sample" else config.beam_size
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        too_many = config.batch_tokens and longest * (len(batch) + 1) * rows > config.batch_tokens
        if batch and (len(batch) == config.batch_size or too_many):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def bf16_copy(model: Seq2Seq) -> Seq2Seq:
    """The model with bf16 weights, for CPU search.

    Casting once beats autocast's per-call weight casts (a model already in
    bf16 is returned as it is, so a caller translating in chunks casts once): the output layer's
    matmul over beams x vocabulary runs about 3x faster than in fp32. Scores
    differ from fp32 in the third digit, so outputs can change slightly.
    """
    if next(model.parameters()).dtype == torch.bfloat16:
        return model
    return copy.deepcopy(model).to(torch.bfloat16)


@torch.inference_mode()
def decode_texts(
    lines: list[str],
    *,
    model: Seq2Seq,
    tokenizer: Tokenizer,
    config: DecodeConfig,
    device: torch.device,
    max_src_len: int = 0,
    generator: torch.Generator | None = None,
) -> list[Translation]:
    """Translate ``lines``; the result has one Translation per line, in input order.

    Empty lines give an empty translation without running the model. Sources
    longer than ``max_src_len`` pieces (when positive) are truncated. ``generator``
    drives sampling (``config.strategy: sample``) as one stream across batches, so it
    is required there; beam and greedy search ignore it. Running out of memory is a
    SeqlabError that says which batch and what to lower.
    """
    assert generator is not None or config.strategy != "sample", "sampling needs the caller's seeded generator"
    encoded = tokenizer.encode_src(lines)
    truncated = [0 < max_src_len < len(ids) for ids in encoded]
    encoded = [ids[:max_src_len] if cut else ids for ids, cut in zip(encoded, truncated)]
    results: list[Translation | None] = [None] * len(lines)
    for i, ids in enumerate(encoded):
        if not ids:
            results[i] = Translation([], [], [""] * config.n_best, truncated=False)
    todo = [i for i, ids in enumerate(encoded) if ids]
    starts = word_starts(tokenizer, model) if config.word_safe_copy else None
    if config.cpu_bf16 and device.type == "cpu" and todo:
        model = bf16_copy(model)
    for batch in batches([len(encoded[i]) for i in todo], config):
        indices = [todo[b] for b in batch]
        src, src_lengths = pad([encoded[i] for i in indices])
        try:
            with autocast(device, cpu_bf16=config.cpu_bf16):
                nbest = search(model, src.to(device), src_lengths.to(device), config, generator=generator,
                               word_starts=starts)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
                raise
            raise SeqlabError(
                f"out of memory searching {len(indices)} sentences of up to {src.shape[1]} pieces with "
                f"{config.beam_size if config.strategy == 'beam' else config.n_best} rows each on {device.type}: "
                "lower the beam size, batch size or batch tokens") from None
        for i, hyps in zip(indices, nbest):
            hyps = [_as_pieces(model, h) for h in hyps]
            texts = tokenizer.decode_tgt([h.tokens for h in hyps], unk_spelling=config.unk_spelling)
            results[i] = Translation(tokenizer.src_pieces(encoded[i]), hyps, texts, truncated=truncated[i])
    return results


def _as_pieces(model: Seq2Seq, hypothesis: Hypothesis) -> Hypothesis:
    """Search emits output indices; with ``model.output_vocab: target`` they differ from piece ids."""
    return replace(hypothesis, tokens=model.piece_ids(hypothesis.tokens))


def alignment(hypothesis: Hypothesis) -> str:
    """Hard alignment as 'source-target' piece pairs: each output piece to its most attended source piece."""
    if not hypothesis.tokens:
        return ""
    best = hypothesis.attention[: len(hypothesis.tokens)].argmax(dim=-1).tolist()
    return " ".join(f"{s}-{t}" for t, s in enumerate(best))


def format_translation(number: int, result: Translation, *, n_best: int, alignments: bool) -> str:
    """Output lines for input line ``number`` (from 0): the text, or index<TAB>score<TAB>text rows for n-best."""
    rows = []
    hyps: list[Hypothesis | None] = list(result.hypotheses) or [None] * len(result.texts)
    for hyp, text in zip(hyps, result.texts):
        fields = [text] if n_best == 1 else [str(number), f"{hyp.score:.4f}" if hyp else "0.0000", text]
        if alignments:
            fields.append(alignment(hyp) if hyp else "")
        rows.append("\t".join(fields) + "\n")
    return "".join(rows)
