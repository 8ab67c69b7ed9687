"""The ``seqlab`` command: use what the pipeline made (translate, info, score)."""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from seqlab.core.errors import ConfigError, SeqlabError
from seqlab.core.run_config import DecodeConfig, EvaluateConfig

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


SEARCH_OPTIONS = [
    # (DecodeConfig field, click type, help); defaults come from DecodeConfig itself.
    ("strategy", click.Choice(["beam", "sample"]), "Beam search (beam size 1 is greedy) or sampling."),
    ("beam_size", click.IntRange(min=1), "Beam width; 1 is greedy search."),
    ("n_best", click.IntRange(min=1), "Hypotheses (or samples) per sentence; above 1 prints index<TAB>score<TAB>text."),
    ("length_penalty", click.FloatRange(min=0), "GNMT length penalty alpha."),
    ("coverage_penalty", click.FloatRange(min=0), "GNMT coverage penalty beta."),
    ("min_length", click.IntRange(min=0), "No EOS before this many pieces."),
    ("min_length_ratio", click.FloatRange(min=0), "No EOS before this multiple of the source length."),
    ("max_length_ratio", click.FloatRange(min=0, min_open=True), "Longest output as a multiple of the source length."),
    ("max_length", click.IntRange(min=1), "Longest output in pieces."),
    ("no_repeat_ngram", click.IntRange(min=0), "Never repeat an n-gram of this size (0: off)."),
    ("no_adjacent_repeat", click.IntRange(min=0), "Never let an n-gram of up to this many pieces follow itself (0: off)."),
    ("word_safe_copy", click.BOOL, "An output word is one piece or a whole source word (no pieces glued across words)."),
    ("unk_spelling", click.STRING, "How an unknown word is written (default: as the training corpus spells it)."),
    ("top_k", click.IntRange(min=0), "Sampling: keep the k most probable tokens (0: all)."),
    ("top_p", click.FloatRange(min=0, max=1, min_open=True), "Sampling: nucleus probability mass."),
    ("temperature", click.FloatRange(min=0, min_open=True), "Sampling temperature."),
    ("batch_size", click.IntRange(min=1), "Sentences searched together."),
    ("batch_tokens", click.IntRange(min=0), "At most this many source pieces x beam per batch (0: no limit)."),
    ("device", click.Choice(["auto", "cpu", "cuda"]), "Where to run: auto is CUDA when present."),
    ("cpu_bf16", click.BOOL, "On CPU, search with a bf16 copy of the model (faster; outputs may differ slightly)."),
]


def search_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per DecodeConfig field, so `seqlab translate` and `params.yaml:decode` never drift."""
    for name, kind, help_text in reversed(SEARCH_OPTIONS):
        flag = "--" + name.replace("_", "-")
        if kind is click.BOOL:
            flag = f"{flag}/--no-{flag[2:]}"
        command = click.option(flag, name, type=kind, default=getattr(DEFAULTS, name), show_default=True,
                               help=help_text)(command)
    return command


def alignment(hyp: Any) -> str:
    """Hard alignment 'source-target' piece pairs: each output piece to its most attended source piece."""
    if not hyp.tokens:
        return ""
    best = hyp.attention[: len(hyp.tokens)].argmax(dim=-1).tolist()
    return " ".join(f"{s}-{t}" for t, s in enumerate(best))


def format_result(number: int, result: Any, *, n_best: int, alignments: bool) -> str:
    """Output lines for one input line: the text, or index<TAB>score<TAB>text rows for n-best."""
    rows = []
    hyps = result.hypotheses or [None] * len(result.texts)
    for hyp, text in zip(hyps, result.texts):
        fields = [text] if n_best == 1 else [str(number), f"{hyp.score:.4f}" if hyp else "0.0000", text]
        if alignments:
            fields.append(alignment(hyp) if hyp else "")
        rows.append("\t".join(fields) + "\n")
    return "".join(rows)


def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint written by the train stage (e.g. models/model.pt).")
@click.option("--input", "input_file", type=click.File("r", encoding="utf-8"), default="-", show_default="stdin",
              help="Sentences to translate, one per line.")
@click.option("--output", "output_file", type=click.File("w", encoding="utf-8", atomic=True), default="-",
              show_default="stdout", help="Where translations go, one line per input line.")
@search_options
@click.option("--max-src-len", type=click.IntRange(min=0), default=0, show_default=True,
              help="Truncate longer sources to this many pieces, with a warning (0: never).")
@click.option("--alignments", is_flag=True, help="Append a TAB and source-target piece alignments to each line.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Lines read, translated and written at a time (streaming).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when reading a file).")
@user_errors
def translate(model_path: Path, input_file: Any, output_file: Any, max_src_len: int, alignments: bool, seed: int,
              chunk_size: int, progress: bool | None, **search: Any) -> None:
    """Translate sentences with a trained checkpoint, keeping their order.

    Reads stdin (or --input) in chunks, so it streams; empty lines give empty lines.
    """
    import torch
    from tqdm import tqdm

    from seqlab.model.checkpoint import load_checkpoint
    from seqlab.model.runtime import limit_kernel_cache, pick_device
    from seqlab.search.texts import bf16_copy
    from seqlab.search.texts import translate as run_translate

    try:
        config = DecodeConfig(**search)
    except ConfigError as err:
        raise click.UsageError(str(err).replace("decode.", "--").replace("_", "-")) from None
    limit_kernel_cache()
    device = pick_device(config.device)
    loaded = load_checkpoint(model_path, device=device)
    model = bf16_copy(loaded.model) if config.cpu_bf16 and device.type == "cpu" else loaded.model  # once, not per chunk
    generator = torch.Generator(device=device).manual_seed(seed)
    show = progress if progress is not None else input_file.name != "<stdin>"
    bar = tqdm(unit="line", disable=not show, file=sys.stderr, mininterval=1.0)
    number = 0
    for chunk in chunks(input_file, chunk_size):
        results = run_translate(chunk, model=model, tokenizer=loaded.tokenizer, config=config, device=device,
                                max_src_len=max_src_len, generator=generator)
        for result in results:
            if result.truncated:
                click.echo(f"warning: line {number + 1}: source truncated to {max_src_len} pieces", err=True)
            output_file.write(format_result(number, result, n_best=config.n_best, alignments=alignments))
            number += 1
        output_file.flush()
        bar.update(len(chunk))
    bar.close()


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_errors
def info(path: Path) -> None:
    """Show what a checkpoint holds: model config, parameters, vocabulary, training data."""
    from seqlab.model.checkpoint import load_checkpoint
    from seqlab.model.seq2seq import count_parameters

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


EVALUATE = EvaluateConfig()


def _names(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """A comma-separated list, as in params.yaml's lists; '' is the empty list."""
    return tuple(name.strip() for name in value.split(",") if name.strip())


@main.command()
@click.option("--hyp", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Hypotheses, one per line.")
@click.option("--ref", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="References, line-aligned with --hyp.")
@click.option("--metrics", default=",".join(EVALUATE.metrics), show_default=True, callback=_names,
              help="sacrebleu metrics, comma-separated: bleu, chrf, ter ('' for none).")
@click.option("--rouge-types", default=",".join(EVALUATE.rouge_types), show_default=True, callback=_names,
              help="rouge-score types, comma-separated: rouge1-4, rougeL, rougeLsum ('' for none).")
@click.option("--lowercase", is_flag=True, help="Case-insensitive BLEU, chrF and TER.")
@click.option("--tokenize", type=click.Choice(typing.get_args(typing.get_type_hints(EvaluateConfig)["tokenize"])),
              default=EVALUATE.tokenize, show_default=True, help="sacrebleu's BLEU tokenizer.")
@click.option("--bootstrap-resamples", type=click.IntRange(min=0), default=EVALUATE.bootstrap_resamples,
              show_default=True, help="Resamples for the 95% intervals (ci95); 0 turns them off.")
@click.option("--bootstrap-seed", type=int, default=EVALUATE.bootstrap_seed, show_default=True,
              help="Seed of the resampling.")
@user_errors
def score(hyp: Path, ref: Path, metrics: tuple[str, ...], rouge_types: tuple[str, ...], lowercase: bool,
          tokenize: str, bootstrap_resamples: int, bootstrap_seed: int) -> None:
    """Score a hypothesis file against a reference file, as the evaluate stage does.

    Prints JSON: the scores (0-100), their 95% interval half-widths (ci95) and
    the signatures that say how each was computed.
    """
    import json

    from seqlab.core.params import build
    from seqlab.core.text import read_lines
    from seqlab.evaluate.metrics import score as corpus_score

    raw = {"metrics": list(metrics), "rouge_types": list(rouge_types), "lowercase": lowercase, "tokenize": tokenize,
           "bootstrap_resamples": bootstrap_resamples, "bootstrap_seed": bootstrap_seed}
    try:
        config = build(EvaluateConfig, raw, "evaluate")
    except ConfigError as err:
        raise click.UsageError(str(err).replace("evaluate.", "--").replace("_", "-")) from None
    hypotheses, references = read_lines(hyp), read_lines(ref)
    if len(hypotheses) != len(references):
        raise click.ClickException(f"{hyp} has {len(hypotheses)} lines but {ref} has {len(references)}")
    scores = corpus_score(hypotheses, references, config)
    click.echo(json.dumps({**scores.as_metrics(), "signature": scores.signatures()}, indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
