"""The seqlab click group, driven with CliRunner on a tiny real checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqlab.cli import main
from seqlab.core.data_config import NumbersConfig, TokenizerConfig
from seqlab.core.run_config import ModelConfig
from seqlab.model.checkpoint import save_checkpoint
from seqlab.model.seq2seq import build_model
from seqlab.prepare.numbers import generate_numbers
from seqlab.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = generate_numbers(NumbersConfig(train_size=200, valid_size=5, test_size=5, max_value=500), seed=3)
    tokenizer = train_tokenizer(corpus.train, TokenizerConfig(vocab_size=50), seed=3)
    torch.manual_seed(3)
    config = ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, dropout=0.0)
    model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model=model, tokenizer=tokenizer, info={"train_pairs": 200, "epoch": 1})
    return path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_translate_keeps_order_and_empty_lines(checkpoint: Path) -> None:
    lines = ["twenty-one", "", "one hundred and five", "seven", "three hundred and thirty-three"]
    result = run("translate", "--model", str(checkpoint), "--batch-size", "2", "--max-length", "6", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout.split("\n")[:-1]
    assert len(out) == len(lines)
    assert out[1] == ""
    # each line translated alone gives the same text: order restored, batching invisible
    for line, text in zip(lines, out):
        alone = run("translate", "--model", str(checkpoint), "--max-length", "6", input=line + "\n")
        assert alone.stdout == text + "\n"


def test_translate_file_to_file_and_nbest(checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("five\nsix\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    result = run("translate", "--model", str(checkpoint), "--input", str(source), "--output", str(target),
                 "--beam-size", "3", "--n-best", "3", "--max-length", "5")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in target.read_text(encoding="utf-8").splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1]
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)


def test_translate_rejects_bad_options(checkpoint: Path, tmp_path: Path) -> None:
    result = run("translate", "--model", str(checkpoint), "--beam-size", "2", "--n-best", "3", input="one\n")
    assert result.exit_code == 2
    assert "--n-best" in result.output
    result = run("translate", "--model", str(tmp_path / "missing.pt"), input="one\n")
    assert result.exit_code == 2
    assert "does not exist" in result.output
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    result = run("translate", "--model", str(junk), input="one\n")
    assert result.exit_code == 1
    assert "not a readable seqlab checkpoint" in result.output
    assert result.exc_info[0] is SystemExit  # a clean exit, no traceback


def test_info_describes_the_checkpoint(checkpoint: Path) -> None:
    result = run("info", str(checkpoint))
    assert result.exit_code == 0, result.output
    assert "parameters:" in result.output
    assert "hidden_dim: 8" in result.output
    assert "vocabulary: joint, 50 pieces" in result.output
    assert "train_pairs: 200" in result.output


def test_score_pair_of_files(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("le chat est assis\nbonjour\n", encoding="utf-8")
    ref.write_text("le chat est assis\nbonjour\n", encoding="utf-8")
    result = run("score", "--hyp", str(hyp), "--ref", str(ref))
    assert result.exit_code == 0, result.output
    assert '"bleu": 100.0' in result.output
    ref.write_text("le chat est assis\n", encoding="utf-8")
    result = run("score", "--hyp", str(hyp), "--ref", str(ref))
    assert result.exit_code == 1
    assert "2 lines" in result.output and "1" in result.output


def test_score_has_the_evaluate_stages_options(tmp_path: Path) -> None:
    import json

    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("LE CHAT EST ASSIS\nbonjour\n", encoding="utf-8")
    ref.write_text("le chat est assis\nbonjour\n", encoding="utf-8")
    result = run("score", "--hyp", str(hyp), "--ref", str(ref), "--bootstrap-resamples", "20")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"bleu", "chrf", "ter", "rouge1", "rouge2", "rougeL", "rougeLsum", "sentences", "ci95",
                        "signature"}
    assert out["bleu"] < 100.0 and "bs:20|seed:12345" in out["signature"]["bleu"]
    result = run("score", "--hyp", str(hyp), "--ref", str(ref), "--lowercase", "--metrics", "bleu,ter",
                 "--rouge-types", "", "--tokenize", "char", "--bootstrap-resamples", "0")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {"bleu": 100.0, "ter": 0.0, "sentences": 2, "signature": out["signature"]}
    assert "case:lc" in out["signature"]["bleu"] and "tok:char" in out["signature"]["bleu"]
    result = run("score", "--hyp", str(hyp), "--ref", str(ref), "--metrics", "bleu,blue")
    assert result.exit_code == 2
    assert "--metrics[1]: 'blue' is not one of" in result.output
    result = run("score", "--hyp", str(hyp), "--ref", str(ref), "--bootstrap-resamples", "1")
    assert result.exit_code == 2
    assert "--bootstrap-resamples: must be 0 (off) or at least 2" in result.output


def test_score_refuses_two_empty_files(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    hyp.write_text("", encoding="utf-8")
    ref.write_text("", encoding="utf-8")
    result = run("score", "--hyp", str(hyp), "--ref", str(ref))
    assert result.exit_code == 1
    assert result.output == f"Error: {hyp} and {ref} are empty: nothing to score\n"


def test_info_on_a_broken_checkpoint_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    payload = torch.load(checkpoint, weights_only=True)
    del payload["state_dict"]["output.bias"]
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    result = run("info", str(broken))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {broken}: broken checkpoint: state_dict does not match model_config")
    assert result.output.count("\n") == 1
