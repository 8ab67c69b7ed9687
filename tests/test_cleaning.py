"""Tests for seqlab.prepare.clean: each normalisation switch, each filter, and the counts."""

from __future__ import annotations

import pandas as pd
import pytest

from seqlab.core.data_config import CleanConfig
from seqlab.core.errors import ConfigError
from seqlab.prepare.clean import DROP_REASONS, Cleaner, CleanStats, drop_reasons, normalize, normalize_text

OFF = CleanConfig(unicode="none", crlf=False, bom=False, control_chars=False, whitespace=False, dedup=False,
                  max_chars=0)


def texts(*values: str) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]})


# ---------------------------------------------------------------- normalisation, one switch at a time


@pytest.mark.parametrize(
    ("switch", "before", "after"),
    [
        ({"crlf": True}, "line\r", "line"),
        ({"bom": True}, "\ufeffstart", "start"),
        ({"control_chars": True}, "a\tb\x01c\u2028d\x85e", "a bc d e"),
        ({"unicode": "NFC"}, "cafe\u0301", "caf\u00e9"),
        ({"unicode": "NFKC"}, "\uff26\uff55\uff4c\uff4c \ufb01", "Full fi"),
        ({"whitespace": True}, "  two   spaces ", "two spaces"),
    ],
)
def test_each_switch_does_its_one_thing(switch: dict, before: str, after: str) -> None:
    on = CleanConfig(**{**OFF.__dict__, **switch})
    assert normalize_text(texts(before), on).tolist() == [after]
    assert normalize_text(texts(before), OFF).tolist() == [before]


def test_nfc_leaves_compatibility_characters() -> None:
    assert normalize_text(texts("\ufb01"), CleanConfig(unicode="NFC")).tolist() == ["\ufb01"]


def test_a_newline_inside_a_text_always_becomes_a_space() -> None:
    # One line is one pair on disk; a table cell holding a newline must not split it.
    assert normalize_text(texts("two\nlines"), OFF).tolist() == ["two lines"]


def test_defaults_clean_a_messy_line() -> None:
    messy = "\ufeff  Cafe\u0301\tau\x07 lait \r"
    assert normalize_text(texts(messy), CleanConfig()).tolist() == ["Caf\u00e9 au lait"]


def test_normalize_does_not_modify_its_input() -> None:
    pairs = frame([("a  b", "c\r")])
    out = normalize(pairs, CleanConfig())
    assert pairs.to_dict("list") == {"src": ["a  b"], "tgt": ["c\r"]}
    assert out.to_dict("list") == {"src": ["a b"], "tgt": ["c"]}


# ---------------------------------------------------------------- filters


def test_drop_reasons_in_order() -> None:
    pairs = frame([("ok", "fine"), ("", "x"), ("x" * 11, "y"), ("a b c d", "e"), ("", "x" * 11)])
    config = CleanConfig(max_chars=10, max_ratio=3.0)
    assert drop_reasons(pairs, config).tolist() == ["", "empty", "too_long", "ratio", "empty"]


def test_max_words_counts_runs_of_non_spaces() -> None:
    pairs = frame([("one two three", "un deux"), ("one  two", "un"), ("one two three four", "x")])
    assert drop_reasons(pairs, CleanConfig(max_words=3)).tolist() == ["", "", "too_long"]


def test_filters_off_by_zero() -> None:
    pairs = frame([("x" * 20000, "y"), ("a b c d e f", "g")])
    assert drop_reasons(pairs, CleanConfig(max_chars=0, max_words=0, max_ratio=0.0)).tolist() == ["", ""]
    assert drop_reasons(pairs, CleanConfig()).tolist() == ["too_long", ""]  # max_chars defaults to 10,000


@pytest.mark.parametrize(
    ("key", "value"), [("max_chars", -1), ("max_words", -5), ("max_ratio", 0.5), ("max_ratio", -1.0)]
)
def test_filter_settings_are_checked(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"prepare\.clean\.{key}"):
        CleanConfig(**{key: value})


# ---------------------------------------------------------------- a split, chunk by chunk


def test_cleaner_counts_every_drop_by_reason_across_chunks() -> None:
    cleaner = Cleaner(CleanConfig(max_ratio=2.0), filter=True)
    first = cleaner(frame([("a", "x"), ("a", "x"), ("b\r", "y"), ("", "z")]))
    second = cleaner(frame([("a", "x"), ("b", "y"), ("c d e", "f"), ("c", "f")]))
    assert first.to_dict("list") == {"src": ["a", "b"], "tgt": ["x", "y"]}
    assert second.to_dict("list") == {"src": ["c"], "tgt": ["f"]}
    assert list(second.index) == [0]
    stats = cleaner.stats
    assert stats == CleanStats(input=8, kept=3, normalized=1,
                               dropped={"empty": 1, "too_long": 0, "ratio": 1, "duplicate": 3})
    assert stats.input == stats.kept + sum(stats.dropped.values())
    assert stats.summary() == "kept 3 of 8 pairs (normalised 1; dropped 1 empty, 1 ratio, 3 duplicate)"


def test_duplicates_are_judged_after_normalisation() -> None:
    cleaner = Cleaner(CleanConfig(), filter=True)
    kept = cleaner(frame([("cafe\u0301", "x"), ("caf\u00e9 ", "x")]))
    assert kept["src"].tolist() == ["caf\u00e9"]
    assert cleaner.stats.dropped["duplicate"] == 1


def test_same_source_other_target_is_not_a_duplicate() -> None:
    cleaner = Cleaner(CleanConfig(), filter=True)
    assert len(cleaner(frame([("a", "x"), ("a", "y")]))) == 2


def test_dedup_switch() -> None:
    cleaner = Cleaner(CleanConfig(dedup=False), filter=True)
    assert len(cleaner(frame([("a", "x"), ("a", "x")]))) == 2
    assert cleaner.stats.dropped == dict.fromkeys(DROP_REASONS, 0)


def test_a_dropped_pair_does_not_count_as_seen() -> None:
    cleaner = Cleaner(CleanConfig(max_ratio=2.0), filter=True)
    cleaner(frame([("a b c", "x")]))  # dropped for its ratio
    cleaner(frame([("a b c", "x y")]))
    assert cleaner.stats.dropped["duplicate"] == 0


def test_test_split_is_normalised_never_filtered() -> None:
    cleaner = Cleaner(CleanConfig(max_chars=3), filter=False)
    kept = cleaner(frame([("a", "x"), ("a", "x"), ("", "y"), ("long one", "z\r")]))
    assert kept.to_dict("list") == {"src": ["a", "a", "", "long one"], "tgt": ["x", "x", "y", "z"]}
    assert cleaner.stats == CleanStats(input=4, kept=4, normalized=1)


def test_stats_add() -> None:
    one = CleanStats(input=2, kept=1, normalized=1, dropped={**dict.fromkeys(DROP_REASONS, 0), "empty": 1})
    assert (one + one).dropped["empty"] == 2
    assert (one + CleanStats()).input == 2
