"""dvc.yaml stays honest: each stage's deps are exactly the seqlab modules its script imports.

Stage scripts import the library, so DVC only reruns a stage when a module it
uses changes if that module is listed; listing more makes unrelated edits
retrain. The imports are followed transitively through the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "seqlab"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def seqlab_imports(path: Path) -> set[str]:
    """Names of seqlab modules imported anywhere in ``path`` (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqlab."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "seqlab":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("seqlab."))
    return names


def closure(script: Path) -> set[str]:
    seen: set[str] = set()
    todo = list(seqlab_imports(script))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(seqlab_imports(PACKAGE / f"{name}.py"))
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_the_modules_its_script_imports(stage: str) -> None:
    spec = STAGES[stage]
    script = ROOT / "stages" / f"{stage}.py"
    assert spec["cmd"] == f"python stages/{stage}.py"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]]
    assert f"stages/{stage}.py" in deps
    listed = {Path(d).stem for d in deps if d.startswith("src/seqlab/")}
    needed = closure(script)
    assert needed - listed == set(), f"{stage}: add to deps: {sorted(needed - listed)}"
    assert listed - needed == set(), f"{stage}: deps it does not import: {sorted(listed - needed)}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_has_its_params_section(stage: str) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert stage in params
    assert stage in STAGES[stage]["params"] or any(
        isinstance(p, str) and p.startswith(f"{stage}.") for p in STAGES[stage]["params"]
    )


def test_package_init_imports_nothing() -> None:
    # __init__ is not listed as a dep of any stage, which is only safe while it holds no code.
    assert seqlab_imports(PACKAGE / "__init__.py") == set()
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert all(isinstance(n, (ast.Expr, ast.Assign)) for n in tree.body)
