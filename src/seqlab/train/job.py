"""One run of the train stage: find the run's scratch, resume or start, train, publish the outputs together.

The stage script reads the inputs and writes the timings; everything between,
including what a rerun of a finished or killed run does, is decided here.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from dvclive import Live

from seqlab.core.config import Config
from seqlab.core.errors import SeqlabError
from seqlab.core.files import remove_leftovers
from seqlab.core.params import as_dict
from seqlab.core.text import ParallelText
from seqlab.tokenizer import Tokenizer
from seqlab.train.batches import EncodedSplit
from seqlab.train.distributed import World, barrier
from seqlab.train.loop import Outputs, TrainResult, global_batch_tokens, train
from seqlab.train.scratch import RunDir, check_writable, no_space_message, prune, publish, run_dir
from seqlab.train.state import ResumeCheck, load_state, run_fingerprint, trim_live_log


@dataclass(frozen=True)
class TrainInputs:
    """What the stage trains on: encoded splits, the raw valid text the metric decodes, the tokenizer,
    and the train split's subword samples (none without subword regularization)."""

    train: EncodedSplit
    valid: EncodedSplit
    valid_text: ParallelText
    tokenizer: Tokenizer
    samples: Sequence[EncodedSplit] = ()


@dataclass(frozen=True)
class JobResult:
    summary: str  # one line for the log
    result: TrainResult | None  # None when a finished run only wrote its outputs again


def run_job(inputs: TrainInputs, config: Config, *, device: torch.device, world: World = World()) -> JobResult:
    """Train (or resume, or only republish) the run that ``config`` and ``inputs`` fingerprint.
    Under torchrun every process runs it; rank 0 alone touches the files."""
    paths = config.paths
    # The resolved number of processes, not nproc_per_node (auto): it shares out each batch.
    settings = {"seed": config.seed, "model": as_dict(config.model), "train": config.train.results_keys(),
                "tokenize": config.evaluate.tokenize, "world_size": world.size,
                "init_from": _file_digest(config.train.init_from)}  # its weights, not only its path
    sampled = (side for sample in inputs.samples for side in (sample.src, sample.tgt))
    run_id = run_fingerprint(settings, train=[inputs.train.src, inputs.train.tgt, *sampled],
                             valid=[inputs.valid.src, inputs.valid.tgt],
                             valid_text=inputs.valid_text.src + inputs.valid_text.tgt,
                             tokenizers=[inputs.tokenizer.src_model, inputs.tokenizer.tgt_model])
    scratch = run_dir(paths.train_scratch, run_id)
    if world.leader:
        check_writable(paths.model, f"{paths.train_log}/metrics.json", scratch.state)
        prune(paths.train_scratch, keep=scratch)
        for path in (scratch.state, scratch.model):
            remove_leftovers(path)  # of a run killed while saving
    barrier(world)
    check = load_state(scratch.state, fingerprint=run_id, world_size=world.size)
    if world.leader:
        print(check.note, flush=True)
    with no_space_message(scratch.root):
        if check.finished and scratch.model.is_file():
            best = check.saved.progress  # nothing to train: its outputs are written again
            job = JobResult(f"best valid {config.train.valid_metric} {best.best_metric:.4f} at step "
                            f"{best.best_step}", None)
        else:
            result = _fit(inputs, config, scratch, check, settings=settings, run_id=run_id, device=device,
                          world=world)
            job = JobResult(_summary(result, metric=config.train.valid_metric), result)
        if world.leader:
            publish(scratch, model=paths.model, log=paths.train_log)
    barrier(world)
    return job


def _fit(inputs: TrainInputs, config: Config, scratch: RunDir, check: ResumeCheck, *, settings: dict,
         run_id: str, device: torch.device, world: World) -> TrainResult:
    resume = None if check.finished else check.saved
    effective = global_batch_tokens(config.train, world)
    info = {"corpus": as_dict(config.prepare), "tokenizer": as_dict(config.tokenizer),
            "train": settings["train"], "train_pairs": len(inputs.train.src), "seed": config.seed,
            "processes": world.size, "effective_batch_tokens": effective,
            "max_src_len": config.preprocess.max_src_len}  # seqlab translate truncates longer sources to it
    logging = Live(str(scratch.log), dvcyaml=False, save_dvc_exp=False, resume=resume is not None) \
        if world.leader else contextlib.nullcontext(None)
    with logging as live:
        if live is not None:
            if resume is not None:
                trim_live_log(scratch.log, last_step=resume.progress.valid_step)
            live.log_params({"processes": world.size, "effective_batch_tokens": effective})
        result = train(inputs.train, inputs.valid, inputs.valid_text, samples=inputs.samples,
                       model_config=config.model, config=config.train, tokenizer=inputs.tokenizer,
                       seed=config.seed, device=device, info=info, resume=resume, live=live,
                       outputs=Outputs(scratch.model, scratch.state, run_id),
                       tokenize=config.evaluate.tokenize, world=world)
        if live is not None:  # the saved model's: the average's when it replaced the best
            live.summary.update({"best_step": result.best_step,
                                 f"best_{config.train.valid_metric}": result.best_metric})
    return result


def _summary(result: TrainResult, *, metric: str) -> str:
    return (f"best valid {metric} {result.best_metric:.4f} at step {result.best_step} of {result.steps}"
            f"{' (stopped early)' if result.stopped_early else ''}{' (averaged)' if result.averaged else ''} "
            f"in {result.wall_seconds:.0f}s, {result.tokens_per_sec:,.0f} tokens/s")


def _file_digest(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as err:
        raise SeqlabError(f"train.init_from: cannot read {path}: {err.strerror or err}") from None
