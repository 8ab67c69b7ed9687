"""Output defects that averages hide: sentencepiece's unknown glyph, invented words, repetition.

Pure functions over lists of strings. A word is a whitespace-separated token,
lowercased, as in the corpora these presets read (tokenized text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from seqlab.core.errors import DataError

UNK_GLYPH = "\u2047"  # what sentencepiece writes for its unknown piece
MAX_REPEAT_NGRAM = 4  # word n-grams up to this size count as repeated when they follow themselves
# A run of letters said three times in a row inside one word ("nuclearararar"): what a copied
# piece repeated to the length limit leaves once the pieces are joined.
_STUTTER = re.compile(r"([^\W\d_]{2,}?)\1{2,}")


@dataclass(frozen=True)
class Defects:
    """How many outputs carry each defect, and their share (0-100) of all outputs."""

    outputs: int
    glyph: int  # outputs with sentencepiece's unknown glyph
    invented: int  # outputs with a word in neither their source nor the training targets
    repeated: int  # outputs with an immediately repeated word n-gram or a stuttering word

    def as_metrics(self) -> dict[str, float | int]:
        """Numbers for the metrics JSON, so ``dvc exp show`` lists them beside the scores."""
        share = (lambda n: round(100.0 * n / self.outputs, 2)) if self.outputs else (lambda n: 0.0)
        return {"unk_glyph_outputs": self.glyph, "invented_word_pct": share(self.invented),
                "repeat_pct": share(self.repeated)}


def words(text: str) -> list[str]:
    return text.lower().split()


def known_words(texts: Iterable[str]) -> set[str]:
    """Every word of ``texts`` (e.g. the training targets, streamed)."""
    known: set[str] = set()
    for text in texts:
        known.update(words(text))
    return known


def invented_words(hypothesis: str, source: str, known: set[str]) -> list[str]:
    """The words of ``hypothesis`` found neither in ``source`` nor in ``known``."""
    seen = set(words(source))
    return [w for w in words(hypothesis) if w not in seen and w not in known]


def has_repeat(text: str, *, max_n: int = MAX_REPEAT_NGRAM) -> bool:
    """True when some word n-gram (n <= max_n) is immediately followed by itself ("a b a b"),
    or a word stutters (a run of two or more letters three times in a row)."""
    tokens = words(text)
    for n in range(1, max_n + 1):
        if any(tokens[i : i + n] == tokens[i + n : i + 2 * n] for i in range(len(tokens) - 2 * n + 1)):
            return True
    return any(_STUTTER.search(word) for word in tokens)


def count_defects(hypotheses: list[str], sources: list[str], known: set[str]) -> Defects:
    """Defect counts over aligned ``hypotheses`` and ``sources``; ``known``: the training targets' words."""
    if len(hypotheses) != len(sources):
        raise DataError(f"{len(hypotheses):,} hypotheses but {len(sources):,} sources: the files are not aligned")
    return Defects(
        outputs=len(hypotheses),
        glyph=sum(UNK_GLYPH in h for h in hypotheses),
        invented=sum(bool(invented_words(h, s, known)) for h, s in zip(hypotheses, sources)),
        repeated=sum(has_repeat(h) for h in hypotheses),
    )
