"""evaluate: score the test hypotheses (BLEU, chrF, ROUGE) into the metrics JSON."""

import json
from pathlib import Path

from seqlab.atomic import write_text
from seqlab.config import load_config
from seqlab.data import read_lines
from seqlab.errors import run_stage
from seqlab.metrics import score


def main() -> None:
    config = load_config()
    hypotheses = read_lines(config.paths.hypotheses)
    references = read_lines(Path(config.paths.corpus) / "test.tgt")
    scores = score(hypotheses, references, config.evaluate)
    write_text(config.paths.metrics, json.dumps(scores.as_metrics(), indent=2) + "\n")
    rouge = "  ".join(f"{name} {value:.2f}" for name, value in scores.rouge.items())
    print(f"evaluate: BLEU {scores.bleu:.2f}  chrF {scores.chrf:.2f}  {rouge}")
    print(f"  {scores.bleu_signature}")


if __name__ == "__main__":
    run_stage(main)
