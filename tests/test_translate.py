"""Tests for seqlab.search.texts: text in, text out, in input order."""

from __future__ import annotations

import pytest
import torch
from num2words import num2words
from test_search import ARCH_CONFIGS, decisive

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.run_config import DecodeConfig, ModelConfig
from seqlab.core.text import ParallelText
from seqlab.model.batch import pad
from seqlab.model.seq2seq import Seq2Seq, build_model
from seqlab.search.beam import search
from seqlab.search.texts import bf16_copy, decode_texts
from seqlab.tokenizer import BOS_ID, EOS_ID, Tokenizer, train_tokenizer

CPU = torch.device("cpu")
LINES = [
    "one hundred and three",
    "",
    "forty",
    "seven thousand, two hundred and one",
    "",
    "three",
    "nine hundred and ninety-nine",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A joint 40-piece sentencepiece model trained on a few dozen number phrases."""
    values = [i * 37 + 3 for i in range(40)]
    text = ParallelText(src=[num2words(v, lang="en") for v in values], tgt=[num2words(v, lang="fr") for v in values])
    return train_tokenizer(text, TokenizerConfig(vocab_size=40), seed=1)


@pytest.fixture(scope="module", params=["rnn", "transformer"])
def model(tokenizer: Tokenizer, request: pytest.FixtureRequest) -> Seq2Seq:
    torch.manual_seed(0)
    if request.param == "transformer":
        transformer = build_model(ARCH_CONFIGS["transformer"], src_vocab=tokenizer.src_vocab_size,
                                  tgt_vocab=tokenizer.tgt_vocab_size)
        return decisive(transformer, "transformer")
    config = ModelConfig(embed_dim=12, hidden_dim=12, attention_dim=12, dropout=0.1)
    model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size)
    with torch.no_grad():  # decisive enough that outputs differ from line to line
        for param in model.parameters():
            param.mul_(3.0)
    return model.eval()


class Recorder:
    """Delegates to a model and records the source batches it is asked to encode."""

    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        self.batches: list[torch.Tensor] = []

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor):
        self.batches.append(src.clone())
        return self.model.encode(src, src_lengths)

    def decode_step(self, prev_tokens: torch.Tensor, state):
        return self.model.decode_step(prev_tokens, state)

    def piece_ids(self, outputs: list[int]) -> list[int]:
        return self.model.piece_ids(outputs)


class Untouchable:
    def encode(self, src, src_lengths):
        raise AssertionError("the model ran")

    def decode_step(self, prev_tokens, state):
        raise AssertionError("the model ran")


def alone(model: Seq2Seq, ids: list[int], config: DecodeConfig):
    src, lengths = pad([ids])
    with torch.inference_mode():
        return search(model, src, lengths, config)[0]


CONFIG = DecodeConfig(beam_size=3, n_best=2, length_penalty=1.0, max_length_ratio=1.5, max_length=20, batch_size=2)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_one_result_per_line_in_input_order(model: Seq2Seq, tokenizer: Tokenizer, beam_size: int) -> None:
    config = DecodeConfig(**{**CONFIG.__dict__, "beam_size": beam_size, "n_best": min(2, beam_size)})
    results = decode_texts(LINES, model=model, tokenizer=tokenizer, config=config, device=CPU)
    assert len(results) == len(LINES)
    for line, result in zip(LINES, results):
        ids = tokenizer.encode_src([line])[0]
        assert result.source_pieces == tokenizer.src_pieces(ids)
        if not ids:
            continue
        expected = alone(model, ids, config)
        assert [h.tokens for h in result.hypotheses] == [h.tokens for h in expected]
        assert [h.score for h in result.hypotheses] == pytest.approx([h.score for h in expected], abs=1e-5)
        assert result.texts == tokenizer.decode_tgt([h.tokens for h in expected])
        assert len(result.texts) == config.n_best
        assert result.truncated is False
    # Non-empty lines do not all translate alike, so the order check above means something.
    assert len({tuple(r.hypotheses[0].tokens) for r in results if r.hypotheses}) > 1


def test_lines_are_batched_longest_first(model: Seq2Seq, tokenizer: Tokenizer) -> None:
    recorder = Recorder(model)
    decode_texts(LINES, model=recorder, tokenizer=tokenizer, config=CONFIG, device=CPU)
    sizes = [b.size(0) for b in recorder.batches]
    assert sizes == [2, 2, 1]  # five non-empty lines, batch_size 2; empty lines never reach the model
    widths = [b.size(1) for b in recorder.batches]
    assert widths == sorted(widths, reverse=True)


def test_empty_lines_give_empty_text_without_running_the_model(tokenizer: Tokenizer) -> None:
    results = decode_texts(["", "", ""], model=Untouchable(), tokenizer=tokenizer, config=CONFIG, device=CPU)
    assert len(results) == 3
    for result in results:
        assert result.texts == ["", ""]  # one per n-best
        assert result.hypotheses == [] and result.source_pieces == []
        assert result.truncated is False
    assert decode_texts([], model=Untouchable(), tokenizer=tokenizer, config=CONFIG, device=CPU) == []


def test_truncation_flag_when_max_src_len_cuts(model: Seq2Seq, tokenizer: Tokenizer) -> None:
    lines = ["seven thousand, two hundred and one", "three", ""]
    long_ids, short_ids = tokenizer.encode_src(lines[:2])
    limit = len(short_ids) + 1
    assert len(long_ids) > limit
    results = decode_texts(lines, model=model, tokenizer=tokenizer, config=CONFIG, device=CPU, max_src_len=limit)
    assert [r.truncated for r in results] == [True, False, False]
    assert results[0].source_pieces == tokenizer.src_pieces(long_ids[:limit])
    assert [h.tokens for h in results[0].hypotheses] == [h.tokens for h in alone(model, long_ids[:limit], CONFIG)]
    # A source exactly at the limit is not cut; zero means no limit.
    exact = decode_texts(lines[:1], model=model, tokenizer=tokenizer, config=CONFIG, device=CPU, max_src_len=len(long_ids))
    assert exact[0].truncated is False
    unlimited = decode_texts(lines[:1], model=model, tokenizer=tokenizer, config=CONFIG, device=CPU, max_src_len=0)
    assert unlimited[0].truncated is False and unlimited[0].source_pieces == tokenizer.src_pieces(long_ids)


def rescore(model: Seq2Seq, src_ids: list[int], tokens: list[int]) -> float:
    """log P(tokens + EOS | source) under ``model`` by teacher forcing, in fp32."""
    src, lengths = pad([src_ids])
    tgt_in = torch.tensor([[BOS_ID, *tokens]])
    target = torch.tensor([[*tokens, EOS_ID]])
    with torch.no_grad():
        log_probs = model(src, lengths, tgt_in).log_probs
    return float(log_probs.gather(2, target.unsqueeze(2)).sum())


@pytest.mark.parametrize(
    "options",
    [{}, {"copy": True, "coverage": True}, {"rnn_type": "gru", "attention": "general"}, {"attention": "dot", "bidirectional": False}],
    ids=["lstm-bahdanau", "copy-coverage", "gru-general", "dot"],
)
def test_cpu_bf16_search_scores_its_outputs_as_fp32_does(tokenizer: Tokenizer, options: dict) -> None:
    """The bf16 search runs for every model kind, leaves the caller's model fp32, and the
    log-probability it reports for each output is what the fp32 model gives that output, to bf16 precision."""
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=12, hidden_dim=12, attention_dim=12, dropout=0.0, **options)
    model = build_model(config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    lines = [line for line in LINES if line]
    results = decode_texts(lines, model=model, tokenizer=tokenizer, config=DecodeConfig(beam_size=3, cpu_bf16=True),
                        device=CPU)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for line, result in zip(lines, results):
        hyp = result.hypotheses[0]
        exact = rescore(model, tokenizer.encode_src([line])[0], hyp.tokens)
        assert hyp.log_prob == pytest.approx(exact, rel=0.03, abs=0.05)


def test_bf16_copy_casts_once(model: Seq2Seq) -> None:
    cast = bf16_copy(model)
    assert next(cast.parameters()).dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32
    assert bf16_copy(cast) is cast  # already bf16: callers translating in chunks pay the copy once
