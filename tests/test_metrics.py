"""Tests for seqlab.evaluate.metrics: BLEU, chrF, TER and ROUGE on one 0-100 scale, intervals, breakdowns."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace as dataclass_replace

import numpy as np
import pytest
import sacrebleu

from seqlab.core.errors import ConfigError, DataError
from seqlab.core.run_config import EvaluateConfig
from seqlab.evaluate.metrics import (
    Scores,
    interval_half_width,
    length_buckets,
    resample_indices,
    rouge,
    rouge_sentence_scores,
    score,
    sentence_scores,
    split_sentences,
)

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
    assert set(scores.rouge) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
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
    # Signatures are strings, kept out of the metrics JSON so that `dvc exp show` stays numeric.
    assert "signature" not in metrics
    assert scores.signatures()["bleu"] == scores.bleu_signature
    assert scores.signatures()["chrf"] == scores.chrf_signature
    assert json.loads(json.dumps(metrics)) == metrics


def test_scores_is_frozen() -> None:
    scores = Scores(bleu=1.0, chrf=2.0, rouge={}, bleu_signature="b", chrf_signature="c", sentences=0)
    with pytest.raises(AttributeError):
        scores.bleu = 3.0  # type: ignore[misc]


# ---------------------------------------------------------------- TER, metric choice, tokenization


def test_ter_is_an_edit_rate_on_0_100() -> None:
    assert score(REFS, REFS, CONFIG).ter == pytest.approx(0.0)
    hyps = ["deux mille neuf cent quarante deux", "vingt mille trois cent douze", "cent"]
    ter = score(hyps, REFS, CONFIG).ter
    assert 0.0 < ter < 100.0
    # one substitution, two deletions, five deletions: 8 edits over 6 + 7 + 6 reference words
    assert ter == pytest.approx(100.0 * 8 / 19)


def test_casing_applies_to_ter_too() -> None:
    hyps = [ref.upper() for ref in REFS]
    assert score(hyps, REFS, EvaluateConfig(lowercase=True)).ter == pytest.approx(0.0)
    assert score(hyps, REFS, CONFIG).ter == pytest.approx(100.0)
    assert "case:mixed" in score(REFS, REFS, CONFIG).ter_signature


def test_only_the_metrics_asked_for_are_computed() -> None:
    scores = score(REFS, REFS, EvaluateConfig(metrics=("chrf",), rouge_types=()))
    assert scores.bleu is None and scores.ter is None and scores.rouge == {}
    assert set(scores.as_metrics()) == {"chrf", "sentences", "ci95"}
    assert set(scores.signatures()) == {"chrf"}


def test_tokenize_option_reaches_bleu() -> None:
    hyps = ["deux mille neuf cent quarante-deux"]
    refs = ["deux mille neuf cent quarante-trois"]
    by_13a = score(hyps, refs, CONFIG)
    by_char = score(hyps, refs, EvaluateConfig(tokenize="char"))
    assert "tok:char" in by_char.bleu_signature
    assert by_char.bleu > by_13a.bleu  # one wrong word costs fewer characters than words


# ---------------------------------------------------------------- intervals


def test_every_score_gets_an_interval() -> None:
    hyps = ["deux mille neuf cent quarante deux", "vingt mille trois cent douze", "cent quatre vingt"] * 5
    scores = score(hyps, REFS * 5, EvaluateConfig(bootstrap_resamples=200))
    assert set(scores.ci95) == set(scores.corpus())
    assert all(value > 0.0 for value in scores.ci95.values())
    assert "bs:200|seed:12345" in scores.bleu_signature
    assert "bs:200|seed:12345" in scores.signatures()["rouge"]


def test_perfect_output_has_a_zero_width_interval() -> None:
    scores = score(REFS, REFS, CONFIG)
    assert all(value == pytest.approx(0.0) for value in scores.ci95.values())


def test_bleu_interval_is_sacrebleus_own_with_our_seed() -> None:
    hyps = ["deux mille neuf cent", "vingt et un mille trois cent", "cent quatre vingt dix neuf mille"] * 4
    refs = REFS * 4
    ours = score(hyps, refs, EvaluateConfig(bootstrap_resamples=100, bootstrap_seed=7))
    os.environ["SACREBLEU_SEED"] = "7"
    try:
        theirs = sacrebleu.BLEU().corpus_score(hyps, [refs], n_bootstrap=100)
    finally:
        del os.environ["SACREBLEU_SEED"]
    assert ours.ci95["bleu"] == pytest.approx(theirs._ci)
    assert "SACREBLEU_SEED" not in os.environ  # our seed never goes through the environment


def test_interval_survives_a_resample_that_scores_0() -> None:
    # sacrebleu 2.x's own chrF bootstrap raises TypeError here: the resamples made of the
    # upper-case line score a Python 0.0 among numpy float32s.
    hyps, refs = ["LE CHAT EST ASSIS", "bonjour"], ["le chat est assis", "bonjour"]
    scores = score(hyps, refs, EvaluateConfig(bootstrap_resamples=20))
    assert scores.ci95["chrf"] > 0.0


def test_rouge_interval_resamples_sentences_with_the_seed() -> None:
    hyps = ["a b c", "a x", "y z", "a b"]
    refs = ["a b c", "a b", "a b", "a b"]
    config = EvaluateConfig(metrics=(), rouge_types=("rouge1",), bootstrap_resamples=50, bootstrap_seed=3)
    per_sentence = rouge_sentence_scores(hyps, refs, rouge_types=("rouge1",))["rouge1"]
    means = per_sentence[resample_indices(4, resamples=50, seed=3)].mean(axis=1)
    assert score(hyps, refs, config).ci95 == {"rouge1": pytest.approx(interval_half_width(means))}
    other = dataclass_replace(config, bootstrap_seed=4)
    assert score(hyps, refs, config) == score(hyps, refs, config)
    assert score(hyps, refs, other).rouge == score(hyps, refs, config).rouge


def test_interval_half_width_cuts_2_5_percent_each_side() -> None:
    # 40 samples 0..39: one cut at each end leaves 1..38
    assert interval_half_width(np.arange(40.0)[::-1]) == pytest.approx(18.5)


def test_bootstrap_off_gives_no_intervals() -> None:
    scores = score(REFS, REFS, EvaluateConfig(bootstrap_resamples=0))
    assert scores.ci95 == {}
    assert "ci95" not in scores.as_metrics()
    assert "bs:" not in scores.bleu_signature


def test_as_metrics_leaves_are_all_numbers() -> None:
    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        else:
            yield value

    metrics = score(REFS[:2] + ["cent"], REFS, CONFIG).as_metrics()
    assert metrics["ci95"].keys() == {"bleu", "chrf", "ter", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(isinstance(leaf, (int, float)) and not isinstance(leaf, bool) for leaf in leaves(metrics))


# ---------------------------------------------------------------- ROUGE-Lsum


def test_split_sentences_after_final_punctuation() -> None:
    assert split_sentences("Il pleut. Il fait froid! Vraiment? oui") == "Il pleut.\nIl fait froid!\nVraiment?\noui"
    assert split_sentences("  vingt et un  ") == "vingt et un"
    assert split_sentences("3.5 pour cent") == "3.5 pour cent"  # no space after the point: not a sentence end


def test_rouge_lsum_is_summary_level() -> None:
    ref = "a b c. d e f."
    hyp = "d e f. a b c."
    result = rouge([hyp], [ref], rouge_types=("rougeL", "rougeLsum"))
    assert result["rougeL"] == pytest.approx(50.0)  # one LCS over the whole line
    assert result["rougeLsum"] == pytest.approx(100.0)  # the union of per-sentence LCSs
    assert rouge(["a b c"], ["a b d"], rouge_types=("rougeL", "rougeLsum")) == pytest.approx(
        rouge(["a b c"], ["a b d"], rouge_types=("rougeLsum", "rougeL")))


# ---------------------------------------------------------------- sentence table and length buckets

SOURCES = ["two", "three", "nine hundred", "nine hundred and two", "one thousand two hundred and three"]
TARGETS = ["deux", "trois", "neuf cents", "neuf cent deux", "mille deux cent trois"]


def test_sentence_scores_keep_order_and_texts() -> None:
    hyps = ["deux", "quatre", "neuf cents", "neuf cent", "mille deux cent trois"]
    rows = sentence_scores(SOURCES, hyps, TARGETS, CONFIG)
    assert [r.line for r in rows] == [1, 2, 3, 4, 5]
    assert (rows[3].source, rows[3].reference, rows[3].hypothesis) == (SOURCES[3], TARGETS[3], hyps[3])
    # effective order: a one-word exact match is 100, not 0 for lack of 4-grams
    assert rows[0].bleu == pytest.approx(100.0) and rows[0].chrf == pytest.approx(100.0)
    assert rows[1].bleu == pytest.approx(0.0)
    assert 0.0 < rows[3].bleu < 100.0 and 0.0 < rows[3].chrf < 100.0


def test_breakdowns_need_aligned_inputs() -> None:
    with pytest.raises(DataError, match=r"5 sources, 4 hypotheses and 5 references"):
        sentence_scores(SOURCES, TARGETS[:4], TARGETS, CONFIG)
    with pytest.raises(DataError, match=r"line-aligned"):
        length_buckets(SOURCES[:2], TARGETS, TARGETS, CONFIG)


def test_length_buckets_by_source_words() -> None:
    hyps = ["deux", "trois", "neuf cents", "neuf cent", "mille"]
    rows = length_buckets(SOURCES, hyps, TARGETS, EvaluateConfig(length_buckets=(1, 2, 3)))
    # lengths 1, 1, 2, 4, 6: bucket "3" is empty and left out; the open one runs to the longest source
    assert [(r.bucket, r.source_words, r.sentences) for r in rows] == [("1", 1, 2), ("2", 2, 1), ("4+", 6, 2)]
    assert rows[0].bleu == pytest.approx(100.0) and rows[1].chrf == pytest.approx(100.0)
    assert rows[2].bleu < 100.0
    wide = length_buckets(SOURCES, hyps, TARGETS, EvaluateConfig(length_buckets=(2, 10)))
    assert [(r.bucket, r.sentences) for r in wide] == [("1-2", 3), ("3-10", 2)]


# ---------------------------------------------------------------- evaluate params


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics": ("bleu", "bleu")}, r"evaluate\.metrics: lists a metric twice"),
        ({"metrics": (), "rouge_types": ()}, r"both empty"),
        ({"bootstrap_resamples": 1}, r"evaluate\.bootstrap_resamples: must be 0 \(off\) or at least 2"),
        ({"bootstrap_resamples": -5}, r"evaluate\.bootstrap_resamples"),
        ({"length_buckets": (4, 2)}, r"evaluate\.length_buckets: must be increasing"),
        ({"length_buckets": ()}, r"evaluate\.length_buckets"),
        ({"length_buckets": (0, 3)}, r"evaluate\.length_buckets"),
        ({"attention_heatmaps": -1}, r"evaluate\.attention_heatmaps"),
    ],
)
def test_evaluate_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EvaluateConfig(**changes)


def test_evaluate_params_are_checked_when_loaded(tmp_path) -> None:
    from seqlab.core.config import load_config

    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n  metrics: [bleu, blue]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"evaluate\.metrics\[1\]: 'blue' is not one of 'bleu', 'chrf', 'ter'"):
        load_config(path)
    path.write_text("evaluate:\n  tokenize: spm\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"evaluate\.tokenize: 'spm' is not one of '13a'"):
        load_config(path)
