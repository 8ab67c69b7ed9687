"""Tests for seqlab.train.schedule: learning rates as pure functions of the step, and the plateau memory."""

from __future__ import annotations

import math

import pytest

from seqlab.core.errors import ConfigError
from seqlab.core.run_config import TrainConfig
from seqlab.train.schedule import Plateau, learning_rate, planned_steps, plateau_update, warmup


def lr_at(step: int, total: int = 100, plateau: Plateau = Plateau(), **train) -> float:
    return learning_rate(step, config=TrainConfig(**train), total_steps=total, plateau=plateau)


def test_constant_is_lr_at_every_step() -> None:
    assert {lr_at(s, lr=0.01) for s in (1, 50, 100, 1000)} == {0.01}


def test_warmup_ramps_linearly_then_holds() -> None:
    assert warmup(0, 0) == 1.0
    assert [warmup(s, 4) for s in (1, 2, 4, 8)] == [0.25, 0.5, 1.0, 1.0]
    assert lr_at(5, lr=0.01, warmup_steps=10) == pytest.approx(0.005)
    assert lr_at(10, lr=0.01, warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(99, lr=0.01, warmup_steps=10) == pytest.approx(0.01)


def test_inverse_sqrt_peaks_at_warmup_then_decays_as_one_over_sqrt_step() -> None:
    train = dict(schedule="inverse_sqrt", lr=0.01, warmup_steps=16)
    assert lr_at(1, **train) == pytest.approx(0.01 / 16)
    assert lr_at(8, **train) == pytest.approx(0.005)
    assert lr_at(16, **train) == pytest.approx(0.01)
    assert lr_at(64, **train) == pytest.approx(0.005)
    assert lr_at(256, **train) == pytest.approx(0.0025)


def test_cosine_warms_up_then_falls_to_min_lr_at_the_last_step() -> None:
    train = dict(schedule="cosine", lr=0.01, min_lr=0.001, warmup_steps=10)
    assert lr_at(5, total=110, **train) == pytest.approx(0.005)
    assert lr_at(10, total=110, **train) == pytest.approx(0.01)
    assert lr_at(60, total=110, **train) == pytest.approx(0.0055)  # half-way: the mean of lr and min_lr
    assert lr_at(110, total=110, **train) == pytest.approx(0.001)
    assert lr_at(500, total=110, **train) == pytest.approx(0.001)  # past the plan it stays at the floor
    after = [lr_at(s, total=110, **train) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:]))


def test_cosine_without_warmup_starts_at_lr() -> None:
    assert lr_at(0, total=50, schedule="cosine", lr=0.02) == pytest.approx(0.02)
    assert lr_at(25, total=50, schedule="cosine", lr=0.02) == pytest.approx(0.01)


def test_plateau_rate_is_lr_times_scale_after_warmup() -> None:
    plateau = Plateau(scale=0.25, bad=1)
    assert lr_at(50, plateau=plateau, schedule="plateau", lr=0.02) == pytest.approx(0.005)
    assert lr_at(1, plateau=plateau, schedule="plateau", lr=0.02, warmup_steps=2) == pytest.approx(0.0025)
    # The other schedules ignore the plateau memory.
    assert lr_at(50, plateau=plateau, schedule="constant", lr=0.02) == pytest.approx(0.02)


def test_plateau_update_reduces_after_more_than_patience_bad_validations() -> None:
    config = TrainConfig(schedule="plateau", plateau_patience=1, plateau_factor=0.5)
    state = Plateau()
    state = plateau_update(state, improved=False, config=config)
    assert state == Plateau(scale=1.0, bad=1)
    state = plateau_update(state, improved=False, config=config)
    assert state == Plateau(scale=0.5, bad=0)
    state = plateau_update(state, improved=False, config=config)
    state = plateau_update(state, improved=True, config=config)
    assert state == Plateau(scale=0.5, bad=0)


def test_plateau_patience_zero_reduces_on_the_first_bad_validation() -> None:
    config = TrainConfig(schedule="plateau", plateau_patience=0, plateau_factor=0.1)
    assert plateau_update(Plateau(), improved=False, config=config).scale == pytest.approx(0.1)


def test_plateau_never_goes_below_min_lr() -> None:
    config = TrainConfig(schedule="plateau", lr=0.01, min_lr=0.004, plateau_patience=0, plateau_factor=0.5)
    state = Plateau()
    for _ in range(5):
        state = plateau_update(state, improved=False, config=config)
    assert state.scale * config.lr == pytest.approx(0.004)


def test_planned_steps_are_epochs_capped_by_max_steps() -> None:
    assert planned_steps(TrainConfig(epochs=3), steps_per_epoch=10) == 30
    assert planned_steps(TrainConfig(epochs=3, max_steps=25), steps_per_epoch=10) == 25
    assert planned_steps(TrainConfig(epochs=3, max_steps=100), steps_per_epoch=10) == 30


def test_schedules_are_pure() -> None:
    train = dict(schedule="cosine", lr=0.01, warmup_steps=3)
    assert [lr_at(s, **train) for s in range(1, 20)] == [lr_at(s, **train) for s in range(1, 20)]
    assert all(math.isfinite(lr_at(s, schedule="inverse_sqrt", warmup_steps=1)) for s in range(1, 5))


@pytest.mark.parametrize(
    ("train", "key"),
    [
        (dict(schedule="inverse_sqrt"), "train.warmup_steps"),
        (dict(min_lr=0.1, lr=0.01), "train.min_lr"),
        (dict(plateau_factor=1.0), "train.plateau_factor"),
        (dict(plateau_factor=0.0), "train.plateau_factor"),
        (dict(warmup_steps=-1), "train.warmup_steps"),
        (dict(label_smoothing=1.0), "train.label_smoothing"),
        (dict(weight_decay=-0.1), "train.weight_decay"),
        (dict(valid_every=-1), "train.valid_every"),
        (dict(valid_beam_size=0), "train.valid_beam_size"),
        (dict(patience=-1), "train.patience"),
        (dict(average_last=-2), "train.average_last"),
        (dict(save_every=-1), "train.save_every"),
        (dict(max_steps=-1), "train.max_steps"),
    ],
)
def test_train_config_checks_name_the_key(train: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**train)
    assert key in str(info.value)
