"""dvc.yaml stays honest: each stage's deps are exactly the parts of seqlab its script imports.

Stage scripts import the library, so DVC only reruns a stage when a module it
uses changes if that module is listed; listing more makes unrelated edits
retrain. A dep is a module file (``src/seqlab/tokenizer.py``) or a whole
subpackage folder (``src/seqlab/model``), the latter only when the stage uses
every module in it. Imports are followed transitively through the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "seqlab"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# The pipeline's order, bottom up: a module may import from its own part or from parts listed before it.
LAYERS = ["core", "prepare", "tokenizer", "preprocess", "model", "search", "train", "decode", "evaluate", "cli"]


def module_file(module: str) -> Path:
    path = SRC / (module.replace(".", "/") + ".py")
    return path if path.exists() else SRC / module.replace(".", "/") / "__init__.py"


def seqlab_imports(path: Path) -> set[str]:
    """Full names of the seqlab modules imported anywhere in ``path`` (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqlab."):
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "seqlab":
            names.update(f"seqlab.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("seqlab."))
    return names


def closure(script: Path) -> set[Path]:
    """The files of every seqlab module ``script`` needs, with the __init__ of each package on the way."""
    seen: set[Path] = set()
    todo = [module_file(m) for m in seqlab_imports(script)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(module_file(m) for m in seqlab_imports(path))
        if path.parent != PACKAGE:
            todo.append(path.parent / "__init__.py")
    return seen


def covered(path: Path, dep: Path) -> bool:
    return path == dep or dep in path.parents


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_the_parts_its_script_imports(stage: str) -> None:
    spec = STAGES[stage]
    assert spec["cmd"] == f"python stages/{stage}.py"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]]
    assert f"stages/{stage}.py" in deps
    listed = [ROOT / d for d in deps if d.startswith("src/seqlab/")]
    needed = closure(ROOT / "stages" / f"{stage}.py")
    missing = sorted(str(p.relative_to(SRC)) for p in needed if not any(covered(p, d) for d in listed))
    assert missing == [], f"{stage}: add to deps: {missing}"
    if stage == "params":
        return  # it checks params.yaml with all of core; its output never changes, so extra deps rerun nothing
    for dep in listed:
        inside = set(dep.rglob("*.py")) if dep.is_dir() else {dep}
        unused = sorted(str(p.relative_to(SRC)) for p in inside - needed)
        assert unused == [], f"{stage}: {dep.relative_to(ROOT)} holds modules the stage does not import: {unused}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_has_its_params_section(stage: str) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if stage == "params":  # the exception (dvc.yaml's comment says why): its section is the whole file
        assert STAGES[stage]["params"] == [{"params.yaml": None}]
        assert "${paths.params_ok}" in STAGES["prepare"]["deps"]  # what orders it before every other stage
        return
    assert stage in params
    assert stage in STAGES[stage]["params"] or any(
        isinstance(p, str) and p.startswith(f"{stage}.") for p in STAGES[stage]["params"]
    )


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up_the_pipeline(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    if relative.name in ("__init__.py", "__main__.py") and relative.parent == Path("."):
        return
    own = ".".join(("seqlab", *relative.with_suffix("").parts))
    upward = sorted(m for m in seqlab_imports(path) if layer(m) > layer(own))
    assert upward == [], f"{relative} imports from later in the pipeline: {upward}"


def test_every_package_is_a_pipeline_part() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if not p.name.startswith("__")}
    assert parts == set(LAYERS), sorted(parts ^ set(LAYERS))


def test_package_inits_import_nothing() -> None:
    # An __init__ is hashed with its folder but not followed by the closure above: it must hold no code.
    for init in PACKAGE.rglob("__init__.py"):
        assert seqlab_imports(init) == set(), init
        assert all(isinstance(n, (ast.Expr, ast.Assign)) for n in ast.parse(init.read_text()).body), init


def test_dvcignore_keeps_bytecode_out_of_folder_deps() -> None:
    ignored = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored
