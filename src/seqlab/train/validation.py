"""Validation: loss per target token and a decoded metric on the valid split.

The metric (``train.valid_metric``) decides the best checkpoint, early
stopping and the plateau schedule: BLEU, chrF and ROUGE-L are maximised,
loss is minimised. The decoded metric runs the same search as ``decode``
(greedy by default, to stay cheap) over the raw valid text, so it scores
what users will see rather than what teacher forcing sees.

The scores come straight from sacrebleu and rouge-score, not through
``seqlab.evaluate.metrics``: that module shapes the evaluation report, and
editing it must not make DVC retrain the model. BLEU splits words with
``evaluate.tokenize``, as the test scores do, so that a Chinese or
character-level target is not scored as one word per sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sacrebleu
import torch
from rouge_score import rouge_scorer

from seqlab.core.run_config import DecodeConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.model.runtime import autocast
from seqlab.model.seq2seq import Seq2Seq
from seqlab.search.texts import decode_texts
from seqlab.tokenizer import Tokenizer
from seqlab.train.batches import EncodedSplit, bucket_indices
from seqlab.train.loss import batch_loss

# Sentences per search batch while validating: greedy search is cheap per
# sentence, so larger batches than decode's default use the cores better.
SEARCH_BATCH = 128


@dataclass(frozen=True)
class Validation:
    """loss: NLL per target token (no smoothing, no coverage term); metric: the
    value of ``train.valid_metric`` (0-100, or the loss itself for ``loss``)."""

    loss: float
    metric: float


def is_better(value: float, best: float, *, metric: str) -> bool:
    """Strictly better: lower for ``loss``, higher for the decoded metrics."""
    return value < best if metric == "loss" else value > best


def worst(metric: str) -> float:
    """The starting 'best' value that any first validation improves on."""
    return math.inf if metric == "loss" else -math.inf


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, data: EncodedSplit, *, batch_tokens: int, device: torch.device,
                  cpu_bf16: bool = False) -> float:
    """Mean NLL per target token over a whole split (eval mode, deterministic order)."""
    model.eval()
    src_len, tgt_len = data.lengths()
    total, tokens = 0.0, 0
    for indices in bucket_indices(src_len, tgt_len, batch_tokens=batch_tokens, generator=None):
        batch = data.batch(indices).to(device)
        with autocast(device, cpu_bf16=cpu_bf16):
            total += float(batch_loss(model, batch, smoothing=0.0, coverage=False))
        tokens += batch.n_tokens
    return total / max(tokens, 1)


def decoded_metric(model: Seq2Seq, text: ParallelText, *, tokenizer: Tokenizer, metric: str, beam_size: int,
                   device: torch.device, tokenize: str = "13a") -> float:
    """BLEU, chrF or ROUGE-L (0-100) of the model's 1-best outputs for ``text.src`` against ``text.tgt``.

    ``tokenize`` is sacrebleu's BLEU tokenizer (``evaluate.tokenize``).
    """
    model.eval()
    search = DecodeConfig(beam_size=beam_size, n_best=1, batch_size=SEARCH_BATCH)
    outputs = decode_texts(text.src, model=model, tokenizer=tokenizer, config=search, device=device)
    hypotheses = [out.texts[0] for out in outputs]
    if metric == "rouge_l":
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        total = sum(scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, text.tgt))
        return 100.0 * total / max(len(hypotheses), 1)
    scorer = sacrebleu.BLEU(tokenize=tokenize) if metric == "bleu" else sacrebleu.CHRF()
    return scorer.corpus_score(hypotheses, [text.tgt]).score


def validate(model: Seq2Seq, data: EncodedSplit, text: ParallelText, *, config: TrainConfig, tokenizer: Tokenizer,
             device: torch.device, tokenize: str = "13a") -> Validation:
    """Loss on the encoded valid split, plus the decoded metric unless the metric is the loss.

    Leaves the model in eval mode; the caller switches back to training.
    """
    loss = evaluate_loss(model, data, batch_tokens=config.batch_tokens, device=device, cpu_bf16=config.cpu_bf16)
    if config.valid_metric == "loss":
        return Validation(loss=loss, metric=loss)
    value = decoded_metric(model, text, tokenizer=tokenizer, metric=config.valid_metric,
                           beam_size=config.valid_beam_size, device=device, tokenize=tokenize)
    return Validation(loss=loss, metric=value)
