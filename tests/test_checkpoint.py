"""Tests for seqlab.model.checkpoint: self-describing checkpoints that load with weights_only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from num2words import num2words

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.errors import DataError
from seqlab.core.run_config import ModelConfig
from seqlab.core.text import ParallelText
from seqlab.model.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from seqlab.model.seq2seq import Seq2Seq, build_model
from seqlab.tokenizer import BOS_ID, Tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A joint 40-piece sentencepiece model trained on a few dozen number phrases."""
    values = [i * 37 + 3 for i in range(40)]
    text = ParallelText(src=[num2words(v, lang="en") for v in values], tgt=[num2words(v, lang="fr") for v in values])
    return train_tokenizer(text, TokenizerConfig(vocab_size=40), seed=1)


def tiny_model(tokenizer: Tokenizer, **overrides) -> Seq2Seq:
    torch.manual_seed(0)
    config = ModelConfig(**{**dict(embed_dim=12, hidden_dim=12, attention_dim=12, dropout=0.1), **overrides})
    return build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size).eval()


def step_outputs(model: Seq2Seq, tokenizer: Tokenizer) -> list[torch.Tensor]:
    """Log-probabilities and attention of three greedy steps on two sentences."""
    ids = tokenizer.encode_src(["one hundred and three", "forty"])
    src = torch.zeros(2, max(map(len, ids)), dtype=torch.long)
    for row, seq in enumerate(ids):
        src[row, : len(seq)] = torch.tensor(seq)
    lengths = torch.tensor([len(s) for s in ids])
    outputs = []
    with torch.no_grad():
        state = model.encode(src, lengths)
        prev = torch.full((2,), BOS_ID)
        for _ in range(3):
            out = model.decode_step(prev, state)
            outputs += [out.log_probs, out.attention]
            state, prev = out.state, out.log_probs.argmax(-1)
    return outputs


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_embeddings": True}, {"share_embeddings": False, "decoder_layers": 2, "encoder_layers": 2}],
    ids=["shared", "tied", "separate-2-layers"],
)
def test_round_trip_gives_identical_decoding(tmp_path: Path, tokenizer: Tokenizer, overrides: dict) -> None:
    model = tiny_model(tokenizer, **overrides)
    info = {"epoch": 3, "valid_loss": 1.25, "corpus": "numbers"}
    path = tmp_path / "models" / "model.pt"
    save_checkpoint(path, model=model, tokenizer=tokenizer, info=info)

    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config
    assert not loaded.model.training
    assert loaded.info == info
    assert loaded.tokenizer == tokenizer
    for before, after in zip(step_outputs(model, tokenizer), step_outputs(loaded.model, loaded.tokenizer)):
        assert torch.equal(before, after)
    # Sharing survives the round trip: one matrix, not equal copies.
    if model.config.share_embeddings:
        assert loaded.model.src_embed is loaded.model.tgt_embed
    if model.config.tie_embeddings:
        assert loaded.model.output.weight is loaded.model.tgt_embed.weight
    # Written atomically: nothing but the checkpoint is left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_file_loads_with_weights_only(tmp_path: Path, tokenizer: Tokenizer) -> None:
    model = tiny_model(tokenizer)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model=model, tokenizer=tokenizer, info={"epoch": 1})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["model_config"]["embed_dim"] == 12
    assert payload["tokenizer"]["src_model"] == tokenizer.src_model
    assert set(payload["state_dict"]) == set(model.state_dict())


def test_unk_markers_travel_with_the_checkpoint(tmp_path: Path, tokenizer: Tokenizer) -> None:
    """decode renders the unknown word as the corpus spells it from the checkpoint alone."""
    marked = replace(tokenizer, unk_markers=("<unk>", "UNK"))
    save_checkpoint(tmp_path / "model.pt", model=tiny_model(tokenizer), tokenizer=marked, info={})
    assert load_checkpoint(tmp_path / "model.pt").tokenizer == marked
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    del payload["tokenizer"]["unk_markers"]  # a checkpoint from before the markers
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").tokenizer.unk_markers == ()


def test_overwrite_replaces_the_old_checkpoint(tmp_path: Path, tokenizer: Tokenizer) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, model=tiny_model(tokenizer), tokenizer=tokenizer, info={"epoch": 1})
    save_checkpoint(path, model=tiny_model(tokenizer), tokenizer=tokenizer, info={"epoch": 2})
    assert load_checkpoint(path).info == {"epoch": 2}


def test_not_a_checkpoint_is_a_data_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError, match="notes.txt"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataError, match="not a seqlab checkpoint"):
        load_checkpoint(other)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), tensor)
    with pytest.raises(DataError, match="not a seqlab checkpoint"):
        load_checkpoint(tensor)


def test_missing_checkpoint_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path)  # a directory is not a checkpoint file


# How to damage a saved payload in place, and what the error must then say.
BREAKAGES = {
    "no-weights": (lambda p: p.pop("state_dict"), "broken checkpoint: no state_dict"),
    "info-not-a-dict": (lambda p: p.update(info=[1, 2]), "info is a list, not a dict"),
    "missing-weight": (lambda p: p["state_dict"].pop("output.weight"),
                       "does not match model_config (missing output.weight"),
    "extra-weight": (lambda p: p["state_dict"].update(stray=torch.zeros(1)), "(unexpected stray)"),
    "wrong-shape": (lambda p: p["state_dict"].update({"output.bias": torch.zeros(7)}),
                    "state_dict.output.bias has shape (7,), the model needs (40,)"),
    "bad-config": (lambda p: p["model_config"].update(hidden_dim="big"), "model_config: model.hidden_dim"),
    "damaged-tokenizer": (lambda p: p["tokenizer"].update(src_model=p["tokenizer"]["src_model"][:50]),
                          "tokenizer.src_model is not a sentencepiece model"),
    "junk-tokenizer": (lambda p: p["tokenizer"].update(tgt_model=b"junk"),
                        "tokenizer.tgt_model is not a sentencepiece model"),
    "no-tokenizer-bytes": (lambda p: p["tokenizer"].pop("src_model"), "tokenizer.src_model is missing or not bytes"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_broken_contents_name_the_file_and_what_is_wrong(tmp_path: Path, tokenizer: Tokenizer, case: str) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, model=tiny_model(tokenizer, share_embeddings=False), tokenizer=tokenizer, info={})
    payload = torch.load(path, weights_only=True)
    damage, message = BREAKAGES[case]
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(DataError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: broken checkpoint: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
