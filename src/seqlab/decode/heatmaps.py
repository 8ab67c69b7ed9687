"""Attention heatmaps: a figure of how each output piece attended over the source pieces.

Built on matplotlib's object API (``Figure``), never ``pyplot``, so no global
figure registry or GUI backend is involved; the caller saves the figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from seqlab.search.texts import Translation
from seqlab.tokenizer import EOS_ID, Tokenizer

# Inches per labelled row or column: enough for a 9-point label without overlap.
CELL = 0.32


def attention_figure(weights: np.ndarray, *, source: list[str], target: list[str], title: str = "") -> Figure:
    """A heatmap of ``weights`` (T, S): row t is output piece ``target[t]``'s attention over ``source``.

    Source pieces run along the x axis (on top, read left to right like the
    sentence), output pieces down the y axis; colours span 0-1 for every figure,
    so two heatmaps can be compared by eye.
    """
    if weights.shape != (len(target), len(source)):
        raise ValueError(f"weights are {weights.shape} but there are {len(target)} target and {len(source)} source pieces")
    rows, cols = weights.shape
    fig = Figure(figsize=(2.5 + CELL * cols, 1.8 + CELL * rows), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols), labels=source, rotation=60, ha="left", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(rows), labels=target, fontsize=9)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("source pieces")
    ax.set_ylabel("output pieces")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def translation_heatmaps(
    results: list[Translation], sources: list[str], *, tokenizer: Tokenizer, count: int
) -> list[tuple[str, Figure]]:
    """(file name, figure) for the best hypothesis of the first ``count`` non-empty lines, named line-<n>.png."""
    width = len(str(len(results)))
    drawn = [(n, r) for n, r in enumerate(results, start=1) if r.hypotheses][:count]
    figures = []
    for number, result in drawn:
        best, source = result.hypotheses[0], result.source_pieces
        # attention is (T+1, S_batch): one row per output piece and EOS; the columns
        # past this sentence's own pieces are its batch's padding and are dropped.
        weights = best.attention[:, : len(source)].float().numpy()
        text = sources[number - 1]
        title = text if len(text) <= 80 else text[:77] + "..."
        figure = attention_figure(
            weights, source=source, target=tokenizer.tgt_pieces(best.tokens + [EOS_ID]), title=f"test line {number}: {title}"
        )
        figures.append((f"line-{number:0{width}d}.png", figure))
    return figures
