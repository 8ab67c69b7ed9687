"""The README's promise on the default data: full `dvc repro`, BLEU >= 90, twenty-one translated.

Slow (several minutes on 2 CPU cores): run with `pytest -m slow`.
"""

from __future__ import annotations

import json

import pytest
from dvc_repo import make_repo


@pytest.mark.slow
def test_default_pipeline_reaches_bleu_90_and_translates(tmp_path) -> None:
    repo = make_repo(tmp_path, overrides={})
    repo.dvc("repro")
    metrics = json.loads((repo.path / "reports/metrics.json").read_text())
    assert metrics["bleu"] >= 90.0, metrics
    proc = repo.run("sh", "-c", "echo twenty-one | seqlab translate --model models/model.pt")
    assert proc.stdout.strip() == "vingt et un"
    assert "Running stage" not in repo.dvc("repro").stdout
