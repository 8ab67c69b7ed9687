"""Scores on one 0-100 scale: sacrebleu BLEU, chrF and TER, rouge-score ROUGE.

Pure functions over lists of strings; the evaluate stage and ``seqlab score``
do the file reading and writing. :func:`score` gives corpus scores with 95%
bootstrap intervals; :func:`sentence_scores` and :func:`length_buckets` break
them down for error analysis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics.base import Metric

from seqlab.core.errors import DataError
from seqlab.core.run_config import EvaluateConfig

# rougeLsum is ROUGE-L over sentences (one per line); a line here is one segment,
# so it is split after sentence-final punctuation followed by whitespace.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Scores:
    """Corpus scores (0-100), their 95% intervals and the signatures that make them comparable.

    A sacrebleu metric left out of ``evaluate.metrics`` is None, with an empty signature.
    """

    bleu: float | None
    chrf: float | None
    rouge: dict[str, float]  # rouge type -> mean F-measure
    bleu_signature: str
    chrf_signature: str
    sentences: int
    ter: float | None = None  # an edit rate: lower is better
    ter_signature: str = ""
    rouge_signature: str = ""
    ci95: dict[str, float] = field(default_factory=dict)  # metric -> half-width; empty without bootstrap

    def corpus(self) -> dict[str, float]:
        """Every score that was computed, by metric name, in a fixed order."""
        named = {"bleu": self.bleu, "chrf": self.chrf, "ter": self.ter}
        return {**{k: v for k, v in named.items() if v is not None}, **self.rouge}

    def as_metrics(self) -> dict[str, object]:
        """The JSON written for ``dvc metrics``: numbers only, so every leaf is a column in ``dvc exp show``."""
        out: dict[str, object] = {name: round(value, 4) for name, value in self.corpus().items()}
        out["sentences"] = self.sentences
        if self.ci95:
            out["ci95"] = {name: round(value, 4) for name, value in self.ci95.items()}
        return out

    def signatures(self) -> dict[str, str]:
        """How each score was computed (kept apart from the metrics: strings clutter ``dvc exp show``)."""
        named = {"bleu": self.bleu_signature, "chrf": self.chrf_signature, "ter": self.ter_signature,
                 "rouge": self.rouge_signature}
        return {name: signature for name, signature in named.items() if signature}


# ---------------------------------------------------------------- bootstrap


def interval_half_width(samples: np.ndarray) -> float:
    """Half-width of the 95% interval of bootstrap ``samples`` (B,), by sacrebleu's rule.

    The 2.5% lowest and highest samples are cut, exactly as sacrebleu does for
    BLEU, chrF and TER, so that every metric's interval means the same thing.
    """
    ordered = np.sort(samples)
    cut = len(ordered) // 40
    return float(0.5 * (ordered[len(ordered) - cut - 1] - ordered[cut]))


def resample_indices(count: int, *, resamples: int, seed: int) -> np.ndarray:
    """(resamples, count) sentence indices drawn with replacement.

    The same draw as sacrebleu's bootstrap for the same seed, and the same for
    every metric, so that all of them are resampled over the same sentence sets.
    """
    return np.random.default_rng(seed).choice(count, size=(resamples, count), replace=True)


# ---------------------------------------------------------------- sacrebleu


@dataclass(frozen=True)
class CorpusScore:
    score: float
    ci95: float | None  # half-width of the 95% bootstrap interval; None without bootstrap
    signature: str


def sacrebleu_metric(name: str, config: EvaluateConfig, *, effective_order: bool = False) -> Metric:
    """A sacrebleu metric set up from ``evaluate``: casing for all three, tokenization for BLEU.

    ``effective_order`` (BLEU only) averages over the n-gram orders the text has,
    so that a short sentence, or a bucket of them, with no 4-gram at all is not 0.
    It changes nothing where every order is present.
    """
    if name == "bleu":
        return sacrebleu.BLEU(lowercase=config.lowercase, tokenize=config.tokenize, effective_order=effective_order)
    if name == "chrf":
        return sacrebleu.CHRF(lowercase=config.lowercase)
    if name == "ter":
        return sacrebleu.TER(case_sensitive=not config.lowercase)
    raise ValueError(f"unknown sacrebleu metric {name!r}")


def corpus_score(name: str, hypotheses: list[str], references: list[str], config: EvaluateConfig) -> CorpusScore:
    """One sacrebleu corpus score, with its 95% bootstrap interval when ``config`` asks for one."""
    metric = sacrebleu_metric(name, config)
    result = metric.corpus_score(hypotheses, [references])
    ci95 = None
    if config.bootstrap_resamples and hypotheses:
        ci95 = _bootstrap(metric, hypotheses, references, config)
        # The attributes sacrebleu's own bootstrap sets, so the signature says "bs:N|seed:S" as its would.
        metric.n_bootstrap, metric.seed = config.bootstrap_resamples, str(config.bootstrap_seed)
    return CorpusScore(score=float(result.score), ci95=ci95, signature=str(metric.get_signature()))


def _bootstrap(metric: Metric, hypotheses: list[str], references: list[str], config: EvaluateConfig) -> float:
    """Half-width of the 95% interval, resampled exactly as ``corpus_score(n_bootstrap=...)`` does.

    Same per-sentence statistics, same indices for our seed, same score function
    as sacrebleu's bootstrap; it is redone here because sacrebleu 2.x's own
    averaging fails when a resample scores exactly 0 (a Python float among numpy
    float32s), and so that every metric is resampled with the same indices.
    """
    stats = np.asarray(metric._extract_corpus_statistics(hypotheses, [references]), dtype=np.float32)  # (N, k)
    indices = resample_indices(len(hypotheses), resamples=config.bootstrap_resamples, seed=config.bootstrap_seed)
    samples = [float(metric._compute_score_from_stats(stats[rows].sum(axis=0)).score) for rows in indices]
    return interval_half_width(np.asarray(samples))


# ---------------------------------------------------------------- ROUGE


def split_sentences(text: str) -> str:
    """``text`` with one sentence per line, the form rouge-score's rougeLsum expects."""
    return "\n".join(part for part in SENTENCE_END.split(text.strip()) if part)


def rouge_sentence_scores(hypotheses: list[str], references: list[str], *,
                          rouge_types: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-sentence ROUGE F-measure (with stemming) times 100: rouge type -> (N,) array."""
    if not rouge_types:
        return {}
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=True)
    out = {name: np.zeros(len(hypotheses)) for name in rouge_types}
    for i, (hyp, ref) in enumerate(zip(hypotheses, references)):
        # Newlines are whitespace to the other types' tokenizer, so splitting changes only rougeLsum.
        for name, value in scorer.score(split_sentences(ref), split_sentences(hyp)).items():
            out[name][i] = 100.0 * value.fmeasure
    return out


def rouge(hypotheses: list[str], references: list[str], *, rouge_types: tuple[str, ...]) -> dict[str, float]:
    """Mean ROUGE F-measure per type (with stemming), times 100."""
    per_sentence = rouge_sentence_scores(hypotheses, references, rouge_types=rouge_types)
    return {name: _mean(values) for name, values in per_sentence.items()}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0  # nothing to score scores 0, not NaN


def _rouge_signature(config: EvaluateConfig) -> str:
    parts = [f"types:{','.join(config.rouge_types)}", "stem:porter", "case:lc", "lsum-split:.!?"]
    if config.bootstrap_resamples:
        parts += [f"bs:{config.bootstrap_resamples}", f"seed:{config.bootstrap_seed}"]
    return "|".join(parts + [f"version:{version('rouge-score')}"])


# ---------------------------------------------------------------- corpus


def score(hypotheses: list[str], references: list[str], config: EvaluateConfig) -> Scores:
    """The corpus scores ``config`` asks for, of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} hypotheses but {len(references)} references; they must be line-aligned")
    sacre = {name: corpus_score(name, hypotheses, references, config) for name in config.metrics}
    value = {name: result.score for name, result in sacre.items()}
    signature = {name: result.signature for name, result in sacre.items()}
    ci95 = {name: result.ci95 for name, result in sacre.items() if result.ci95 is not None}
    per_sentence = rouge_sentence_scores(hypotheses, references, rouge_types=config.rouge_types)
    if config.bootstrap_resamples and hypotheses:
        indices = resample_indices(len(hypotheses), resamples=config.bootstrap_resamples,
                                   seed=config.bootstrap_seed)
        # (B, N) resampled sentence scores -> (B,) resampled corpus means -> one interval per type
        ci95.update({name: interval_half_width(values[indices].mean(axis=1)) for name, values in per_sentence.items()})
    return Scores(
        bleu=value.get("bleu"),
        chrf=value.get("chrf"),
        ter=value.get("ter"),
        rouge={name: _mean(values) for name, values in per_sentence.items()},
        bleu_signature=signature.get("bleu", ""),
        chrf_signature=signature.get("chrf", ""),
        ter_signature=signature.get("ter", ""),
        rouge_signature=_rouge_signature(config) if config.rouge_types else "",
        sentences=len(hypotheses),
        ci95=ci95,
    )


# ---------------------------------------------------------------- breakdowns


@dataclass(frozen=True)
class SentenceScore:
    """One row of the sentence table: sentence BLEU and chrF (0-100) with the texts."""

    line: int  # 1-based line in the test files
    bleu: float
    chrf: float
    source: str
    reference: str
    hypothesis: str


def _check_aligned(sources: list[str], hypotheses: list[str], references: list[str]) -> None:
    if not len(sources) == len(hypotheses) == len(references):
        raise DataError(f"{len(sources)} sources, {len(hypotheses)} hypotheses and {len(references)} references;"
                        " they must be line-aligned")


def sentence_scores(sources: list[str], hypotheses: list[str], references: list[str],
                    config: EvaluateConfig) -> list[SentenceScore]:
    """Sentence BLEU and chrF of every line, in corpus order (casing and tokenization from ``config``)."""
    _check_aligned(sources, hypotheses, references)
    bleu = sacrebleu_metric("bleu", config, effective_order=True)
    chrf = sacrebleu_metric("chrf", config)
    return [
        SentenceScore(line=i, bleu=bleu.sentence_score(hyp, [ref]).score, chrf=chrf.sentence_score(hyp, [ref]).score,
                      source=src, reference=ref, hypothesis=hyp)
        for i, (src, hyp, ref) in enumerate(zip(sources, hypotheses, references), start=1)
    ]


@dataclass(frozen=True)
class BucketScore:
    """Corpus BLEU (effective order) and chrF (0-100) of the sentences whose source length falls in one bucket."""

    bucket: str  # e.g. "3-4" source words; the last is open, e.g. "9+"
    source_words: int  # the bucket's upper bound (for the open one, its longest source): the plot's x
    sentences: int
    bleu: float
    chrf: float


def _bucket_of(words: int, edges: tuple[int, ...]) -> int:
    return next((i for i, edge in enumerate(edges) if words <= edge), len(edges))


def _bucket_label(bucket: int, edges: tuple[int, ...], longest: int) -> tuple[str, int]:
    """("3-4", 4) for a closed bucket; ("9+", longest source in it) for the open last one."""
    low = 1 if bucket == 0 else edges[bucket - 1] + 1
    if bucket == len(edges):
        return f"{low}+", longest
    high = edges[bucket]
    return (f"{low}-{high}" if low < high else str(high)), high


def length_buckets(sources: list[str], hypotheses: list[str], references: list[str],
                   config: EvaluateConfig) -> list[BucketScore]:
    """Scores by source length in whitespace words (tokenizer-independent), for buckets that hold sentences.

    Bucket i holds lengths in (edges[i-1], edges[i]]; the last holds the longer rest.
    """
    _check_aligned(sources, hypotheses, references)
    lengths = [len(src.split()) for src in sources]
    members: dict[int, list[int]] = {}
    for i, words in enumerate(lengths):
        members.setdefault(_bucket_of(words, config.length_buckets), []).append(i)
    bleu = sacrebleu_metric("bleu", config, effective_order=True)
    chrf = sacrebleu_metric("chrf", config)
    rows = []
    for bucket in sorted(members):
        index = members[bucket]
        label, words = _bucket_label(bucket, config.length_buckets, max(lengths[i] for i in index))
        hyps, refs = [hypotheses[i] for i in index], [[references[i] for i in index]]
        rows.append(BucketScore(bucket=label, source_words=words, sentences=len(index),
                                bleu=bleu.corpus_score(hyps, refs).score, chrf=chrf.corpus_score(hyps, refs).score))
    return rows
