"""Corpus sources: the offline number-phrase generator and parallel text files.

A corpus is three splits of line-aligned source/target text. The ``prepare``
stage builds one from ``params.yaml`` and writes it as ``<split>.src`` and
``<split>.tgt`` files; the later stages read it back with :func:`read_corpus`.
"""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import dataclass
from pathlib import Path

from num2words import num2words

from seqlab.config import FilesConfig, NumbersConfig
from seqlab.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ParallelText:
    """Aligned sentence pairs: ``src[i]`` translates to ``tgt[i]``."""

    src: list[str]
    tgt: list[str]

    def __post_init__(self) -> None:
        assert len(self.src) == len(self.tgt), "sides must be aligned"

    def __len__(self) -> int:
        return len(self.src)


@dataclass(frozen=True)
class Corpus:
    train: ParallelText
    valid: ParallelText
    test: ParallelText

    def split(self, name: str) -> ParallelText:
        return getattr(self, name)


# ---------------------------------------------------------------- numbers


def number_phrase(value: int, kind: str, lang: str) -> str:
    """``value`` written out in ``lang`` as a cardinal, ordinal or year."""
    to = {"cardinal": "cardinal", "ordinal": "ordinal", "year": "year"}[kind]
    return num2words(value, lang=lang, to=to)


def _check_language(lang: str, key: str) -> None:
    try:
        num2words(1, lang=lang)
    except NotImplementedError:
        raise ConfigError(f"{key}: {lang!r} is not a language num2words knows") from None


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
    _check_language(config.src_lang, "prepare.numbers.src_lang")
    _check_language(config.tgt_lang, "prepare.numbers.tgt_lang")
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


# ---------------------------------------------------------------- files


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz), without their line endings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise DataError(f"{path}:{number}: invalid UTF-8 at byte {err.start}") from None
    return out


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> ParallelText:
    """A pair of line-aligned files; different line counts are an error naming both."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; they must be line-aligned")
    if not src:
        raise DataError(f"{src_path}: empty file")
    return ParallelText(src=src, tgt=tgt)


def read_files(config: FilesConfig) -> Corpus:
    """The corpus named by ``prepare.files``."""
    return Corpus(
        train=read_parallel(config.train_src, config.train_tgt),
        valid=read_parallel(config.valid_src, config.valid_tgt),
        test=read_parallel(config.test_src, config.test_tgt),
    )


# ---------------------------------------------------------------- on disk


def write_corpus(corpus: Corpus, directory: Path) -> None:
    """Write ``<split>.src`` and ``<split>.tgt`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        text = corpus.split(split)
        for side in ("src", "tgt"):
            lines = getattr(text, side)
            (directory / f"{split}.{side}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def read_corpus(directory: str | Path) -> Corpus:
    """The corpus that ``prepare`` wrote to ``directory``."""
    directory = Path(directory)
    train, valid, test = (read_parallel(directory / f"{s}.src", directory / f"{s}.tgt") for s in SPLITS)
    return Corpus(train=train, valid=valid, test=test)
