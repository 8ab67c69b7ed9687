"""Write a bench result as JSON plus a short markdown table under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"


def write_results(name: str, title: str, result: dict) -> None:
    """bench/results/<name>.json and <name>.md (a two-column table headed by ``title``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {key} | {value} |" for key, value in result.items())
    (OUT / f"{name}.md").write_text(f"# {title}\n\n| measure | value |\n|---|---|\n{rows}\n")
    print(json.dumps(result, indent=2))
