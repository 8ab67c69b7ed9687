"""The ``seqlab`` command: use what the pipeline made (translate, info, score)."""

from __future__ import annotations

import functools
import itertools
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import click

from seqlab.core.config import Config, load_config
from seqlab.core.data_config import PreprocessConfig
from seqlab.core.errors import ConfigError, SeqlabError
from seqlab.core.params import as_dict, build
from seqlab.core.run_config import RNN_ONLY, TRANSFORMER_ONLY, DecodeConfig, EvaluateConfig

DEFAULTS = DecodeConfig()
PROJECT = "seqlab.project"  # the context's meta key for the params file translate took its defaults from


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SeqlabError or an I/O error into a click error: one line on stderr, exit 1, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SeqlabError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:  # a full disk, say: the promise is one line, not a traceback
            where = f"{err.filename}: " if err.filename else ""
            raise click.ClickException(f"{where}{err.strerror or err}") from None

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


@dataclass(frozen=True)
class Project:
    """Where translate's defaults come from: a params file, or (``config`` None) seqlab's built-ins."""

    source: Path | None
    config: Config | None


def find_project(args: list[str]) -> Project:
    """The params file named by ``--params`` in ``args``, else ./params.yaml when there is one, loaded."""
    source = Path("params.yaml") if Path("params.yaml").is_file() else None
    for flag, value in itertools.pairwise(args):
        if flag == "--params":
            source = Path(value)
    source = next((Path(a.split("=", 1)[1]) for a in args if a.startswith("--params=")), source)
    if source is None:
        return Project(None, None)
    try:
        return Project(source, load_config(source))
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


class ProjectDefaults(click.Command):
    """A command whose search options default to the project's ``params.yaml:decode``.

    The params file is read before the options are parsed, so ``--help`` shows the
    defaults that apply and says where they came from; flags still override them.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        project = find_project(args)
        ctx.meta[PROJECT] = project
        if project.config is not None:
            ctx.default_map = {**as_dict(project.config.decode), **(ctx.default_map or {})}
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        source = ctx.meta[PROJECT].source
        where = f"{source}:decode" if source else "seqlab's built-in decode settings (no ./params.yaml here)"
        formatter.write_paragraph()
        formatter.write_text(f"The search defaults shown come from {where}; options given override them.")


def trained_src_len(info: dict[str, Any], project: Project) -> int:
    """The longest source the model was trained on: the checkpoint's record, else the project's setting."""
    if isinstance(info.get("max_src_len"), int):
        return info["max_src_len"]
    return (project.config.preprocess if project.config else PreprocessConfig()).max_src_len


@dataclass(frozen=True)
class Streamed:
    lines: int
    truncated: int  # sources that were cut ...
    first_truncated: int  # ... the first of them as an input line number (from 1); 0 when none


def translate_stream(chunks: Iterator[list[str]], output: TextIO, *, decode: Callable[[list[str]], list[Any]],
                     n_best: int, alignments: bool, bar: Any) -> Streamed:
    """Decode chunk by chunk, writing each chunk's lines as soon as they are ready."""
    from seqlab.search.texts import format_translation

    number, truncated, first = 0, 0, 0
    for chunk in chunks:
        for result in decode([line.removesuffix("\r") for line in chunk]):
            if result.truncated:
                truncated, first = truncated + 1, first or number + 1
            output.write(format_translation(number, result, n_best=n_best, alignments=alignments))
            number += 1
        output.flush()
        bar.update(len(chunk))
    return Streamed(number, truncated, first)


@main.command(cls=ProjectDefaults)
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint written by the train stage (e.g. models/model.pt).")
@click.option("--input", "input_file", type=click.File("rb"), default="-", show_default="stdin",
              help="Sentences to translate, one per line, UTF-8.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              show_default="stdout", help="Where translations go; replaced only when every line is done.")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Params file whose decode section sets the search defaults  [default: ./params.yaml if any]")
@search_options
@click.option("--max-src-len", type=click.IntRange(min=0), default=None, show_default="the model's trained length",
              help="Truncate longer sources to this many pieces, with a counted warning (0: never).")
@click.option("--alignments", is_flag=True, help="Append a TAB and source-target piece alignments to each line.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Lines read, translated and written at a time (streaming).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when reading a file).")
@user_errors
def translate(model_path: Path, input_file: BinaryIO, output_path: Path | None, params_file: Path | None,
              max_src_len: int | None, alignments: bool, seed: int, chunk_size: int, progress: bool | None,
              **search: Any) -> None:
    """Translate sentences with a trained checkpoint, keeping their order.

    Reads stdin (or --input) in chunks, so it streams; empty lines give empty lines.
    """
    import torch
    from tqdm import tqdm

    from seqlab.core.files import open_atomic, sigterm_as_interrupt
    from seqlab.core.text import iter_stream_chunks
    from seqlab.model.checkpoint import load_checkpoint
    from seqlab.model.runtime import limit_kernel_cache, pick_device
    from seqlab.search.texts import bf16_copy, decode_texts

    try:
        config = build(DecodeConfig, search, "decode")
    except ConfigError as err:
        raise click.UsageError(str(err).replace("decode.", "--").replace("_", "-")) from None
    limit_kernel_cache()
    device = pick_device(config.device)
    loaded = load_checkpoint(model_path, device=device)
    model = bf16_copy(loaded.model) if config.cpu_bf16 and device.type == "cpu" else loaded.model  # once, not per chunk
    if max_src_len is None:
        max_src_len = trained_src_len(loaded.info, click.get_current_context().meta[PROJECT])
    generator = torch.Generator(device=device).manual_seed(seed)
    name = getattr(input_file, "name", "<stdin>")  # click's test runner gives a nameless stream
    show = progress if progress is not None else name != "<stdin>"
    output = open_atomic(output_path) if output_path else click.open_file("-", "w", encoding="utf-8")
    with sigterm_as_interrupt(), output as out, tqdm(unit="line", disable=not show, file=sys.stderr,
                                                     mininterval=1.0) as bar:
        done = translate_stream(
            iter_stream_chunks(input_file, name=name, chunk_size=chunk_size), out,
            decode=functools.partial(decode_texts, model=model, tokenizer=loaded.tokenizer, config=config,
                                     device=device, max_src_len=max_src_len, generator=generator),
            n_best=config.n_best, alignments=alignments, bar=bar)
    if done.truncated:
        click.echo(f"warning: {done.truncated} of {done.lines} sources truncated to {max_src_len} pieces "
                   f"(first: line {done.first_truncated}); --max-src-len sets the limit, 0 for none", err=True)


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
    other_arch = TRANSFORMER_ONLY if config.arch == "rnn" else RNN_ONLY  # keys that say nothing of this model
    for name, value in vars(config).items():
        if name not in other_arch:
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
    if not hypotheses:
        raise click.ClickException(f"{hyp} and {ref} are empty: nothing to score")
    scores = corpus_score(hypotheses, references, config)
    click.echo(json.dumps({**scores.as_metrics(), "signature": scores.signatures()}, indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
