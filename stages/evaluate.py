"""evaluate: score the test hypotheses into the metrics JSON, the sentence table and the length-bucket plot."""

import csv
import dataclasses
import json
from pathlib import Path

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import atomic_path, write_text
from seqlab.core.text import iter_lines, read_lines
from seqlab.evaluate.defects import count_defects, known_words
from seqlab.evaluate.metrics import SentenceScore, length_buckets, score, sentence_scores


def write_json(path: str, value: object) -> None:
    write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_sentences(path: str, rows: list[SentenceScore]) -> None:
    """Tab-separated, one header line; a text holding a tab or a quote is quoted, CSV-style."""
    names = [f.name for f in dataclasses.fields(SentenceScore)]
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([round(v, 2) if isinstance(v, float) else v for v in dataclasses.astuple(row)])


def main() -> None:
    config = load_config()
    paths, settings = config.paths, config.evaluate
    sources = read_lines(Path(paths.corpus) / "test.src")
    references = read_lines(paths.references)
    hypotheses = read_lines(paths.hypotheses)
    # Everything is computed before anything is written, so misaligned files leave no output behind.
    scores = score(hypotheses, references, settings)
    rows = sentence_scores(sources, hypotheses, references, settings)
    buckets = length_buckets(sources, hypotheses, references, settings)
    defects = count_defects(hypotheses, sources, known_words(iter_lines(Path(paths.corpus) / "train.tgt")))
    write_json(paths.metrics, {**scores.as_metrics(), **defects.as_metrics()})
    write_json(paths.signatures, scores.signatures())
    write_sentences(paths.sentences, rows)
    write_json(paths.length_buckets, [{k: round(v, 4) if isinstance(v, float) else v
                                       for k, v in dataclasses.asdict(b).items()} for b in buckets])
    shown = "  ".join(f"{name} {value:.2f}" + (f" ±{scores.ci95[name]:.2f}" if name in scores.ci95 else "")
                      for name, value in scores.corpus().items())
    print(f"evaluate: {scores.sentences:,} sentences  {shown}")
    print("  outputs with " + ", ".join(f"{name} {value}" for name, value in defects.as_metrics().items()))
    for name, signature in scores.signatures().items():
        print(f"  {name}: {signature}")


if __name__ == "__main__":
    run_stage(main)
