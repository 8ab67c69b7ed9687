"""The Transformer through the existing train loop, checkpoints, ``seqlab info`` and ``seqlab translate``."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_training import (  # noqa: F401
    CPU,
    FakeLive,
    Killed,
    Tiny,
    assert_same_weights,
    final_weights,
    one_thread,
    tiny,
)
from test_translate import rescore

import seqlab.train.loop as training
from seqlab.cli import main
from seqlab.core.run_config import DecodeConfig, ModelConfig, TrainConfig
from seqlab.model.checkpoint import load_checkpoint, save_checkpoint
from seqlab.model.seq2seq import Seq2Seq, build_model
from seqlab.model.transformer import Transformer
from seqlab.search.texts import decode_texts
from seqlab.train.loop import Outputs, TrainResult, train
from seqlab.train.state import load_state

TRANSFORMER = ModelConfig(arch="transformer", model_dim=16, heads=2, ff_dim=32, encoder_layers=1, decoder_layers=2,
                          dropout=0.1, attention_dropout=0.1, activation_dropout=0.1,
                          max_positions=210)


def run(tiny: Tiny, tmp_path: Path, *, resume=None, live=None, seed: int = 1234, model: ModelConfig = TRANSFORMER,
        **options) -> TrainResult:
    config = TrainConfig(**{"epochs": 2, "batch_tokens": 60, "device": "cpu", "save_every": 0, "lr": 0.005,
                            **options})
    torch.manual_seed(seed)
    random.seed(seed)
    return train(tiny.train, tiny.valid, tiny.valid_text, model_config=model, config=config,
                 tokenizer=tiny.tokenizer, seed=1234, device=CPU,
                 outputs=Outputs(tmp_path / "model.pt", tmp_path / "state.pt", "fp"),
                 info={"corpus": "tiny"}, resume=resume, live=live)


VARIANTS = {"plain": {}, "copy": dict(copy=True), "tied-target": dict(tie_embeddings=True, output_vocab="target")}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_trains_and_the_checkpoint_rebuilds_the_transformer(tiny: Tiny, tmp_path: Path, overrides: dict) -> None:
    live = FakeLive()
    config = replace(TRANSFORMER, **overrides)
    copy = config.copy
    run(tiny, tmp_path, live=live, model=config, epochs=3, label_smoothing=0.1, schedule="inverse_sqrt",
        warmup_steps=4)
    losses = live.values("train/loss")
    assert losses[-1] < losses[0]
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert isinstance(loaded.model, Transformer) and loaded.model.config == config
    assert (loaded.model.copy_head is not None) == copy
    if config.output_vocab == "target":  # the saved output rows are the saved embedding's, not a copy
        assert loaded.model.output_ids is not None and "output.weight" not in loaded.model.state_dict()
    results = decode_texts(["one", "twenty-two"], model=loaded.model, tokenizer=loaded.tokenizer,
                           config=DecodeConfig(beam_size=3), device=CPU)
    assert len(results) == 2 and all(r.hypotheses for r in results)


def test_interrupted_transformer_run_resumes_to_the_same_weights(tiny: Tiny, tmp_path: Path, monkeypatch) -> None:
    options = dict(save_every=3, valid_every=4, label_smoothing=0.1, schedule="cosine", warmup_steps=2)
    run(tiny, tmp_path / "straight", **options)
    saves = []
    real_save = training.save_state

    def save_then_die(*args, **kwargs) -> None:
        real_save(*args, **kwargs)
        saves.append(kwargs["progress"].step)
        if len(saves) == 2:
            raise Killed

    monkeypatch.setattr(training, "save_state", save_then_die)
    with pytest.raises(Killed):
        run(tiny, tmp_path / "killed", **options)
    monkeypatch.setattr(training, "save_state", real_save)
    saved = load_state(tmp_path / "killed" / "state.pt", fingerprint="fp").saved
    result = run(tiny, tmp_path / "killed", resume=saved, seed=999, **options)
    assert result.resumed_from == saves[-1] > 0
    assert_same_weights(final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed"))


def test_rnn_checkpoints_without_the_arch_key_still_load(tiny: Tiny, tmp_path: Path) -> None:
    """Checkpoints written before model.arch existed carry none of the new keys; they are RNNs."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8),
                        src_vocab=tiny.tokenizer.src_vocab_size, tgt_vocab=tiny.tokenizer.tgt_vocab_size)
    save_checkpoint(tmp_path / "rnn.pt", model=model, tokenizer=tiny.tokenizer, info={})
    payload = torch.load(tmp_path / "rnn.pt", weights_only=True)
    new_keys = {"arch", "model_dim", "heads", "ff_dim", "attention_dropout", "activation_dropout", "activation", "norm", "positions",
                "max_positions", "scale_embeddings"}
    assert new_keys <= payload["model_config"].keys()
    payload["model_config"] = {k: v for k, v in payload["model_config"].items() if k not in new_keys}
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(loaded.model, Seq2Seq) and loaded.model.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)


@pytest.mark.parametrize("config", [TRANSFORMER, ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8)],
                         ids=["transformer", "rnn"])
def test_info_shows_the_arch_and_only_its_keys(tiny: Tiny, tmp_path: Path, config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(config, src_vocab=tiny.tokenizer.src_vocab_size, tgt_vocab=tiny.tokenizer.tgt_vocab_size)
    save_checkpoint(tmp_path / "model.pt", model=model, tokenizer=tiny.tokenizer, info={"epoch": 1})
    result = CliRunner().invoke(main, ["info", str(tmp_path / "model.pt")])
    assert result.exit_code == 0, result.output
    assert f"  arch: {config.arch}\n" in result.output
    shown, hidden = ("heads", "hidden_dim") if config.arch == "transformer" else ("hidden_dim", "heads")
    assert f"  {shown}: " in result.output and f"  {hidden}: " not in result.output


def test_translate_cli_runs_on_a_transformer_checkpoint(tiny: Tiny, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(TRANSFORMER, src_vocab=tiny.tokenizer.src_vocab_size, tgt_vocab=tiny.tokenizer.tgt_vocab_size)
    save_checkpoint(tmp_path / "model.pt", model=model.eval(), tokenizer=tiny.tokenizer, info={})
    result = CliRunner().invoke(main, ["translate", "--model", str(tmp_path / "model.pt"), "--beam-size", "2",
                                       "--max-length", "5", "--alignments"], input="one\n\ntwo\n")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 3


@pytest.mark.parametrize("copy", [False, True], ids=["plain", "copy"])
def test_cpu_bf16_search_scores_its_outputs_as_fp32_does(tiny: Tiny, copy: bool) -> None:
    """translate's bf16 copy of a transformer decodes, and each output's reported log-probability is the
    fp32 model's to bf16 precision (as for the RNN in test_translate)."""
    torch.manual_seed(0)
    config = replace(TRANSFORMER, copy=copy, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    model = build_model(config, src_vocab=tiny.tokenizer.src_vocab_size, tgt_vocab=tiny.tokenizer.tgt_vocab_size)
    model.eval()
    lines = ["one", "twenty-two", "fifty-seven", "three"]
    results = decode_texts(lines, model=model, tokenizer=tiny.tokenizer,
                           config=DecodeConfig(beam_size=3, max_length=8, cpu_bf16=True), device=CPU)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for line, result in zip(lines, results):
        hyp = result.hypotheses[0]
        exact = rescore(model, tiny.tokenizer.encode_src([line])[0], hyp.tokens)
        assert hyp.log_prob == pytest.approx(exact, rel=0.03, abs=0.05)
