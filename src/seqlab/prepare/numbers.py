"""The offline default corpus: number phrases in two languages, rendered by ``num2words``."""

from __future__ import annotations

import math
import random

from num2words import num2words

from seqlab.core.data_config import NumbersConfig
from seqlab.core.errors import ConfigError
from seqlab.core.text import Corpus, ParallelText


def number_phrase(value: int, kind: str, lang: str) -> str:
    """``value`` written out in ``lang`` as a cardinal, ordinal or year."""
    to = {"cardinal": "cardinal", "ordinal": "ordinal", "year": "year"}[kind]
    return num2words(value, lang=lang, to=to)


def _draw(rng: random.Random, max_value: int) -> tuple[int, str]:
    """One (value, kind): half cardinals, a quarter ordinals, a quarter years.

    Cardinals and ordinals are log-uniform so that small numbers, whose words
    are the building blocks of the large ones, are not drowned out.
    """
    roll = rng.random()
    if roll < 0.25:
        return rng.randint(1000, 2099), "year"
    value = int(math.exp(rng.uniform(0.0, math.log(max_value)))) - 1
    return value, ("cardinal" if roll < 0.75 else "ordinal")


def generate_numbers(config: NumbersConfig, *, seed: int) -> Corpus:
    """A seeded corpus of number phrases; no source sentence is in two splits.

    The cardinals 0-99 always go to ``train``: every larger number is built from
    their words, so a model that never saw them could not translate the rest.
    """
    rng = random.Random(seed)
    total = config.train_size + config.valid_size + config.test_size
    atoms = [(v, "cardinal") for v in range(min(100, config.max_value, config.train_size))]
    pairs: dict[str, str] = {}
    for value, kind in atoms:
        pairs.setdefault(number_phrase(value, kind, config.src_lang), number_phrase(value, kind, config.tgt_lang))
    fixed = len(pairs)
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 50 * total:
            raise ConfigError(
                f"prepare.numbers.max_value: {config.max_value} is too small for {total} distinct pairs"
            )
        value, kind = _draw(rng, config.max_value)
        src = number_phrase(value, kind, config.src_lang)
        if src not in pairs:
            pairs[src] = number_phrase(value, kind, config.tgt_lang)
    items = list(pairs.items())
    rest = items[fixed:]
    rng.shuffle(rest)
    valid = rest[: config.valid_size]
    test = rest[config.valid_size : config.valid_size + config.test_size]
    train = items[:fixed] + rest[config.valid_size + config.test_size :]
    rng.shuffle(train)
    return Corpus(train=_pairs(train), valid=_pairs(valid), test=_pairs(test))


def _pairs(items: list[tuple[str, str]]) -> ParallelText:
    return ParallelText(src=[s for s, _ in items], tgt=[t for _, t in items])
