"""End-to-end with real dvc: the data stages on a user's own corpus (a table in data/raw, and
parallel files outside the repository selected by a params file copied over params.yaml)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from dvc_repo import TINY, Repo, make_repo, merge

WORDS = ["ein", "zwei", "drei", "vier", "fünf", "Hund", "Katze", "Vogel", "Fisch", "groß", "klein", "rot"]
ENGLISH = ["one", "two", "three", "four", "five", "dog", "cat", "bird", "fish", "big", "small", "red"]


def sentences(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct pairs: the words of each are the base-12 digits of its number."""
    out = []
    for i in range(offset + len(WORDS) + 1, offset + len(WORDS) + 1 + n):
        picks = []
        while i:
            i, digit = divmod(i, len(WORDS))
            picks.append(digit)
        out.append((" ".join(WORDS[j] for j in picks), " ".join(ENGLISH[j] for j in picks)))
    return out


def tsv(pairs: list[tuple[str, str]]) -> str:
    return "de\ten\n" + "".join(f"{de}\t{en}\n" for de, en in pairs)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    table = {"train": "data/raw/train.tsv", "valid": "data/raw/valid.tsv", "test": "data/raw/test.tsv",
             "src_column": "de", "tgt_column": "en"}
    repo = make_repo(tmp_path_factory.mktemp("data"),
                     overrides=merge(TINY, {"prepare": {"source": "table", "table": table},
                                            "tokenizer": {"vocab_size": 40}}))
    train = sentences(200)
    raw = repo.path / "data/raw"
    (raw / "train.tsv").write_text(tsv(train + train[:5] + [("", "empty"), ("\ufeffrot  ", "red\r")]), encoding="utf-8")
    (raw / "valid.tsv").write_text(tsv(sentences(20, 1000)), encoding="utf-8")
    (raw / "test.tsv").write_text(tsv(sentences(10, 2000)), encoding="utf-8")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "corpus")
    repo.dvc("repro", "preprocess")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "prepared")
    return repo


def test_table_corpus_is_prepared_and_counted(repo: Repo) -> None:
    stats = json.loads((repo.path / "reports/prepare.json").read_text())
    # 200 pairs, their 5 first again, an empty one and a messy one, whose normalised text is kept.
    assert stats["train"]["input"] == 207
    assert stats["train"]["dropped"] == {"empty": 1, "too_long": 0, "ratio": 0, "duplicate": 5}
    assert stats["train"]["normalized"] == 1
    assert stats["train"]["kept"] == 201
    assert (repo.path / "data/corpus/train.src").read_text(encoding="utf-8").splitlines()[-1] == "rot"
    assert json.loads((repo.path / "reports/preprocess.json").read_text())["train"]["input"] == 201
    assert (repo.path / "data/encoded/train-00000.parquet").is_file()
    assert "up to date" in repo.dvc("status", "prepare", "tokenizer", "preprocess").stdout


def test_changing_the_raw_corpus_reruns_prepare(repo: Repo) -> None:
    with open(repo.path / "data/raw/valid.tsv", "a", encoding="utf-8") as handle:
        handle.write("sechs\tsix\n")
    try:
        assert "changed deps" in repo.dvc("status", "prepare").stdout
        out = repo.dvc("repro", "prepare").stdout
        assert "Running stage 'prepare'" in out
        assert json.loads((repo.path / "reports/prepare.json").read_text())["valid"]["input"] == 21
    finally:
        repo.git("checkout", "data/raw/valid.tsv")
        repo.dvc("repro", "prepare")


def test_a_params_file_over_params_yaml_selects_an_outside_corpus(repo: Repo) -> None:
    """The README's mechanism for configs/*.yaml: copy it over params.yaml, then ``dvc exp run``."""
    outside = repo.path.parent / "corpus"
    outside.mkdir(exist_ok=True)
    for split, pairs in (("train", sentences(150, 3000)), ("valid", sentences(15, 4000)), ("test", sentences(8, 5000))):
        (outside / f"{split}.de").write_text("".join(f"{de}\n" for de, _ in pairs), encoding="utf-8")
        (outside / f"{split}.en").write_text("".join(f"{en}\n" for _, en in pairs), encoding="utf-8")
    params = repo.params()
    files = {f"{split}_{side}": f"../corpus/{split}.{lang}" for split in ("train", "valid", "test")
             for side, lang in (("src", "de"), ("tgt", "en"))}
    params["paths"]["raw"] = "../corpus"
    params["prepare"].update(source="files", files=files)
    config = repo.path / "configs" / "outside.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(config, repo.path / "params.yaml")
    try:
        out = repo.dvc("exp", "run", "preprocess", "-S", "prepare.clean.max_ratio=2.5").stdout
        assert "Running stage 'prepare'" in out
        stats = json.loads((repo.path / "reports/prepare.json").read_text())
        assert stats["train"]["input"] == 150 and stats["test"]["kept"] == 8
        lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
        assert any(dep["path"] == "../corpus" for dep in lock["stages"]["prepare"]["deps"])
    finally:
        repo.git("checkout", "params.yaml", "dvc.lock")
        shutil.rmtree(config.parent)
