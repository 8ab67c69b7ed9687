"""Tests for seqlab.tokenizer: sentencepiece training, special ids, saving and loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.errors import ConfigError, DataError
from seqlab.core.text import ParallelText
from seqlab.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_GLYPH,
    UNK_ID,
    UNK_WORD,
    Tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
    train_tokenizer_on_files,
)

# A tiny hand-written corpus: enough distinct characters and words for a 40-piece vocabulary.
SRC = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "twenty-one", "twenty-two", "thirty-three", "forty-four", "fifty-five",
    "one hundred", "two hundred and six", "three thousand", "first", "second", "third",
]  # fmt: skip
TGT = [
    "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
    "vingt et un", "vingt-deux", "trente-trois", "quarante-quatre", "cinquante-cinq",
    "cent", "deux cent six", "trois mille", "premier", "deuxième", "troisième",
]  # fmt: skip
TEXT = ParallelText(src=SRC * 3, tgt=TGT * 3)
JOINT = TokenizerConfig(vocab_size=40, joint=True)
SEPARATE = TokenizerConfig(vocab_size=30, joint=False)


@pytest.fixture(scope="module")
def joint() -> Tokenizer:
    return train_tokenizer(TEXT, JOINT, seed=7)


@pytest.fixture(scope="module")
def separate() -> Tokenizer:
    return train_tokenizer(TEXT, SEPARATE, seed=7)


def test_joint_tokenizer_shares_one_model(joint: Tokenizer) -> None:
    assert joint.joint
    assert joint.src_model == joint.tgt_model
    assert joint.src_vocab_size == joint.tgt_vocab_size == 40


def test_separate_tokenizer_has_two_models(separate: Tokenizer) -> None:
    assert not separate.joint
    assert separate.src_model != separate.tgt_model
    assert separate.src_vocab_size == separate.tgt_vocab_size == 30
    # Each side's vocabulary is learned from that side only.
    src_pieces = {separate.src.id_to_piece(i) for i in range(separate.src_vocab_size)}
    assert "é" not in "".join(src_pieces)
    tgt_pieces = {separate.tgt.id_to_piece(i) for i in range(separate.tgt_vocab_size)}
    assert "è" in "".join(tgt_pieces)


def test_training_is_deterministic(joint: Tokenizer) -> None:
    assert train_tokenizer(TEXT, JOINT, seed=7).src_model == joint.src_model


@pytest.mark.parametrize("side", ["src", "tgt"])
@pytest.mark.parametrize("which", ["joint", "separate"])
def test_special_ids_are_fixed(request: pytest.FixtureRequest, which: str, side: str) -> None:
    tokenizer: Tokenizer = request.getfixturevalue(which)
    processor = getattr(tokenizer, side)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert processor.pad_id() == PAD_ID
    assert processor.unk_id() == UNK_ID
    assert processor.bos_id() == BOS_ID
    assert processor.eos_id() == EOS_ID


@pytest.mark.parametrize("which", ["joint", "separate"])
def test_encode_decode_round_trip(request: pytest.FixtureRequest, which: str) -> None:
    tokenizer: Tokenizer = request.getfixturevalue(which)
    lines = ["vingt-deux", "trois mille six", "deuxième"]
    ids = tokenizer.encode_tgt(lines)
    assert all(isinstance(i, int) for row in ids for i in row)
    assert all(row and min(row) > EOS_ID for row in ids)  # no specials added by encoding
    assert tokenizer.decode_tgt(ids) == lines
    src_ids = tokenizer.encode_src(["twenty-two", "three thousand"])
    assert "".join(tokenizer.src_pieces(src_ids[0])).replace("\u2581", " ").strip() == "twenty-two"
    assert "".join(tokenizer.tgt_pieces(ids[1])).replace("\u2581", " ").strip() == "trois mille six"


def test_unknown_character_maps_to_unk(joint: Tokenizer) -> None:
    ids = joint.encode_src(["one ж"])[0]
    assert UNK_ID in ids


def test_vocab_too_large_names_key_and_limit() -> None:
    with pytest.raises(ConfigError) as info:
        train_tokenizer(TEXT, TokenizerConfig(vocab_size=5000), seed=7)
    message = str(info.value)
    assert message.startswith("tokenizer.vocab_size: 5000 is more than this corpus allows")
    assert "(at most " in message
    limit = int(message.rsplit("at most ", 1)[1].rstrip(")"))
    assert 40 <= limit < 5000
    # The reported limit is one that actually trains.
    assert train_tokenizer(TEXT, TokenizerConfig(vocab_size=limit), seed=7).src_vocab_size == limit


def test_save_load_round_trip(tmp_path: Path, joint: Tokenizer, separate: Tokenizer) -> None:
    for name, tokenizer in (("joint", joint), ("separate", separate)):
        directory = tmp_path / name / "tokenizer"
        save_tokenizer(tokenizer, directory)
        assert sorted(p.name for p in directory.iterdir()) == ["src.model", "tgt.model"]
        loaded = load_tokenizer(str(directory))
        assert loaded == tokenizer
        assert loaded.joint == tokenizer.joint
        assert loaded.encode_src(["forty-four"]) == tokenizer.encode_src(["forty-four"])


def test_load_from_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"src\.model: tokenizer model not found"):
        load_tokenizer(tmp_path / "nowhere")


def test_load_with_missing_target_model(tmp_path: Path, joint: Tokenizer) -> None:
    save_tokenizer(joint, tmp_path)
    (tmp_path / "tgt.model").unlink()
    with pytest.raises(DataError, match=r"tgt\.model: tokenizer model not found"):
        load_tokenizer(tmp_path)


# ---------------------------------------------------------------- options for real corpora


def test_files_and_memory_give_the_same_model(tmp_path: Path) -> None:
    src, tgt = tmp_path / "train.src", tmp_path / "train.tgt"
    src.write_text("".join(f"{line}\n" for line in TEXT.src), encoding="utf-8")
    tgt.write_text("".join(f"{line}\n" for line in TEXT.tgt), encoding="utf-8")
    for config in (JOINT, SEPARATE):
        from_files = train_tokenizer_on_files(src, tgt, config, seed=7)
        assert from_files == train_tokenizer(TEXT, config, seed=7)


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "char"])
def test_model_types(model_type: str) -> None:
    tokenizer = train_tokenizer(TEXT, TokenizerConfig(vocab_size=30, model_type=model_type), seed=7)
    assert tokenizer.decode_tgt(tokenizer.encode_tgt(["trois mille"])) == ["trois mille"]
    if model_type == "char":
        assert all(len(p.lstrip("\u2581")) <= 1 for p in tokenizer.tgt_pieces(tokenizer.encode_tgt(["trente"])[0]))


def test_byte_fallback_spells_unknown_characters_in_bytes() -> None:
    tokenizer = train_tokenizer(TEXT, TokenizerConfig(vocab_size=300, byte_fallback=True), seed=7)
    ids = tokenizer.encode_src(["one ж"])[0]
    assert UNK_ID not in ids
    assert tokenizer.src_pieces(ids)[-2:] == ["<0xD0>", "<0xB6>"]  # ж in UTF-8
    assert tokenizer.src.decode(ids) == "one ж"


def test_byte_fallback_vocab_too_small_names_key_and_need() -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.vocab_size: 40 is too small for this corpus; its characters "
                                          r"and the 256 byte pieces of byte_fallback need at least \d+"):
        train_tokenizer(TEXT, TokenizerConfig(vocab_size=40, byte_fallback=True), seed=7)


def test_user_defined_symbols_are_never_split() -> None:
    text = ParallelText(src=[f"<2fr> {line}" for line in SRC] * 3, tgt=TGT * 3)
    tokenizer = train_tokenizer(text, TokenizerConfig(vocab_size=40, user_defined_symbols=("<2fr>", "<x>")), seed=7)
    pieces = tokenizer.src_pieces(tokenizer.encode_src(["<2fr> one<x>"])[0])
    assert "<2fr>" in pieces and "<x>" in pieces


def test_sentence_sample_is_seeded_and_used() -> None:
    many = ParallelText(src=SRC * 20 + ["zzz qqq"] * 3, tgt=TGT * 20 + ["zzz qqq"] * 3)
    sampled = TokenizerConfig(vocab_size=30, input_sentence_size=150)
    assert train_tokenizer(many, sampled, seed=7) == train_tokenizer(many, sampled, seed=7)
    assert train_tokenizer(many, sampled, seed=7) != train_tokenizer(many, TokenizerConfig(vocab_size=30), seed=7)


def test_threads_give_a_reproducible_vocabulary() -> None:
    config = TokenizerConfig(vocab_size=40, threads=2)
    assert train_tokenizer(TEXT, config, seed=7) == train_tokenizer(TEXT, config, seed=7)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"input_sentence_size": -1}, r"tokenizer\.input_sentence_size"),
        ({"input_sentence_size": 100}, r"tokenizer\.input_sentence_size: must be 0 \(every sentence\) or more than 100"),
        ({"threads": 0}, r"tokenizer\.threads"),
        ({"user_defined_symbols": ("<s>",)}, r"tokenizer\.user_defined_symbols\[0\]: '<s>'"),
        ({"user_defined_symbols": ("ok", "a b")}, r"tokenizer\.user_defined_symbols\[1\]"),
        ({"user_defined_symbols": ("",)}, r"tokenizer\.user_defined_symbols\[0\]"),
        ({"user_defined_symbols": ("<x>", "<x>")}, r"tokenizer\.user_defined_symbols: lists a symbol twice"),
    ],
)
def test_tokenizer_checks_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        TokenizerConfig(**kwargs)


# ---------------------------------------------------------------- corpus unknown-word markers

MARKED = ParallelText(src=[f"{s} <unk>" for s in SRC] * 3, tgt=[f"<unk> {t}" for t in TGT] * 3)


def test_unk_marker_text_comes_back_as_the_unknown_glyph_without_markers() -> None:
    """The bug: sentencepiece spells ``<unk>`` out, and its ``<``, ``>`` decode as its glyph."""
    plain = train_tokenizer(MARKED, JOINT, seed=7)
    assert UNK_GLYPH in plain.decode_tgt(plain.encode_tgt(["<unk> trois"]))[0]


def test_unk_markers_become_one_piece_rendered_as_the_corpus_spells_them() -> None:
    config = TokenizerConfig(vocab_size=40, unk_markers=("<unk>", "UNK"))
    tokenizer = train_tokenizer(MARKED, config, seed=7)
    ids = tokenizer.encode_tgt(["<unk> trois UNK UNKNOWN"])[0]
    pieces = tokenizer.tgt_pieces(ids)
    assert pieces.count(UNK_WORD) == 2 and "<" not in pieces and "u" not in pieces
    # UNKNOWN is no marker: its letters are not in the corpus, so sentencepiece's own unknown
    # piece stands for them, and is written as the corpus's marker too.
    assert tokenizer.decode_tgt([ids]) == ["<unk> trois <unk> <unk>"]
    assert tokenizer.decode_tgt([ids], unk_spelling="UNK") == ["UNK trois UNK UNK"]
    assert tokenizer.tgt_pieces(tokenizer.encode_src(["one<unk>"])[0]).count(UNK_WORD) == 0  # not a word of its own


def test_unk_markers_survive_saving_and_loading(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(MARKED, TokenizerConfig(vocab_size=40, unk_markers=("<unk>",)), seed=7)
    save_tokenizer(tokenizer, tmp_path / "tok")
    assert load_tokenizer(tmp_path / "tok") == tokenizer
    save_tokenizer(train_tokenizer(TEXT, JOINT, seed=7), tmp_path / "plain")
    assert load_tokenizer(tmp_path / "plain").unk_markers == ()


@pytest.mark.parametrize("marker", ["", "a b"])
def test_bad_unk_marker_is_a_config_error(marker: str) -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.unk_markers\[1\]"):
        TokenizerConfig(unk_markers=("<unk>", marker))
