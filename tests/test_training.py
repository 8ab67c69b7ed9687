"""Tests for seqlab.train.loop (and seqlab.train.validation) with a tiny seeded model on number phrases.

Every train option is exercised here; the exact-resume property is checked in
process by interrupting a run right after a state save and continuing it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from num2words import num2words

import sacrebleu

import seqlab.train.loop as training
import seqlab.train.verdict as verdict
from seqlab.core.data_config import TokenizerConfig
from seqlab.core.errors import run_stage
from seqlab.core.run_config import DecodeConfig, ModelConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.model.checkpoint import load_checkpoint
from seqlab.search.texts import decode_texts
from seqlab.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_tokenizer
from seqlab.train.batches import EncodedSplit, SampledSplits
from seqlab.train.loop import Outputs, TrainingDiverged, TrainResult, make_optimizer, train
from seqlab.train.state import load_state
from seqlab.train.validation import Validation, is_better, validate, worst

MODEL = ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, dropout=0.2)
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Tiny:
    tokenizer: Tokenizer
    train: EncodedSplit
    valid: EncodedSplit
    valid_text: ParallelText


def numbers(values: range) -> ParallelText:
    return ParallelText(src=[num2words(v, lang="en") for v in values], tgt=[num2words(v, lang="fr") for v in values])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and other test processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    train_text, valid_text = numbers(range(1, 61)), numbers(range(200, 208))
    tokenizer = train_tokenizer(train_text, TokenizerConfig(vocab_size=40), seed=1)

    def encode(text: ParallelText) -> EncodedSplit:
        as_arrays = lambda ids: [np.asarray(x, dtype=np.int32) for x in ids]  # noqa: E731
        return EncodedSplit(as_arrays(tokenizer.encode_src(text.src)), as_arrays(tokenizer.encode_tgt(text.tgt)))

    return Tiny(tokenizer, encode(train_text), encode(valid_text), valid_text)


class FakeLive:
    """Records what dvclive would write: (step, name, value) rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, float]] = []
        self.step = 0

    def log_metric(self, name: str, value: float) -> None:
        self.rows.append((self.step, name, value))

    def make_summary(self) -> None:
        pass

    def steps(self, name: str = "valid/loss") -> list[int]:
        return [step for step, n, _ in self.rows if n == name]

    def values(self, name: str) -> list[float]:
        return [value for _, n, value in self.rows if n == name]


def run(tiny: Tiny, tmp_path: Path, *, resume=None, live=None, seed: int = 1234, tokenize: str = "13a",
        samples=(), **options) -> TrainResult:
    """The train stage in process: seed everything, then train with ``options`` over tiny defaults."""
    config = TrainConfig(**{"epochs": 2, "batch_tokens": 60, "device": "cpu", "save_every": 0, **options})
    torch.manual_seed(seed)
    random.seed(seed)
    return train(tiny.train, tiny.valid, tiny.valid_text, model_config=MODEL, config=config, tokenizer=tiny.tokenizer,
                 seed=1234, device=CPU, outputs=Outputs(tmp_path / "model.pt", tmp_path / "state.pt", "fp"),
                 info={"corpus": "tiny"}, resume=resume, live=live, tokenize=tokenize, samples=samples)


def final_weights(tmp_path: Path) -> dict[str, torch.Tensor]:
    return torch.load(tmp_path / "state.pt", weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- the basic run


def test_trains_keeps_best_checkpoint_and_finishes_state(tiny: Tiny, tmp_path: Path) -> None:
    live = FakeLive()
    result = run(tiny, tmp_path, live=live)
    steps_per_epoch = result.steps // 2
    assert live.steps() == [steps_per_epoch, 2 * steps_per_epoch]  # valid_every 0: once per epoch
    # no wall-clock figure: the same run must log the same bytes
    assert {n for _, n, _ in live.rows} == {"train/loss", "valid/loss", "valid/ppl", "valid/bleu", "lr"}
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.info["step"] == result.best_step and loaded.info["valid_metric"] == "bleu"
    assert loaded.info["corpus"] == "tiny"
    assert load_state(tmp_path / "state.pt", fingerprint="fp").finished  # nothing left to train
    assert torch.load(tmp_path / "state.pt", weights_only=True)["progress"]["finished"]
    assert result.resumed_from == 0 and not result.stopped_early and not result.averaged


def test_same_seed_same_weights(tiny: Tiny, tmp_path: Path) -> None:
    run(tiny, tmp_path / "a", max_steps=4, valid_metric="loss")
    run(tiny, tmp_path / "b", max_steps=4, valid_metric="loss")
    assert_same_weights(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))


# ---------------------------------------------------------------- exact resume


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs (BaseException: no handler catches it)."""


@pytest.mark.parametrize(
    ("options", "kill_at_save"),
    [
        (dict(save_every=3), 1),  # mid-epoch, validation once per epoch
        (dict(save_every=2, valid_every=2, schedule="plateau", plateau_patience=0, average_last=2,
              label_smoothing=0.1, optimizer="adamw", weight_decay=0.01, epochs=3), 3),
        (dict(save_every=5, valid_every=4, schedule="cosine", warmup_steps=3, patience=2, valid_metric="loss",
              clip_norm=0.0), 2),
    ],
)
def test_interrupted_run_resumes_to_the_same_weights(tiny: Tiny, tmp_path: Path, monkeypatch, options: dict,
                                                     kill_at_save: int) -> None:
    straight_live = FakeLive()
    run(tiny, tmp_path / "straight", live=straight_live, **options)

    saves = []
    real_save = training.save_state

    def save_then_die(*args, **kwargs) -> None:
        real_save(*args, **kwargs)
        saves.append(kwargs["progress"].step)
        if len(saves) == kill_at_save:
            raise Killed

    monkeypatch.setattr(training, "save_state", save_then_die)
    killed_live = FakeLive()
    with pytest.raises(Killed):
        run(tiny, tmp_path / "killed", live=killed_live, **options)
    monkeypatch.setattr(training, "save_state", real_save)

    check = load_state(tmp_path / "killed" / "state.pt", fingerprint="fp")
    assert check.saved is not None and check.saved.progress.step == saves[-1] > 0
    resumed_live = FakeLive()
    # Another seed: the resumed run must take its random streams from the state, not from the seed.
    result = run(tiny, tmp_path / "killed", live=resumed_live, resume=check.saved, seed=999, **options)
    assert result.resumed_from == saves[-1]
    assert_same_weights(final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed"))
    straight_best = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["state_dict"]
    assert_same_weights(straight_best, torch.load(tmp_path / "killed" / "model.pt", weights_only=True)["state_dict"])
    # The curves: rows kept up to the saved validation, then the resumed run's, equal the straight run's.
    last = check.saved.progress.valid_step
    joined = [r for r in killed_live.rows if r[0] <= last] + resumed_live.rows
    assert joined == straight_live.rows


# ---------------------------------------------------------------- options


def test_valid_every_and_max_steps(tiny: Tiny, tmp_path: Path) -> None:
    live = FakeLive()
    result = run(tiny, tmp_path, live=live, valid_every=3, max_steps=7, valid_metric="loss")
    assert result.steps == 7
    assert live.steps() == [3, 6, 7]  # the last steps are validated too


def constant_validation(monkeypatch, metric: float = 5.0) -> None:
    """Every validation scores the same: the first improves on nothing, the rest do not."""
    monkeypatch.setattr(verdict, "validate", lambda *a, **k: Validation(loss=1.0, metric=metric))


def test_early_stopping_after_patience_validations_without_improvement(tiny: Tiny, tmp_path: Path,
                                                                       monkeypatch) -> None:
    constant_validation(monkeypatch)
    live = FakeLive()
    result = run(tiny, tmp_path, live=live, valid_every=2, patience=3)
    assert result.stopped_early and result.steps == 8 and result.best_step == 2
    assert live.steps() == [2, 4, 6, 8]
    assert load_checkpoint(tmp_path / "model.pt").info["step"] == 2


def test_plateau_cuts_the_rate_after_bad_validations(tiny: Tiny, tmp_path: Path, monkeypatch) -> None:
    constant_validation(monkeypatch)
    live = FakeLive()
    run(tiny, tmp_path, live=live, valid_every=1, max_steps=5, schedule="plateau", plateau_patience=1,
        plateau_factor=0.5, lr=0.01, min_lr=0.003)
    # steps 1-3 at lr; validation 3 is the second without improvement -> halved; then the floor.
    assert live.values("lr") == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005])
    live = FakeLive()
    run(tiny, tmp_path / "more", live=live, valid_every=1, max_steps=8, schedule="plateau", plateau_patience=0,
        plateau_factor=0.5, lr=0.01, min_lr=0.003)
    assert live.values("lr")[-1] == pytest.approx(0.003)


def test_cosine_and_inverse_sqrt_rates_follow_the_schedule(tiny: Tiny, tmp_path: Path) -> None:
    live = FakeLive()
    result = run(tiny, tmp_path, live=live, valid_every=1, schedule="cosine", warmup_steps=2, lr=0.01,
                 valid_metric="loss")
    lrs = live.values("lr")
    assert lrs[:2] == pytest.approx([0.005, 0.01]) and lrs[-1] == pytest.approx(0.0)
    assert len(lrs) == result.steps
    live = FakeLive()
    run(tiny, tmp_path / "isqrt", live=live, valid_every=1, max_steps=8, schedule="inverse_sqrt", warmup_steps=2,
        lr=0.01, valid_metric="loss")
    assert live.values("lr") == pytest.approx([0.005, 0.01] + [0.01 * (2 / s) ** 0.5 for s in range(3, 9)])


def test_label_smoothing_changes_the_training_loss_only(tiny: Tiny, tmp_path: Path) -> None:
    plain, smooth = FakeLive(), FakeLive()
    run(tiny, tmp_path / "a", live=plain, max_steps=1, valid_metric="loss")
    run(tiny, tmp_path / "b", live=smooth, max_steps=1, valid_metric="loss", label_smoothing=0.3)
    assert plain.values("train/loss") != smooth.values("train/loss")
    assert plain.values("valid/loss")[0] == pytest.approx(smooth.values("valid/loss")[0], rel=0.2)


def test_optimizers() -> None:
    model = torch.nn.Linear(2, 2)
    adam = make_optimizer(model, TrainConfig(weight_decay=0.1))
    adamw = make_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.1))
    assert type(adam) is torch.optim.Adam and type(adamw) is torch.optim.AdamW
    assert adamw.param_groups[0]["weight_decay"] == 0.1 and adam.param_groups[0]["lr"] == 0.002


def test_averaging_the_last_checkpoints(tiny: Tiny, tmp_path: Path, monkeypatch) -> None:
    scores = iter([5.0, 4.0, 3.0, 6.0])  # three validations, then the average: better than the best
    monkeypatch.setattr(verdict, "validate", lambda *a, **k: Validation(loss=1.0, metric=next(scores)))
    live = FakeLive()
    result = run(tiny, tmp_path, live=live, valid_every=2, max_steps=6, average_last=3)
    assert result.averaged
    # best_* describe the model saved, the average, not the single checkpoint it replaced (issue 17.15)
    assert (result.best_metric, result.best_step) == (6.0, 6)
    assert load_state(tmp_path / "state.pt", fingerprint="fp").saved.progress.best_metric == 6.0
    snapshots = torch.load(tmp_path / "state.pt", weights_only=True)["snapshots"]
    assert len(snapshots) == 3
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["info"]["averaged_checkpoints"] == 3
    for name, tensor in saved["state_dict"].items():
        expected = sum(s[name].double() for s in snapshots) / 3
        assert torch.allclose(tensor.double(), expected, atol=1e-6)


def test_an_average_that_validates_worse_is_discarded(tiny: Tiny, tmp_path: Path, monkeypatch) -> None:
    scores = iter([5.0, 4.0, 3.0, 1.0])  # three validations, then the average
    monkeypatch.setattr(verdict, "validate", lambda *a, **k: Validation(loss=1.0, metric=next(scores)))
    result = run(tiny, tmp_path, valid_every=2, max_steps=6, average_last=3)
    assert not result.averaged
    assert (result.best_metric, result.best_step) == (5.0, 2)
    assert "averaged_checkpoints" not in load_checkpoint(tmp_path / "model.pt").info


@pytest.mark.parametrize("metric", ["bleu", "chrf", "rouge_l"])
def test_decoded_metrics(tiny: Tiny, tmp_path: Path, metric: str) -> None:
    live = FakeLive()
    run(tiny, tmp_path, live=live, max_steps=2, valid_metric=metric, valid_beam_size=2 if metric == "chrf" else 1)
    (value,) = live.values(f"valid/{metric}")
    assert 0.0 <= value <= 100.0


def test_better_is_higher_for_scores_and_lower_for_loss() -> None:
    assert is_better(30.0, 20.0, metric="bleu") and not is_better(20.0, 20.0, metric="chrf")
    assert is_better(1.0, 2.0, metric="loss") and not is_better(2.0, 1.0, metric="loss")
    assert is_better(0.0, worst("rouge_l"), metric="rouge_l") and is_better(99.0, worst("loss"), metric="loss")


def test_cpu_bf16_autocast_trains(tiny: Tiny, tmp_path: Path) -> None:
    live = FakeLive()
    run(tiny, tmp_path, live=live, max_steps=2, cpu_bf16=True, valid_metric="loss")
    assert all(np.isfinite(live.values("train/loss") + live.values("valid/loss")))


# ---------------------------------------------------------------- divergence


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tiny: Tiny, tmp_path: Path,
                                                                         monkeypatch, capsys) -> None:
    calls = []
    real_loss = training.batch_loss

    def nan_on_third(model, batch, **kwargs):
        calls.append(1)
        loss = real_loss(model, batch, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(training, "batch_loss", nan_on_third)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 3") as info:
        run(tiny, tmp_path, valid_every=1, valid_metric="loss")
    assert "\n" not in str(info.value) and "model.pt keeps the last good checkpoint" in str(info.value)
    assert load_checkpoint(tmp_path / "model.pt").info["step"] in (1, 2)

    calls.clear()
    with pytest.raises(SystemExit) as exit_info:
        run_stage(lambda: run(tiny, tmp_path / "stage", valid_every=1, valid_metric="loss"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # the rest is the progress bar
    assert len(errors) == 1 and errors[0].endswith(str(info.value).replace(str(tmp_path), str(tmp_path / "stage")))
    assert "Traceback" not in err


def test_copy_and_coverage_models_train_with_the_coverage_term(tiny: Tiny, tmp_path: Path, monkeypatch) -> None:
    lives = {}
    for weight in (0.0, 2.0):
        model = ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, copy=True, coverage=True,
                            coverage_loss_weight=weight)
        monkeypatch.setattr(f"{__name__}.MODEL", model)
        lives[weight] = FakeLive()
        run(tiny, tmp_path / str(weight), live=lives[weight], max_steps=2, valid_every=1, valid_metric="loss")
    plain, covered = lives[0.0], lives[2.0]
    assert all(np.isfinite(covered.values("train/loss") + covered.values("valid/loss")))
    # Same seed, same first batch: the objective differs by the (positive) weighted coverage term ...
    assert covered.values("train/loss")[0] > plain.values("train/loss")[0]
    # ... and its gradient moved the weights (validation loss carries no coverage term itself).
    assert covered.values("valid/loss")[0] != plain.values("valid/loss")[0]
    assert load_checkpoint(tmp_path / "2.0" / "model.pt").model.config.copy


def test_target_output_vocab_trains_and_translates_with_the_target_pieces_only(tiny: Tiny, tmp_path: Path,
                                                                              monkeypatch) -> None:
    model = ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, output_vocab="target")
    monkeypatch.setattr(f"{__name__}.MODEL", model)
    run(tiny, tmp_path, epochs=3)
    loaded = load_checkpoint(tmp_path / "model.pt")  # rebuilt from the file alone
    used = sorted({int(i) for ids in tiny.train.tgt for i in ids} | {PAD_ID, UNK_ID, BOS_ID, EOS_ID})
    assert loaded.model.output_ids.tolist() == used
    assert loaded.model.output.out_features == len(used) < tiny.tokenizer.tgt_vocab_size
    config = DecodeConfig(beam_size=3, n_best=3, device="cpu")
    results = decode_texts(tiny.valid_text.src, model=loaded.model, tokenizer=tiny.tokenizer, config=config, device=CPU)
    emitted = {t for r in results for h in r.hypotheses for t in h.tokens}
    assert emitted and emitted <= set(used)  # piece ids, mapped back from output indices
    assert [r.texts for r in results] == [tiny.tokenizer.decode_tgt([h.tokens for h in r.hypotheses]) for r in results]


def test_subword_samples_are_read_once_before_the_epochs_and_size_the_output_layer(tiny: Tiny, tmp_path: Path,
                                                                                   monkeypatch) -> None:
    monkeypatch.setattr(f"{__name__}.MODEL", ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8,
                                                         output_vocab="target"))
    used = {int(i) for ids in tiny.train.tgt for i in ids} | {PAD_ID, UNK_ID, BOS_ID, EOS_ID}
    extra = min(set(range(tiny.tokenizer.tgt_vocab_size)) - used)  # a piece only the last sample uses
    loads = []

    def load(number: int) -> EncodedSplit:
        loads.append(number)
        tgt = list(tiny.train.tgt)
        if number == 2:
            tgt[0] = np.append(tgt[0], np.int32(extra))
        return EncodedSplit(tiny.train.src, tgt)

    run(tiny, tmp_path, epochs=4, samples=SampledSplits(3, load=load))
    # Sizing the output layer reads each sample once; planning the batches reads none again;
    # then each epoch reads its own (only the last one read is kept).
    assert loads == [0, 1, 2, 0, 1, 2, 0]
    assert load_checkpoint(tmp_path / "model.pt").model.output_ids.tolist() == sorted(used | {extra})


def test_the_validation_bleu_splits_words_with_evaluate_tokenize(tiny: Tiny, tmp_path: Path) -> None:
    """Issue 17.16: a character-level or Chinese target is scored with its own tokenizer."""
    run(tiny, tmp_path, epochs=6, valid_metric="loss")  # long enough to get some characters right
    model = load_checkpoint(tmp_path / "model.pt").model
    config = TrainConfig(valid_metric="bleu", batch_tokens=60, device="cpu")
    outputs = decode_texts(tiny.valid_text.src, model=model, tokenizer=tiny.tokenizer,
                              config=DecodeConfig(beam_size=1, batch_size=128), device=CPU)
    hypotheses = [out.texts[0] for out in outputs]
    scores = {}
    for tokenize in ("13a", "char"):
        scores[tokenize] = validate(model, tiny.valid, tiny.valid_text, config=config, tokenizer=tiny.tokenizer,
                                    device=CPU, tokenize=tokenize).metric
        expected = sacrebleu.BLEU(tokenize=tokenize).corpus_score(hypotheses, [tiny.valid_text.tgt]).score
        assert scores[tokenize] == pytest.approx(expected)
    assert scores["char"] != scores["13a"]
