"""bench/report.py: every bench result records the commit, the command line and the options it ran with.

A README figure is only traceable if its JSON says which code and which settings
produced it. These check the record itself, in a real git repository, and that
every bench writes its JSON through the helper (the benches themselves take
minutes, so they are not run here).
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402  (bench scripts import their siblings by name)

BENCHES = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name != "report.py")


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "bench/results").mkdir(parents=True)
    (repo / "bench/decode.py").write_text("print('bench')\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bench")
    return repo


def test_provenance_names_the_commit_the_command_and_the_options(repo: Path) -> None:
    options = {"beam": 5, "overrides": ("max_length_ratio=1.5",), "model_path": Path("models/model.pt"), "ref": None}
    record = report.provenance(options, repo=repo)
    assert record["git_commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert record["git_dirty"] is False
    assert record["command"] == shlex.join(sys.orig_argv)  # the interpreter, the script and every argument
    assert record["options"] == {"beam": 5, "overrides": ["max_length_ratio=1.5"], "model_path": "models/model.pt",
                                 "ref": None}
    json.dumps(record)  # plain JSON


def test_provenance_says_when_the_code_differs_from_the_commit(repo: Path) -> None:
    (repo / "bench/results/decode-x.json").write_text("{}\n")  # a result being written is not a change of code
    assert report.provenance({}, repo=repo)["git_dirty"] is False
    (repo / "bench/decode.py").write_text("print('changed')\n")
    assert report.provenance({}, repo=repo)["git_dirty"] is True
    git(repo, "checkout", "bench/decode.py")
    (repo / "bench/new_helper.py").write_text("x = 1\n")  # an untracked module can change what a bench does
    assert report.provenance({}, repo=repo)["git_dirty"] is True


def test_provenance_outside_git_is_unknown_not_wrong(tmp_path: Path) -> None:
    record = report.provenance({}, repo=tmp_path)
    assert record["git_commit"] is None and record["git_dirty"] is None


def test_write_results_records_provenance_in_the_json_and_the_table(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "OUT", tmp_path)
    report.write_results("decode-test", "Decoding speed, test", {"sentences_per_sec": 12.5},
                         options={"beam": 3, "overrides": ("n_best=2",)})
    recorded = json.loads((tmp_path / "decode-test.json").read_text())
    assert recorded["sentences_per_sec"] == 12.5
    source = recorded["provenance"]
    assert source["git_commit"] == git(ROOT, "rev-parse", "HEAD").strip()
    assert source["options"] == {"beam": 3, "overrides": ["n_best=2"]}
    table = (tmp_path / "decode-test.md").read_text()
    assert f"| git commit | {source['git_commit']}" in table
    assert f"| command | `{source['command']}` |" in table


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)]


@pytest.mark.parametrize("bench", BENCHES, ids=lambda p: p.stem)
def test_every_bench_writes_its_json_through_report_with_its_options(bench: Path) -> None:
    tree = ast.parse(bench.read_text(), filename=str(bench))
    writes = calls(tree, "write_results") + calls(tree, "write_json")
    assert writes, f"{bench.name} writes no result through report.py"
    for call in writes:
        assert "options" in {k.arg for k in call.keywords}, f"{bench.name}:{call.lineno} passes no options"
    for call in calls(tree, "write_text"):  # a JSON written by hand would carry no provenance
        dumped = [arg for arg in call.args if isinstance(arg, (ast.BinOp, ast.Call))]
        assert not any(calls(arg, "dumps") for arg in dumped), f"{bench.name}:{call.lineno} writes JSON itself"
