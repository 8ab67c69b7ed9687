"""The decode stage's sampling follows `seed` and draws one stream across batches (issue 17 item 13).

stages/decode.py runs for real, in a folder holding only what it reads: params.yaml,
the checkpoint and the test sources.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from seqlab.core.data_config import NumbersConfig, TokenizerConfig
from seqlab.core.run_config import ModelConfig
from seqlab.model.checkpoint import save_checkpoint
from seqlab.model.seq2seq import build_model
from seqlab.prepare.numbers import generate_numbers
from seqlab.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
BATCH = 4


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two batches of the same sentence, and a random model flat enough that samples vary."""
    folder = tmp_path_factory.mktemp("project")
    corpus = generate_numbers(NumbersConfig(train_size=200, valid_size=5, test_size=5, max_value=500), seed=3)
    tokenizer = train_tokenizer(corpus.train, TokenizerConfig(vocab_size=50), seed=3)
    torch.manual_seed(5)
    model = build_model(ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, dropout=0.0),
                        src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size)
    save_checkpoint(folder / "models" / "model.pt", model=model, tokenizer=tokenizer, info={})
    (folder / "data" / "corpus").mkdir(parents=True)
    (folder / "data" / "corpus" / "test.src").write_text("three hundred and five\n" * 2 * BATCH, encoding="utf-8")
    return folder


def decode(folder: Path, *, seed: int) -> list[str]:
    params = {"seed": seed, "evaluate": {"attention_heatmaps": 0},
              "decode": {"strategy": "sample", "temperature": 1.5, "max_length": 6, "batch_size": BATCH,
                         "device": "cpu"}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "decode.py")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return (folder / "outputs" / "test.hyp").read_text(encoding="utf-8").splitlines()


def test_sampling_uses_seed_and_one_stream_across_batches(project: Path) -> None:
    first = decode(project, seed=1)
    assert len(first) == 2 * BATCH
    assert first[:BATCH] != first[BATCH:]  # the second batch does not replay the first one's draws
    assert decode(project, seed=1) == first
    assert decode(project, seed=2) != first
