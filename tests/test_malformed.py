"""A catalogue of malformed inputs, each run through the real stage scripts.

Every case gets either a clear error (exit status 1, one line naming the file
and line or the params key, no traceback, no output left behind) or a counted
drop (reported in reports/prepare.json and printed). Each case is one
``python stages/<stage>.py`` in a temporary directory holding a params.yaml.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "train": ("ein Hund\nzwei Katzen\ndrei Vögel\nvier Fische\nfünf Pferde\n",
              "a dog\ntwo cats\nthree birds\nfour fish\nfive horses\n"),
    "valid": ("sechs Kühe\nsieben Schafe\n", "six cows\nseven sheep\n"),
    "test": ("acht Ziegen\n", "eight goats\n"),
}
FILES = {f"{split}_{side}": f"data/raw/{split}.{side}" for split in GOOD for side in ("src", "tgt")}
PARAMS = {"prepare": {"source": "files", "files": FILES}, "tokenizer": {"vocab_size": 30}}
OUTPUTS = {"prepare": ("data/corpus", "reports/prepare.json"), "tokenizer": ("data/tokenizer",),
           "preprocess": ("data/encoded", "reports/preprocess.json")}


def setup(tmp_path: Path, params: dict | None = None, **files: bytes | str | None) -> Path:
    """A working directory with params.yaml and the good corpus, ``files`` replacing (None: deleting) some."""
    (tmp_path / "data/raw").mkdir(parents=True)
    contents: dict[str, bytes | str | None] = {}
    for split, (src, tgt) in GOOD.items():
        contents[f"{split}.src"], contents[f"{split}.tgt"] = src, tgt
    contents.update({name.replace("_", "."): data for name, data in files.items()})
    for name, data in contents.items():
        if data is not None:
            raw = data.encode() if isinstance(data, str) else data
            (tmp_path / "data/raw" / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params or PARAMS))
    return tmp_path


def run(cwd: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def fails_cleanly(cwd: Path, stage: str, *expected: str) -> str:
    """Run ``stage``; it must fail with one ``error:`` line holding ``expected`` and leave no output."""
    proc = run(cwd, stage)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in lines[0]
    for output in OUTPUTS[stage]:
        assert not (cwd / output).exists(), f"{output} left behind"
    leftovers = [p.name for p in cwd.rglob(".*.tmp")]
    assert not leftovers, leftovers
    return lines[0]


def with_params(**sections: dict) -> dict:
    params = yaml.safe_load(yaml.safe_dump(PARAMS))
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    return params


# ---------------------------------------------------------------- prepare: refused, with file and line


def test_different_line_counts(tmp_path: Path) -> None:
    cwd = setup(tmp_path, train_tgt="a dog\ntwo cats\n")
    fails_cleanly(cwd, "prepare", "data/raw/train.src has 5 lines but data/raw/train.tgt has 2")


def test_invalid_utf8(tmp_path: Path) -> None:
    cwd = setup(tmp_path, valid_src=b"sechs K\xfche\nsieben Schafe\n")  # Latin-1, not UTF-8
    fails_cleanly(cwd, "prepare", "data/raw/valid.src:1: invalid UTF-8 at byte 7")


def test_utf16_file(tmp_path: Path) -> None:
    cwd = setup(tmp_path, test_tgt="eight goats\n".encode("utf-16"))
    fails_cleanly(cwd, "prepare", "data/raw/test.tgt:1: invalid UTF-8", "UTF-16")


def test_nul_byte(tmp_path: Path) -> None:
    cwd = setup(tmp_path, train_src=b"ein Hund\nzwei\x00Katzen\ndrei\nvier\nf\xc3\xbcnf\n")
    fails_cleanly(cwd, "prepare", "data/raw/train.src:2: NUL byte at byte 4")


def test_missing_file(tmp_path: Path) -> None:
    cwd = setup(tmp_path, valid_tgt=None)
    fails_cleanly(cwd, "prepare", "data/raw/valid.tgt: file not found", "prepare.files.valid_tgt")


def test_empty_files(tmp_path: Path) -> None:
    cwd = setup(tmp_path, test_src="", test_tgt="")
    fails_cleanly(cwd, "prepare", "data/raw/test.src: empty file")


def test_broken_gzip(tmp_path: Path) -> None:
    cwd = setup(tmp_path, params=with_params(prepare={"files": {**FILES, "train_src": "data/raw/train.src.gz"}}))
    (cwd / "data/raw/train.src.gz").write_bytes(gzip.compress(GOOD["train"][0].encode())[:20])  # cut short
    fails_cleanly(cwd, "prepare", "data/raw/train.src.gz: cannot read it")


def test_unknown_column(tmp_path: Path) -> None:
    table = {"train": "data/raw/train.tsv", "valid": "data/raw/train.tsv", "test": "data/raw/train.tsv",
             "src_column": "de", "tgt_column": "en"}
    cwd = setup(tmp_path, params=with_params(prepare={"source": "table", "table": table}),
                train_tsv="de\tenglish\nein Hund\ta dog\n")
    fails_cleanly(cwd, "prepare", "data/raw/train.tsv: no column 'en' in the header; the columns are: de, english")


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    table = {"train": "data/raw/t.csv", "valid": "data/raw/t.csv", "test": "data/raw/t.csv"}
    cwd = setup(tmp_path, params=with_params(prepare={"source": "table", "table": table}),
                t_csv='src,tgt\n"ein, Hund","a, dog"\nzwei,Katzen,two cats\n')
    fails_cleanly(cwd, "prepare", "data/raw/t.csv: Expected 2 fields in line 3, saw 3")


def test_invalid_jsonl_line(tmp_path: Path) -> None:
    table = {"train": "data/raw/t.jsonl", "valid": "data/raw/t.jsonl", "test": "data/raw/t.jsonl"}
    cwd = setup(tmp_path, params=with_params(prepare={"source": "table", "table": table}),
                t_jsonl='{"src": "ein Hund", "tgt": "a dog"}\n{"src": "zwei Katzen", "tgt": two cats}\n')
    fails_cleanly(cwd, "prepare", "data/raw/t.jsonl:2: not a JSON object")


def test_every_training_pair_dropped(tmp_path: Path) -> None:
    cwd = setup(tmp_path, params=with_params(prepare={"clean": {"max_chars": 5}}))
    fails_cleanly(cwd, "prepare", "prepare: no train pairs left", "5 too_long", "see prepare.clean")


def test_a_failure_keeps_the_previous_corpus(tmp_path: Path) -> None:
    cwd = setup(tmp_path)
    assert run(cwd, "prepare").returncode == 0
    before = (cwd / "data/corpus/train.src").read_bytes()
    (cwd / "data/raw/train.src").write_bytes(b"ein Hund\n\xff\n")
    assert run(cwd, "prepare").returncode == 1
    assert (cwd / "data/corpus/train.src").read_bytes() == before
    assert sorted(p.name for p in (cwd / "data").iterdir()) == ["corpus", "raw"]


# ---------------------------------------------------------------- params: refused, naming the key


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"prepare": {"chunk_size": "many"}}, "prepare.chunk_size: expected int, got str 'many'"),
        ({"prepare": {"clean": {"dedup": "yes"}}}, "prepare.clean.dedup: expected bool, got str 'yes'"),
        ({"prepare": {"clean": {"unicode": "NFD"}}}, "prepare.clean.unicode: 'NFD' is not one of"),
        ({"prepare": {"clean": {"dedupe": True}}}, "unknown key prepare.clean.dedupe; valid keys: unicode, crlf"),
        ({"prepare": {"valid_from_train": 3}}, "prepare.files.valid_src: leave empty when prepare.valid_from_train"),
    ],
)
def test_bad_params(tmp_path: Path, sections: dict, expected: str) -> None:
    fails_cleanly(setup(tmp_path, params=with_params(**sections)), "prepare", "params.yaml", expected)


# ---------------------------------------------------------------- tokenizer and preprocess


def test_vocabulary_larger_than_the_corpus_allows(tmp_path: Path) -> None:
    cwd = setup(tmp_path, params=with_params(tokenizer={"vocab_size": 5000}))
    assert run(cwd, "prepare").returncode == 0
    fails_cleanly(cwd, "tokenizer", "tokenizer.vocab_size: 5000 is more than this corpus allows (at most ")


def test_byte_fallback_needs_a_larger_vocabulary(tmp_path: Path) -> None:
    cwd = setup(tmp_path, params=with_params(tokenizer={"vocab_size": 30, "byte_fallback": True}))
    assert run(cwd, "prepare").returncode == 0
    fails_cleanly(cwd, "tokenizer", "tokenizer.vocab_size: 30 is too small", "byte_fallback")


def test_every_pair_too_long_for_preprocess(tmp_path: Path) -> None:
    cwd = setup(tmp_path, params=with_params(tokenizer={"vocab_size": 40}, preprocess={"max_src_len": 1}))
    for stage in ("prepare", "tokenizer"):
        assert run(cwd, stage).returncode == 0
    fails_cleanly(cwd, "preprocess", "preprocess: every train pair was dropped", "preprocess.max_src_len")


# ---------------------------------------------------------------- prepare: kept or dropped, and counted


def test_messy_corpus_is_cleaned_and_every_drop_counted(tmp_path: Path) -> None:
    megabyte = "x" * 1_000_000
    src = ["\ufeffein Hund\r", "zwei\tKatzen\x07", "ein Hund", "", megabyte, "a b c d e f g h", "drei Vögel"]
    tgt = ["a dog\r", "two cats", "a dog", "nothing", "big", "one", "three birds"]
    params = with_params(prepare={"clean": {"max_ratio": 4.0}})
    cwd = setup(tmp_path, params=params, train_src="\n".join(src) + "\n", train_tgt="\n".join(tgt) + "\n")
    proc = run(cwd, "prepare")
    assert proc.returncode == 0, proc.stderr
    assert (cwd / "data/corpus/train.src").read_text(encoding="utf-8") == "ein Hund\nzwei Katzen\ndrei Vögel\n"
    assert (cwd / "data/corpus/train.tgt").read_text(encoding="utf-8") == "a dog\ntwo cats\nthree birds\n"
    stats = json.loads((cwd / "reports/prepare.json").read_text())
    assert stats["train"] == {"input": 7, "kept": 3, "normalized": 2,
                              "dropped": {"empty": 1, "too_long": 1, "ratio": 1, "duplicate": 1}}
    assert stats["test"]["kept"] == 1
    assert "prepare: train: kept 3 of 7 pairs (normalised 2; dropped 1 empty, 1 too_long, 1 ratio, 1 duplicate)" in proc.stdout


def test_short_table_row_is_counted_as_empty(tmp_path: Path) -> None:
    table = {"train": "data/raw/t.tsv", "valid": "data/raw/t.tsv", "test": "data/raw/t.tsv"}
    cwd = setup(tmp_path, params=with_params(prepare={"source": "table", "table": table}),
                t_tsv="src\ttgt\nein Hund\ta dog\nzwei Katzen\n")
    proc = run(cwd, "prepare")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((cwd / "reports/prepare.json").read_text())
    assert stats["train"]["dropped"]["empty"] == 1
    assert stats["test"] == {"input": 2, "kept": 2, "normalized": 0, "dropped": stats["test"]["dropped"]}
    assert (cwd / "data/corpus/test.src").read_text(encoding="utf-8") == "ein Hund\nzwei Katzen\n"
