"""Tests for seqlab.search.words: word-safe copying, shown on a scripted stub model.

The stub's pieces are a tiny vocabulary of words and word pieces; its script is a
copy model at its worst: it copies a piece from inside a source word onto the
word before (``join`` + ``computer`` -> ``joincomputer``) or stops inside one
(``russian-in`` of ``russian-installed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest
import torch

from seqlab.core.run_config import DecodeConfig
from seqlab.model.batch import pad
from seqlab.search.beam import search
from seqlab.search.scores import constrain
from seqlab.search.words import restrict_to_words, source_words
from seqlab.tokenizer import BOS_ID, EOS_ID

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁join", "▁super", "computer", "▁russian", "-", "in", "stalled", "▁to"]
ID = {p: i for i, p in enumerate(PIECES)}
STARTS = torch.tensor([i < 4 or p.startswith("▁") for i, p in enumerate(PIECES)])

# emitted pieces -> next-piece probabilities; one script per source (by its first piece)
SCRIPTS: dict[str, dict[tuple[str, ...], dict[str, float]]] = {
    "▁to": {  # source: to join super computer
        (): {"▁join": 0.9, "▁super": 0.1},
        ("▁join",): {"computer": 0.6, "▁super": 0.3, "</s>": 0.1},
        ("▁join", "computer"): {"</s>": 1.0},
        ("▁join", "▁super"): {"computer": 0.8, "</s>": 0.2},
        ("▁join", "▁super", "computer"): {"</s>": 1.0},
    },
    "▁russian": {  # source: russian-installed
        (): {"▁russian": 0.9, "▁to": 0.1},
        ("▁russian",): {"-": 0.9, "</s>": 0.1},
        ("▁russian", "-"): {"in": 0.9, "</s>": 0.1},
        ("▁russian", "-", "in"): {"</s>": 0.7, "stalled": 0.3},
        ("▁russian", "-", "in", "stalled"): {"</s>": 1.0},
    },
}
SOURCES = {"▁to": ["▁to", "▁join", "▁super", "computer"], "▁russian": ["▁russian", "-", "in", "stalled"]}


@dataclass(frozen=True)
class State:
    script: tuple[str, ...]  # per row: which script
    fed: tuple[tuple[int, ...], ...]  # per row: tokens fed so far, BOS first
    width: int

    def select(self, index: torch.Tensor) -> State:
        rows = index.tolist()
        return State(tuple(self.script[i] for i in rows), tuple(self.fed[i] for i in rows), self.width)

    reorder = select


@dataclass(frozen=True)
class Step:
    log_probs: torch.Tensor
    state: State
    attention: torch.Tensor


class CopyStub:
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> State:
        return State(tuple(PIECES[i] for i in src[:, 0].tolist()), tuple(() for _ in range(src.size(0))), src.size(1))

    def decode_step(self, prev_tokens: torch.Tensor, state: State) -> Step:
        fed = tuple(f + (int(t),) for f, t in zip(state.fed, prev_tokens.tolist()))
        log_probs = torch.full((len(fed), len(PIECES)), float("-inf"))
        for row, (name, tokens) in enumerate(zip(state.script, fed)):
            assert tokens[0] == BOS_ID
            for piece, p in SCRIPTS[name].get(tuple(PIECES[t] for t in tokens[1:]), {"</s>": 1.0}).items():
                log_probs[row, ID[piece]] = math.log(p)
        return Step(log_probs, State(state.script, fed, state.width), torch.full((len(fed), state.width), 0.25))


def run(config: DecodeConfig) -> list[str]:
    src, lengths = pad([[ID[p] for p in SOURCES[name]] for name in ("▁to", "▁russian")])
    nbest = search(CopyStub(), src, lengths, config, word_starts=STARTS)
    return ["".join(PIECES[t] for t in hyps[0].tokens).replace("▁", " ").strip() for hyps in nbest]


BASE = DecodeConfig(beam_size=1, length_penalty=0.0, max_length=10, max_length_ratio=3.0)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_copying_glues_word_pieces_without_the_constraint(beam_size: int) -> None:
    """The bug: a piece from inside a source word attaches to another word, or a word stops midway."""
    assert run(replace(BASE, beam_size=beam_size)) == ["joincomputer", "russian-in"]


@pytest.mark.parametrize("beam_size", [1, 2])
def test_word_safe_copy_keeps_source_words_whole(beam_size: int) -> None:
    assert run(replace(BASE, beam_size=beam_size, word_safe_copy=True)) == ["join supercomputer", "russian-installed"]


def test_word_safe_copy_with_sampling_never_glues() -> None:
    config = replace(BASE, strategy="sample", n_best=8, word_safe_copy=True)
    src, lengths = pad([[ID[p] for p in SOURCES["▁to"]]])
    for hyp in search(CopyStub(), src, lengths, config, generator=torch.Generator().manual_seed(3), word_starts=STARTS)[0]:
        text = "".join(PIECES[t] for t in hyp.tokens).replace("▁", " ").split()
        assert set(text) <= {"join", "super", "supercomputer", "to"}


def test_a_word_may_end_at_the_length_limit_even_inside_a_source_word() -> None:
    """The length limit wins: a row at its limit may end, so no row is left without a candidate."""
    config = replace(BASE, word_safe_copy=True, max_length=3)
    assert run(config)[1] == "russian-in"


def test_restrict_to_words_allows_only_source_continuations() -> None:
    src, lengths = pad([[ID[p] for p in SOURCES["▁to"]]])
    words = source_words(src, lengths, STARTS)
    tokens = torch.tensor([[ID["▁super"]], [ID["▁join"]]])
    out = restrict_to_words(torch.zeros(2, len(PIECES)), tokens=tokens, sentences=torch.tensor([0, 0]), words=words)
    allowed = [{PIECES[i] for i in (row > float("-inf")).nonzero().view(-1).tolist()} for row in out]
    assert allowed[0] == {"computer"}  # "super" alone starts the source word "supercomputer": it must go on
    assert "computer" not in allowed[1] and EOS_ID in (out[1] > float("-inf")).nonzero().view(-1).tolist()


def test_a_row_stuck_between_its_word_and_repeat_blocking_may_end() -> None:
    """No row is left without a candidate: where "computer computer" inside one source word
    would repeat, the row may end (so a sentence always gets an output) but not repeat."""
    src, lengths = pad([[ID[p] for p in ["▁super", "computer", "computer"]]])
    words = source_words(src, lengths, STARTS)
    config = DecodeConfig(no_adjacent_repeat=2, word_safe_copy=True, max_length=10)
    out = constrain(torch.zeros(1, len(PIECES)), tokens=torch.tensor([[ID["▁super"], ID["computer"]]]),
                    limits=torch.tensor([10]), minimums=torch.tensor([0]), config=config,
                    words=words, sentences=torch.tensor([0]))
    assert {i for i in range(len(PIECES)) if out[0, i] > float("-inf")} == {EOS_ID}


def test_a_piece_that_is_a_whole_source_word_too_may_end_there() -> None:
    src, lengths = pad([[ID[p] for p in ["▁super", "▁super", "computer"]]])
    words = source_words(src, lengths, STARTS)
    out = restrict_to_words(torch.zeros(1, len(PIECES)), tokens=torch.tensor([[ID["▁super"]]]),
                            sentences=torch.tensor([0]), words=words)
    assert out[0, ID["computer"]] == 0 and out[0, EOS_ID] == 0 and out[0, ID["▁to"]] == 0


# ---------------------------------------------------------------- on a tiny real copy model

from num2words import num2words  # noqa: E402

from seqlab.core.data_config import TokenizerConfig  # noqa: E402
from seqlab.core.errors import ConfigError  # noqa: E402
from seqlab.core.run_config import ModelConfig  # noqa: E402
from seqlab.core.text import ParallelText  # noqa: E402
from seqlab.model.seq2seq import build_model  # noqa: E402
from seqlab.search.texts import decode_texts  # noqa: E402
from seqlab.search.words import word_starts  # noqa: E402
from seqlab.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

LINES = ["seven thousand two hundred and one", "nine hundred and ninety-nine", "forty-four thousand"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    values = [i * 37 + 3 for i in range(60)]
    text = ParallelText(src=[num2words(v, lang="en") for v in values], tgt=[num2words(v, lang="en") for v in values])
    return train_tokenizer(text, TokenizerConfig(vocab_size=50), seed=1)


def copy_model(tokenizer: Tokenizer, **overrides):
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=12, hidden_dim=12, attention_dim=12, **{"copy": True, **overrides})
    model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size,
                        output_ids=torch.arange(tokenizer.tgt_vocab_size) if overrides else None)
    with torch.no_grad():  # decisive, so that the untrained model copies pieces it should not
        for param in model.parameters():
            param.mul_(3.0)
    return model.eval()


def output_words(tokenizer: Tokenizer, pieces: list[int]) -> list[tuple[int, ...]]:
    starts = word_starts(tokenizer, copy_model(tokenizer)).tolist()
    words: list[list[int]] = []
    for piece in pieces:
        if starts[piece] or not words:
            words.append([piece])
        else:
            words[-1].append(piece)
    return [tuple(w) for w in words]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_real_copy_model_outputs_only_pieces_or_whole_source_words(tokenizer: Tokenizer, beam_size: int) -> None:
    model = copy_model(tokenizer)
    config = DecodeConfig(beam_size=beam_size, max_length=20, max_length_ratio=3.0)
    free = decode_texts(LINES, model=model, tokenizer=tokenizer, config=config, device=torch.device("cpu"))
    safe = decode_texts(LINES, model=model, tokenizer=tokenizer, config=replace(config, word_safe_copy=True),
                        device=torch.device("cpu"))
    glued = 0
    for line, a, b in zip(LINES, free, safe):
        source = set(output_words(tokenizer, tokenizer.encode_src([line])[0]))
        glued += sum(len(w) > 1 and w not in source for w in output_words(tokenizer, a.hypotheses[0].tokens))
        assert all(len(w) == 1 or w in source for w in output_words(tokenizer, b.hypotheses[0].tokens)), b.texts
    assert glued > 0  # without the constraint this model does glue pieces into new words


def test_word_safe_copy_needs_a_full_output_vocabulary(tokenizer: Tokenizer) -> None:
    model = copy_model(tokenizer, copy=False, output_vocab="target")
    with pytest.raises(ConfigError, match=r"decode\.word_safe_copy"):
        decode_texts(LINES, model=model, tokenizer=tokenizer, config=DecodeConfig(word_safe_copy=True),
                     device=torch.device("cpu"))
