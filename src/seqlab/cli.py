"""The ``seqlab`` command: use what the pipeline made (translate, info, score)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from seqlab.config import DecodeConfig, EvaluateConfig
from seqlab.errors import ConfigError, SeqlabError

DEFAULTS = DecodeConfig()


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SeqlabError into a click error: one line on stderr, exit 1, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SeqlabError as err:
            raise click.ClickException(str(err)) from None

    return wrapper


@click.group()
@click.version_option(package_name="seqlab")
def main() -> None:
    """seqlab: attention seq2seq models trained by a DVC pipeline.

    Run the pipeline with `dvc repro`; use its checkpoint with these commands.
    """


@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint written by the train stage (e.g. models/model.pt).")
@click.option("--input", "input_file", type=click.File("r", encoding="utf-8"), default="-", show_default="stdin",
              help="Sentences to translate, one per line.")
@click.option("--output", "output_file", type=click.File("w", encoding="utf-8", atomic=True), default="-",
              show_default="stdout", help="Where translations go, one line per input line.")
@click.option("--beam-size", type=click.IntRange(min=1), default=DEFAULTS.beam_size, show_default=True,
              help="Beam width; 1 is greedy search.")
@click.option("--n-best", type=click.IntRange(min=1), default=DEFAULTS.n_best, show_default=True,
              help="Hypotheses per sentence; above 1 prints index<TAB>score<TAB>text.")
@click.option("--length-penalty", type=click.FloatRange(min=0), default=DEFAULTS.length_penalty, show_default=True,
              help="GNMT length penalty alpha.")
@click.option("--max-length-ratio", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.max_length_ratio,
              show_default=True, help="Longest output as a multiple of the source length in pieces.")
@click.option("--max-length", type=click.IntRange(min=1), default=DEFAULTS.max_length, show_default=True,
              help="Longest output in pieces.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True,
              help="Sentences searched together.")
@click.option("--max-src-len", type=click.IntRange(min=0), default=0, show_default=True,
              help="Truncate longer sources to this many pieces (0: never).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=DEFAULTS.device, show_default=True,
              help="Where to run: auto is CUDA when present.")
@user_errors
def translate(model_path: Path, input_file: Any, output_file: Any, beam_size: int, n_best: int,
              length_penalty: float, max_length_ratio: float, max_length: int, batch_size: int,
              max_src_len: int, device: str) -> None:
    """Translate sentences with a trained checkpoint, keeping their order."""
    from seqlab.checkpoint import load_checkpoint
    from seqlab.runtime import pick_device
    from seqlab.translate import translate as run_translate

    try:
        config = DecodeConfig(beam_size=beam_size, n_best=n_best, length_penalty=length_penalty,
                              max_length_ratio=max_length_ratio, max_length=max_length, batch_size=batch_size,
                              device=device)
    except ConfigError as err:
        raise click.UsageError(str(err).replace("decode.", "--").replace("_", "-")) from None
    torch_device = pick_device(device)
    loaded = load_checkpoint(model_path, device=torch_device)
    lines = [line.rstrip("\r\n") for line in input_file]
    results = run_translate(lines, model=loaded.model, tokenizer=loaded.tokenizer, config=config,
                            device=torch_device, max_src_len=max_src_len)
    for number, result in enumerate(results, start=1):
        if result.truncated:
            click.echo(f"warning: line {number}: source truncated to {max_src_len} pieces", err=True)
        if n_best == 1:
            output_file.write(result.texts[0] + "\n")
            continue
        for hyp, text in zip(result.hypotheses, result.texts):
            output_file.write(f"{number - 1}\t{hyp.score:.4f}\t{text}\n")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_errors
def info(path: Path) -> None:
    """Show what a checkpoint holds: model config, parameters, vocabulary, training data."""
    from seqlab.checkpoint import load_checkpoint
    from seqlab.model import count_parameters

    loaded = load_checkpoint(path)
    config = loaded.model.config
    tok = loaded.tokenizer
    click.echo(f"checkpoint: {path}")
    click.echo(f"parameters: {count_parameters(loaded.model):,}")
    click.echo("model:")
    for name, value in vars(config).items():
        click.echo(f"  {name}: {value}")
    vocab = f"joint, {tok.src_vocab_size} pieces" if tok.joint else f"source {tok.src_vocab_size}, target {tok.tgt_vocab_size} pieces"
    click.echo(f"vocabulary: {vocab}")
    for key, value in loaded.info.items():
        click.echo(f"{key}: {value}")


@main.command()
@click.option("--hyp", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Hypotheses, one per line.")
@click.option("--ref", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="References, line-aligned with --hyp.")
@click.option("--lowercase", is_flag=True, help="Case-insensitive BLEU and chrF.")
@user_errors
def score(hyp: Path, ref: Path, lowercase: bool) -> None:
    """Score a hypothesis file against a reference file (BLEU, chrF, ROUGE)."""
    import json

    from seqlab.data import read_lines
    from seqlab.metrics import score as corpus_score

    hypotheses, references = read_lines(hyp), read_lines(ref)
    if len(hypotheses) != len(references):
        raise click.ClickException(f"{hyp} has {len(hypotheses)} lines but {ref} has {len(references)}")
    scores = corpus_score(hypotheses, references, EvaluateConfig(lowercase=lowercase))
    click.echo(json.dumps(scores.as_metrics(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
