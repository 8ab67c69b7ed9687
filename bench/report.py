"""Write a bench result as JSON plus a short markdown table under bench/results/, with where it came from.

Every result records its provenance (the git commit and whether the tree held
uncommitted changes, the command line, and the options it ran with), so a
figure in the README can be traced to the code and settings that produced it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def provenance(options: Mapping[str, Any], *, repo: Path = ROOT) -> dict[str, Any]:
    """The commit of ``repo`` (None outside git), ``dirty`` when tracked or new files differ from it
    (results under bench/results aside), the command line as typed, and ``options``, the bench's
    parsed options with their defaults filled in (click's ``ctx.params``, argparse's ``vars(args)``)."""
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--", ".", ":(exclude)bench/results")
    return {
        "git_commit": commit.strip() if commit is not None else None,
        "git_dirty": bool(status.strip()) if status is not None else None,
        "command": shlex.join(sys.orig_argv),
        "options": json.loads(json.dumps(dict(options), default=str)),  # tuples become lists, paths strings
    }


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return proc.stdout


def write_json(name: str, result: dict[str, Any], *, options: Mapping[str, Any]) -> dict[str, Any]:
    """bench/results/<name>.json: ``result`` and its ``provenance``; returns what was written."""
    recorded = {**result, "provenance": provenance(options)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(recorded, indent=2) + "\n")
    return recorded


def markdown_rows(recorded: Mapping[str, Any]) -> str:
    """``| measure | value |`` rows; the provenance as its commit and command."""
    rows = {key: value for key, value in recorded.items() if key != "provenance"}
    source = recorded["provenance"]
    dirty = " (with uncommitted changes)" if source["git_dirty"] else ""
    rows.update({"git commit": f"{source['git_commit']}{dirty}", "command": f"`{source['command']}`"})
    return "\n".join(f"| {key} | {value} |" for key, value in rows.items())


def write_results(name: str, title: str, result: dict[str, Any], *, options: Mapping[str, Any]) -> None:
    """bench/results/<name>.json (with provenance) and <name>.md (a two-column table headed by ``title``)."""
    recorded = write_json(name, result, options=options)
    (OUT / f"{name}.md").write_text(f"# {title}\n\n| measure | value |\n|---|---|\n{markdown_rows(recorded)}\n")
    print(json.dumps(recorded, indent=2))
