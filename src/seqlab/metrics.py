"""Corpus-level scores on one 0-100 scale: sacrebleu BLEU and chrF, rouge-score ROUGE.

Pure functions over lists of strings; the evaluate stage and ``seqlab score``
do the file reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu
from rouge_score import rouge_scorer

from seqlab.config import EvaluateConfig
from seqlab.errors import DataError


@dataclass(frozen=True)
class Scores:
    """Corpus scores (0-100) and the sacrebleu signatures that make them comparable."""

    bleu: float
    chrf: float
    rouge: dict[str, float]  # rouge type -> F-measure
    bleu_signature: str
    chrf_signature: str
    sentences: int

    def as_metrics(self) -> dict[str, object]:
        """The flat JSON written for ``dvc metrics``: numbers first, signatures beside them."""
        return {
            "bleu": round(self.bleu, 4),
            "chrf": round(self.chrf, 4),
            **{name: round(value, 4) for name, value in self.rouge.items()},
            "sentences": self.sentences,
            "signature": {"bleu": self.bleu_signature, "chrf": self.chrf_signature},
        }


def rouge(hypotheses: list[str], references: list[str], *, rouge_types: tuple[str, ...]) -> dict[str, float]:
    """Mean ROUGE F-measure per type (with stemming), times 100."""
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=True)
    totals = {name: 0.0 for name in rouge_types}
    for hyp, ref in zip(hypotheses, references):
        for name, score in scorer.score(ref, hyp).items():
            totals[name] += score.fmeasure
    count = max(len(hypotheses), 1)
    return {name: 100.0 * total / count for name, total in totals.items()}


def score(hypotheses: list[str], references: list[str], config: EvaluateConfig) -> Scores:
    """BLEU, chrF and ROUGE of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} hypotheses but {len(references)} references; they must be line-aligned")
    bleu = sacrebleu.BLEU(lowercase=config.lowercase)
    chrf = sacrebleu.CHRF(lowercase=config.lowercase)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return Scores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        rouge=rouge(hypotheses, references, rouge_types=config.rouge_types),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        sentences=len(hypotheses),
    )
