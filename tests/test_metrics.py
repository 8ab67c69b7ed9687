"""Tests for seqlab.metrics: BLEU, chrF and ROUGE on one 0-100 scale."""

from __future__ import annotations

import json
import math

import pytest

from seqlab.config import EvaluateConfig
from seqlab.errors import DataError
from seqlab.metrics import Scores, rouge, score

REFS = [
    "deux mille neuf cent quarante trois",
    "vingt et un mille trois cent douze",
    "cent quatre vingt dix neuf mille",
]
CONFIG = EvaluateConfig()


def test_identical_hypotheses_score_100() -> None:
    scores = score(REFS, REFS, CONFIG)
    assert scores.bleu == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)
    assert set(scores.rouge) == {"rouge1", "rouge2", "rougeL"}
    for value in scores.rouge.values():
        assert value == pytest.approx(100.0)
    assert scores.sentences == 3


def test_disjoint_hypotheses_score_0() -> None:
    hyps = ["un", "deux", "trois"]
    scores = score(hyps, ["quatre cinq six sept"] * 3, CONFIG)
    assert scores.bleu == pytest.approx(0.0)
    assert all(value == pytest.approx(0.0) for value in scores.rouge.values())


def test_partial_scores_are_between_0_and_100() -> None:
    hyps = [
        "deux mille neuf cent quarante deux",
        "vingt mille trois cent douze",
        "cent quatre vingt dix neuf",
    ]
    scores = score(hyps, REFS, CONFIG)
    for value in (scores.bleu, scores.chrf, *scores.rouge.values()):
        assert 0.0 < value < 100.0
    # ROUGE is on the same 0-100 scale as BLEU and chrF, not 0-1.
    assert scores.rouge["rouge1"] > 50.0


def test_lowercase_option() -> None:
    hyps = [ref.upper() for ref in REFS]
    assert score(hyps, REFS, EvaluateConfig(lowercase=True)).bleu == pytest.approx(100.0)
    assert score(hyps, REFS, EvaluateConfig(lowercase=False)).bleu < 100.0


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(DataError, match=r"2 hypotheses but 3 references"):
        score(REFS[:2], REFS, CONFIG)


def test_signatures_are_sacrebleu_signatures() -> None:
    scores = score(REFS, REFS, CONFIG)
    for signature in (scores.bleu_signature, scores.chrf_signature):
        assert "nrefs:1" in signature
        assert "version:" in signature
        assert "|" in signature
    assert "case:mixed" in scores.bleu_signature
    assert "tok:13a" in scores.bleu_signature
    assert "case:lc" in score(REFS, REFS, EvaluateConfig(lowercase=True)).bleu_signature


def test_rouge_types_follow_config() -> None:
    scores = score(REFS, REFS, EvaluateConfig(rouge_types=("rougeL", "rouge4")))
    assert list(scores.rouge) == ["rougeL", "rouge4"]


def test_rouge_is_a_mean_over_sentences() -> None:
    result = rouge(["a b", "x y"], ["a b", "c d"], rouge_types=("rouge1",))
    assert result == {"rouge1": pytest.approx(50.0)}


def test_rouge_of_nothing_is_zero() -> None:
    assert rouge([], [], rouge_types=("rouge1",)) == {"rouge1": 0.0}


def test_as_metrics_is_flat_numeric_json() -> None:
    scores = score(REFS[:2] + ["cent"], REFS, CONFIG)
    metrics = scores.as_metrics()
    for key in ("bleu", "chrf", "rouge1", "rouge2", "rougeL"):
        assert isinstance(metrics[key], float)
        assert not math.isnan(metrics[key])
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["bleu"] == round(scores.bleu, 4)
    assert metrics["rouge2"] == round(scores.rouge["rouge2"], 4)
    assert metrics["sentences"] == 3
    assert metrics["signature"] == {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature}
    assert json.loads(json.dumps(metrics)) == metrics


def test_scores_is_frozen() -> None:
    scores = Scores(bleu=1.0, chrf=2.0, rouge={}, bleu_signature="b", chrf_signature="c", sentences=0)
    with pytest.raises(AttributeError):
        scores.bleu = 3.0  # type: ignore[misc]
