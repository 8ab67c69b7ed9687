"""Gradient accumulation and the split of a global batch (seqlab.train.shares): however a batch's rows
are cut into micro-batches, one update equals the update on the whole batch (fp32, tiny seeded model)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from num2words import num2words

from seqlab.core.data_config import TokenizerConfig
from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.tokenizer import train_tokenizer
from seqlab.train.batches import EncodedSplit
from seqlab.train.distributed import World
from seqlab.train.loop import train_step
from seqlab.train.run import Outputs, Run, build_network, make_optimizer
from seqlab.train.shares import split_shares, step_work, target_tokens

MODEL = ModelConfig(embed_dim=8, hidden_dim=8, attention_dim=8, dropout=0.0)
CPU = torch.device("cpu")
ROWS = np.arange(24)  # the global batch of every test: 24 pairs of mixed lengths


@dataclass(frozen=True)
class Tiny:
    tokenizer: object
    data: EncodedSplit
    valid_text: ParallelText


def make_tiny() -> Tiny:
    text = ParallelText(src=[num2words(v, lang="en") for v in range(1, 41)],
                        tgt=[num2words(v * 37, lang="fr") for v in range(1, 41)])
    tokenizer = train_tokenizer(text, TokenizerConfig(vocab_size=40), seed=1)
    as_arrays = lambda ids: [np.asarray(x, dtype=np.int32) for x in ids]  # noqa: E731
    data = EncodedSplit(as_arrays(tokenizer.encode_src(text.src)), as_arrays(tokenizer.encode_tgt(text.tgt)))
    return Tiny(tokenizer, data, text)


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return make_tiny()


def one_update(tiny: Tiny, *, accumulate: int, world: World = World(), wrap=None) -> dict[str, torch.Tensor]:
    """The weights after one update on ROWS (this process's share of them when ``world`` has several), and
    the gradients that made it, unclipped (Adam's first step hardly depends on the gradients' scale)."""
    torch.manual_seed(7)
    model = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU)
    config = TrainConfig(device="cpu", accumulate=accumulate, clip_norm=0.0)
    run = Run(model=model, optimizer=make_optimizer(model, config), config=config, tokenizer=tiny.tokenizer,
              device=CPU, valid_data=tiny.data, valid_text=tiny.valid_text, outputs=Outputs(None, None, ""),
              info={}, live=None, tokenize="13a", world=world)
    if wrap is not None:
        run = replace(run, net=wrap(model))
    work = step_work(tiny.data, ROWS, target_tokens(tiny.data), rank=world.rank, world=world.size,
                     accumulate=accumulate, device=CPU)
    train_step(run, work, step=1, lr=1e-3)
    return {**{k: v.detach().clone() for k, v in model.state_dict().items()},
            **{f"grad {k}": p.grad.clone() for k, p in model.named_parameters()}}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_shares_are_contiguous_balanced_and_cover_the_batch() -> None:
    tokens = np.array([1, 1, 1, 1, 10, 10, 10, 10])
    shares = split_shares(np.arange(8), tokens, parts=2)
    assert [s.tolist() for s in shares] == [[0, 1, 2, 3, 4, 5], [6, 7]]  # 14 and 20 tokens: the closest cut
    for parts in (1, 3, 4, 8):
        shares = split_shares(np.arange(8), tokens, parts=parts)
        assert len(shares) == parts and np.concatenate(shares).tolist() == list(range(8))
        assert all(len(s) for s in shares)  # no empty share while rows last


def test_fewer_rows_than_shares_leaves_the_last_shares_empty() -> None:
    shares = split_shares(np.array([5, 9]), np.ones(10, dtype=int), parts=4)
    assert [s.tolist() for s in shares] == [[5], [9], [], []]


def test_accumulating_two_micro_batches_equals_one_update_on_the_whole_batch(tiny: Tiny) -> None:
    whole = one_update(tiny, accumulate=1)
    for accumulate in (2, 3):
        assert max_difference(one_update(tiny, accumulate=accumulate), whole) < 1e-6
    torch.manual_seed(7)
    untouched = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU).state_dict()
    weights = {k: v for k, v in whole.items() if not k.startswith("grad ")}
    assert max_difference(untouched, weights) > 1e-4  # the update did move the weights


def test_more_micro_batches_than_rows_still_equals_the_whole_batch(tiny: Tiny, monkeypatch) -> None:
    monkeypatch.setattr(__import__(__name__), "ROWS", np.arange(3))
    whole = one_update(tiny, accumulate=1)
    assert max_difference(one_update(tiny, accumulate=5), whole) < 1e-6  # two empty shares weigh nothing


def test_two_backward_passes_of_the_taped_encoder_accumulate_twice_the_gradient(tiny: Tiny) -> None:
    """The taped LSTM's two biases once shared one .grad buffer, so a second backward added into it twice."""
    from seqlab.train.loss import batch_loss

    torch.manual_seed(7)
    model = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU)
    batch = tiny.data.batch(ROWS)
    batch_loss(model, batch).backward()
    once = {n: p.grad.clone() for n, p in model.named_parameters()}
    batch_loss(model, batch).backward()
    assert all(torch.allclose(p.grad, 2 * once[n], atol=1e-6) for n, p in model.named_parameters()), \
        [n for n, p in model.named_parameters() if not torch.allclose(p.grad, 2 * once[n], atol=1e-6)]


@pytest.mark.parametrize(("raw", "message"), [
    ({"nproc_per_node": "many"}, "train.nproc_per_node: expected int or 'auto', got str 'many'"),
    ({"nproc_per_node": 0}, "train.nproc_per_node: must be at least 1, or auto"),
    ({"accumulate": 0}, "train.accumulate: must be at least 1"),
    ({"nnodes": 0}, "train.nnodes: must be at least 1"),
])
def test_the_scale_out_keys_are_checked(raw: dict, message: str) -> None:
    from seqlab.core.errors import ConfigError
    from seqlab.core.params import build

    with pytest.raises(ConfigError) as info:
        build(TrainConfig, raw, "train")
    assert str(info.value) == message
    assert build(TrainConfig, {"nproc_per_node": "auto"}, "train").nproc_per_node == "auto"
