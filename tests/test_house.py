"""The house stays readable: small modules, short functions, thin stage scripts.

The style guide's sizes (modules under about 300 lines, functions under about
60, stage scripts about 40) are easy to drift past one commit at a time; this
test names the file and function that did, so review starts from a list rather
than from a hunch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES = 300
FUNCTION_LINES = 60
STAGE_LINES = 60  # "about 40": the longest stage script wires more outputs than the rest
LIBRARY = sorted((ROOT / "src" / "seqlab").rglob("*.py"))
STAGES = sorted((ROOT / "stages").glob("*.py"))
BENCHES = sorted((ROOT / "bench").glob("*.py"))


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path.name}:{node.lineno} {node.name}() is {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_the_tree_is_found():
    assert len(LIBRARY) > 20 and len(STAGES) >= 6 and BENCHES


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT / "src")))
def test_library_modules_stay_small(path):
    assert line_count(path) <= MODULE_LINES, f"{path.relative_to(ROOT)} has {line_count(path)} lines"


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.name)
def test_stage_scripts_stay_thin(path):
    assert line_count(path) <= STAGE_LINES, f"{path.relative_to(ROOT)} has {line_count(path)} lines"


@pytest.mark.parametrize("path", LIBRARY + STAGES + BENCHES, ids=lambda p: str(p.relative_to(ROOT)))
def test_functions_stay_short(path):
    assert long_functions(path) == []


def test_the_checks_can_fail(tmp_path):
    path = tmp_path / "probe.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES))
    path.write_text(f"def too_long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(path) == [f"probe.py:1 too_long() is {FUNCTION_LINES + 1} lines"]
    assert line_count(path) == FUNCTION_LINES + 5
