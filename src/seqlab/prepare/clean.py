"""Cleaning of a corpus split: text normalisation, then pair filters, every drop counted by reason.

The steps are pure DataFrame -> DataFrame (or -> Series) functions over columns
``src`` and ``tgt``; :class:`Cleaner` strings them together for one split read
in chunks, and holds what must outlive a chunk: the running counts and the
hashes of the pairs kept so far (for deduplication).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seqlab.core.data_config import CleanConfig

DROP_REASONS = ("empty", "too_long", "ratio", "duplicate")  # a dropped pair counts under the first that holds

# Control characters that separate words become a space; the others go. NUL never
# gets here: the readers refuse it. Written as characters, not escapes, so that
# Python's re and pyarrow's RE2 (pandas' string backend) read them alike.
_SPACE_LIKE = "[\t\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]"
_INVISIBLE = "[\x01-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"


@dataclass(frozen=True)
class CleanStats:
    """What cleaning did to one split: pairs in, kept, changed by normalisation, dropped by reason."""

    input: int = 0
    kept: int = 0
    normalized: int = 0  # pairs whose text normalisation changed (whether kept or dropped after)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    def __add__(self, other: CleanStats) -> CleanStats:
        return CleanStats(
            input=self.input + other.input,
            kept=self.kept + other.kept,
            normalized=self.normalized + other.normalized,
            dropped={reason: self.dropped[reason] + other.dropped[reason] for reason in DROP_REASONS},
        )

    def summary(self) -> str:
        """One line for the stage's output, e.g. ``kept 990 of 1,000 (normalised 3; dropped 10 duplicate)``."""
        drops = ", ".join(f"{n:,} {reason}" for reason, n in self.dropped.items() if n)
        return (
            f"kept {self.kept:,} of {self.input:,} pairs "
            f"(normalised {self.normalized:,}; dropped {drops or 'none'})"
        )


# ---------------------------------------------------------------- normalisation


def normalize_text(text: pd.Series, config: CleanConfig) -> pd.Series:
    """One column's strings normalised as ``config`` says.

    A newline inside a text always becomes a space: one line is one pair on
    disk, so a table cell holding one would shift every pair after it.
    """
    if config.crlf:
        text = text.str.removesuffix("\r")
    if config.bom:
        text = text.str.replace("\ufeff", "", regex=False)
    text = text.str.replace("\n", " ", regex=False)
    if config.control_chars:
        text = text.str.replace(_SPACE_LIKE, " ", regex=True).str.replace(_INVISIBLE, "", regex=True)
    if config.unicode != "none":
        # ASCII text is already in every normal form; only the rest goes through
        # unicodedata, one string at a time.
        other = ~text.str.isascii()
        if other.any():
            text = text.mask(other, text[other].str.normalize(config.unicode))
    if config.whitespace:
        text = text.str.replace(" {2,}", " ", regex=True).str.strip(" ")
    return text


def normalize(frame: pd.DataFrame, config: CleanConfig) -> pd.DataFrame:
    """``frame`` with both sides normalised (a new frame; the input is left alone)."""
    return frame.assign(src=normalize_text(frame["src"], config), tgt=normalize_text(frame["tgt"], config))


# ---------------------------------------------------------------- filters


def _words(text: pd.Series) -> np.ndarray:
    return text.str.count(r"[^ \t]+").to_numpy(dtype=np.int64)


def drop_reasons(frame: pd.DataFrame, config: CleanConfig) -> pd.Series:
    """Per pair, the first reason to drop it among empty, too_long and ratio; ``""`` to keep it.

    Lengths are in characters (``max_chars``) and in words, i.e. runs of
    non-spaces (``max_words``, ``max_ratio``); a limit of 0 is no limit.
    """
    src_chars = frame["src"].str.len().to_numpy()
    tgt_chars = frame["tgt"].str.len().to_numpy()
    empty = (src_chars == 0) | (tgt_chars == 0)
    too_long = np.zeros(len(frame), dtype=bool)
    ratio = np.zeros(len(frame), dtype=bool)
    if config.max_chars:
        too_long |= (src_chars > config.max_chars) | (tgt_chars > config.max_chars)
    if config.max_words or config.max_ratio:
        src_words, tgt_words = _words(frame["src"]), _words(frame["tgt"])
        if config.max_words:
            too_long |= (src_words > config.max_words) | (tgt_words > config.max_words)
        if config.max_ratio:
            longer, shorter = np.maximum(src_words, tgt_words), np.maximum(np.minimum(src_words, tgt_words), 1)
            ratio = longer > config.max_ratio * shorter
    reasons = np.select([empty, too_long, ratio], ["empty", "too_long", "ratio"], default="")
    return pd.Series(reasons, index=frame.index, dtype=object)


def pair_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per (src, tgt) pair.

    A collision would drop a distinct pair as a duplicate; among ten million
    pairs the odds of even one are about 3 in a million.
    """
    return pd.util.hash_pandas_object(frame[["src", "tgt"]], index=False).to_numpy()


# ---------------------------------------------------------------- one split


class Cleaner:
    """Cleans one split chunk by chunk; ``stats`` holds the counts so far.

    With ``filter=False`` (the test split, which is scored in full) pairs are
    only normalised, never dropped.
    """

    def __init__(self, config: CleanConfig, *, filter: bool) -> None:
        self.config = config
        self.filter = filter
        self.stats = CleanStats()
        self._seen: set[int] = set()  # hashes of the pairs kept so far; about 70 bytes each

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The kept pairs of ``frame``, normalised, with a fresh index."""
        cleaned = normalize(frame, self.config)
        changed = (cleaned["src"] != frame["src"]) | (cleaned["tgt"] != frame["tgt"])
        if self.filter:
            reasons = drop_reasons(cleaned, self.config)
            if self.config.dedup:
                reasons = self._mark_duplicates(cleaned, reasons)
        else:
            reasons = pd.Series("", index=frame.index, dtype=object)
        keep = (reasons == "").to_numpy()
        counts = reasons[~keep].value_counts()
        self.stats = self.stats + CleanStats(
            input=len(frame),
            kept=int(keep.sum()),
            normalized=int(changed.sum()),
            dropped={reason: int(counts.get(reason, 0)) for reason in DROP_REASONS},
        )
        return cleaned[keep].reset_index(drop=True)

    def _mark_duplicates(self, frame: pd.DataFrame, reasons: pd.Series) -> pd.Series:
        """``reasons`` with ``duplicate`` on every otherwise kept pair seen before (in this chunk or earlier)."""
        rows = np.flatnonzero((reasons == "").to_numpy())
        duplicate = np.zeros(len(frame), dtype=bool)
        seen = self._seen
        for row, key in zip(rows.tolist(), pair_hashes(frame)[rows].tolist()):
            if key in seen:
                duplicate[row] = True
            else:
                seen.add(key)
        return reasons.mask(duplicate, "duplicate")
