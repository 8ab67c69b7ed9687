"""Headline decode settings: ROUGE and output defects of decode variants on one split.

    python bench/headlines.py --model models/model.pt -S corpus=gigaword \\
        --split valid --variant base: --variant word-safe:word_safe_copy=true ...

Each ``--variant NAME:key=value,key=value`` decodes the split with the decode section
of the params that conf/ composes with the ``-S`` overrides, plus those keys, and is scored with ROUGE-1/2/L (rouge-score,
stemmed F-measure) and the evaluate stage's defect figures: outputs with
sentencepiece's unknown glyph, the share with an invented word (in neither the
source nor the training targets) and with an immediately repeated n-gram.
Writes bench/results/<name>.json and .md. Tune on the valid split only.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import click
import torch
import yaml
from pipeline import compose_params
from report import write_results

from seqlab.core.params import build
from seqlab.core.run_config import DecodeConfig, EvaluateConfig
from seqlab.core.text import iter_lines, read_lines
from seqlab.evaluate.defects import count_defects, known_words
from seqlab.evaluate.metrics import score
from seqlab.model.checkpoint import load_checkpoint
from seqlab.search.texts import decode_texts

ROOT = Path(__file__).resolve().parents[1]

ROUGE = EvaluateConfig(metrics=(), rouge_types=("rouge1", "rouge2", "rougeL"), bootstrap_resamples=0)


def variant_config(base: DecodeConfig, spec: str) -> tuple[str, DecodeConfig]:
    """``name:key=value,...`` -> (name, base with those keys; values read as YAML)."""
    name, _, settings = spec.partition(":")
    changes = dict(item.split("=", 1) for item in settings.split(",") if item)
    return name, replace(base, **{k: yaml.safe_load(v) for k, v in changes.items()})


@click.command()
@click.option("--model", "model_path", default="models/model.pt", show_default=True, type=click.Path(exists=True))
@click.option("-S", "--set", "overrides", multiple=True, default=("corpus=gigaword",), show_default=True,
              help="Hydra overrides composing the params whose decode section is every variant's base.")
@click.option("--corpus", default="data/corpus", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="valid", show_default=True, help="Split to decode: <corpus>/<split>.src and .tgt.")
@click.option("--variant", "variants", multiple=True, required=True, help="NAME:key=value,... decode keys to change.")
@click.option("--limit", default=0, show_default=True, help="Only the first this many sentences (0: all).")
@click.option("--name", default="gigaword-headlines", show_default=True, help="Label of the results files.")
def main(model_path: str, overrides: tuple[str, ...], corpus: str, split: str, variants: tuple[str, ...], limit: int,
         name: str) -> None:
    torch.set_num_threads(1)
    params = compose_params(ROOT, overrides)
    base = build(DecodeConfig, params["decode"], "decode")
    max_src_len = params["preprocess"]["max_src_len"]
    sources = read_lines(Path(corpus) / f"{split}.src")
    references = read_lines(Path(corpus) / f"{split}.tgt")
    if limit:
        sources, references = sources[:limit], references[:limit]
    known = known_words(iter_lines(Path(corpus) / "train.tgt"))
    loaded = load_checkpoint(model_path)
    result: dict[str, object] = {"split": f"{split} ({len(sources):,} sentences)", "checkpoint": str(model_path),
                                 "checkpoint step": loaded.info.get("step")}
    for spec in variants:
        label, config = variant_config(base, spec)
        start = time.perf_counter()
        outputs = decode_texts(sources, model=loaded.model, tokenizer=loaded.tokenizer, config=config,
                               device=torch.device("cpu"), max_src_len=max_src_len)
        hypotheses = [r.texts[0] for r in outputs]
        rouge = score(hypotheses, references, ROUGE).rouge
        defects = count_defects(hypotheses, sources, known).as_metrics()
        result[f"{label} ({spec.partition(':')[2] or 'preset'})"] = (
            f"ROUGE-1/2/L {rouge['rouge1']:.1f} / {rouge['rouge2']:.1f} / {rouge['rougeL']:.1f}; "
            f"glyph outputs {defects['unk_glyph_outputs']}; invented {defects['invented_word_pct']:.1f}%; "
            f"repeat {defects['repeat_pct']:.1f}%; {time.perf_counter() - start:.0f} s"
        )
        print(label, result[f"{label} ({spec.partition(':')[2] or 'preset'})"], flush=True)
    reference_defects = count_defects(references, sources, known).as_metrics()
    result["references themselves"] = (f"invented {reference_defects['invented_word_pct']:.1f}%; "
                                       f"repeat {reference_defects['repeat_pct']:.1f}%")
    write_results(name, f"Gigaword headline decode variants ({split} split)", result,
                  options={"model": model_path, "overrides": list(overrides), "corpus": corpus, "split": split,
                           "variants": variants, "limit": limit})


if __name__ == "__main__":
    main()
