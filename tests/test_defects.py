"""Tests for seqlab.evaluate.defects: the unknown glyph, invented words and repetition, counted per output."""

from __future__ import annotations

import pytest

from seqlab.core.errors import DataError
from seqlab.evaluate.defects import Defects, count_defects, has_repeat, invented_words, known_words

KNOWN = known_words(["police plan online patrol", "<unk> wins third set to"])


def test_invented_words_are_in_neither_the_source_nor_the_training_targets() -> None:
    source = "the supercomputer will join the network"
    assert invented_words("Police to join supercomputer", source, KNOWN) == []
    assert invented_words("police to joincomputer <unk> joincomputer", source, KNOWN) == ["joincomputer"] * 2


@pytest.mark.parametrize(("text", "repeated"), [
    ("five anti-nuclearararararar protesters", True),
    ("police police plan", True),
    ("plan online plan online patrol", True),
    ("a b c d a b c d", True),
    ("police plan online patrol", False),
    ("## killed in ## attacks", False),
    ("banana republic", False),  # "ana" twice is a word, not a stutter
    ("###,### troops", False),  # digit masks are no stutter
])
def test_has_repeat(text: str, repeated: bool) -> None:
    assert has_repeat(text) is repeated


def test_count_defects_and_their_metrics() -> None:
    hypotheses = ["\u2047 unk \u2047 to joincomputer", "police plan plan", "<unk> wins third set", "patrol"]
    sources = ["x", "police plan", "y", "patrol online"]
    defects = count_defects(hypotheses, sources, KNOWN)
    assert defects == Defects(outputs=4, glyph=1, invented=1, repeated=1)
    assert defects.as_metrics() == {"unk_glyph_outputs": 1, "invented_word_pct": 25.0, "repeat_pct": 25.0}
    assert Defects(0, 0, 0, 0).as_metrics()["repeat_pct"] == 0.0


def test_misaligned_files_are_a_data_error() -> None:
    with pytest.raises(DataError, match="not aligned"):
        count_defects(["a"], [], KNOWN)
