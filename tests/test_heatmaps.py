"""Tests for seqlab.decode.heatmaps: attention figures with readable piece labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqlab.decode.heatmaps import attention_figure

SOURCE = ["▁twenty", "-", "one"]
TARGET = ["▁vingt", "▁et", "▁un", "</s>"]


def weights(rows: int, cols: int) -> np.ndarray:
    raw = np.random.default_rng(0).random((rows, cols))
    return raw / raw.sum(axis=1, keepdims=True)  # each output piece's attention sums to 1


def test_source_on_x_target_on_y_with_every_label() -> None:
    fig = attention_figure(weights(4, 3), source=SOURCE, target=TARGET, title="twenty-one")
    (ax, _colorbar) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == SOURCE
    assert [t.get_text() for t in ax.get_yticklabels()] == TARGET
    assert ax.get_xlabel() == "source pieces" and ax.get_ylabel() == "output pieces"
    assert fig.get_suptitle() == "twenty-one"
    (image,) = ax.get_images()
    assert image.get_clim() == (0.0, 1.0)  # one colour scale for every figure


def test_figure_grows_with_the_sentence(tmp_path: Path) -> None:
    small = attention_figure(weights(2, 2), source=SOURCE[:2], target=TARGET[:2])
    large = attention_figure(weights(20, 30), source=[f"p{i}" for i in range(30)], target=[f"q{i}" for i in range(20)])
    assert large.get_figwidth() > small.get_figwidth() and large.get_figheight() > small.get_figheight()
    path = tmp_path / "large.png"
    large.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shape_must_match_the_labels() -> None:
    with pytest.raises(ValueError, match=r"\(3, 3\) but there are 4 target and 3 source pieces"):
        attention_figure(weights(3, 3), source=SOURCE, target=TARGET)
