"""The training loop: updates, validation every N steps, the best checkpoint, resume.

:func:`train` reads top to bottom: build (or restore) the model, optimizer and
counters; each epoch draws its batch order from the data-order generator and
:func:`train_epoch` runs it: set the learning rate of this step, update,
validate when due, save the full training state when due. At the end
:func:`finish` validates once more, averages the last checkpoints if asked,
and marks the state finished.

The counters (:class:`Progress`) are frozen: helpers return new ones and only
the loop takes them, and each decision has one named place: the budget
(:func:`budget_spent`), when to validate (:func:`validation_due`) and save
(:func:`save_due`), what a validation changes (:func:`judged`), and whether the
average replaces the best (:func:`average_into_best`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from seqlab.core.errors import SeqlabError
from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.model.runtime import autocast
from seqlab.model.seq2seq import count_parameters
from seqlab.tokenizer import Tokenizer
from seqlab.train.averaging import StateDict
from seqlab.train.batches import EncodedSplit, bucket_indices, epoch_split, summaries
from seqlab.train.distributed import World, from_leader, gather, total, wrap
from seqlab.train.loss import batch_loss
from seqlab.train.run import (
    Outputs,
    Run,
    Throughput,
    build_network,
    init_weights,
    make_optimizer,
    set_lr,
)
from seqlab.train.schedule import learning_rate, planned_steps
from seqlab.train.shares import StepWork, step_work, target_tokens
from seqlab.train.state import Progress, Saved, capture_rng, restore_rng, save_state
from seqlab.train.validation import worst
from seqlab.train.verdict import average_into_best, validation_round

__all__ = ["Outputs", "TrainResult", "TrainingDiverged", "make_optimizer", "train"]


class TrainingDiverged(SeqlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainResult:
    """best_step and best_metric describe the saved model: the average when it replaced the best."""

    parameters: int
    steps: int
    best_step: int
    best_metric: float  # of train.valid_metric
    resumed_from: int  # the step a resumed run started from; 0 for a fresh one
    stopped_early: bool
    averaged: bool  # the checkpoint is the average of the last train.average_last validations
    wall_seconds: float  # of this process, validation included
    tokens_per_sec: float  # target tokens trained on per second of this process


def budget_spent(progress: Progress, config: TrainConfig) -> bool:
    """max_steps reached, or early stopping's patience used up (the epochs are the loop's own bound)."""
    if config.max_steps and progress.step >= config.max_steps:
        return True
    return stopped_early(progress, config)


def stopped_early(progress: Progress, config: TrainConfig) -> bool:
    return bool(config.patience) and progress.bad_validations >= config.patience


def validation_due(progress: Progress, config: TrainConfig, *, epoch_batches: int) -> bool:
    """Every ``valid_every`` steps, or at the end of each epoch when it is 0."""
    if config.valid_every:
        return progress.step % config.valid_every == 0
    return progress.position == epoch_batches


def save_due(progress: Progress, config: TrainConfig) -> bool:
    """Every ``save_every`` steps; 0 saves only at the end."""
    return bool(config.save_every) and progress.step % config.save_every == 0


def train_step(run: Run, work: StepWork, *, step: int, lr: float) -> float:
    """One update on this process's micro-batches of a global batch; returns the global batch's summed
    objective (every process's). A NaN or inf loss on any process stops every one before the update."""
    set_lr(run.optimizer, lr)
    run.optimizer.zero_grad(set_to_none=True)
    # DDP averages gradients over the processes; times world size, each share's loss over the global
    # batch's tokens sums to the whole batch's mean, however the rows were split.
    scale = run.world.size / work.global_tokens
    summed = torch.zeros((), device=run.device)
    for i, micro in enumerate(work.micro):
        last = i == len(work.micro) - 1
        # No all-reduce on the intermediate micro-steps: gradients accumulate locally until the last.
        quiet = run.net.no_sync() if run.net is not None and not last else contextlib.nullcontext()
        with quiet:
            with autocast(run.device, cpu_bf16=run.config.cpu_bf16):
                loss = batch_loss(run.model, micro.batch, smoothing=run.config.label_smoothing, forward=run.forward)
            (loss * (micro.weight * scale)).backward()
        summed += loss.detach() * micro.weight
    value = float(total(summed, run.world))  # a CPU-GPU sync once per step, for this check and the bar
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"train: loss became {value} at step {step}; stopping. {run.outputs.checkpoint} keeps the last "
            f"good checkpoint (try a lower train.lr or a train.warmup_steps)"
        )
    if run.config.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_norm)
    run.optimizer.step()
    return value


def start(run: Run, resume: Saved | None, *, seed: int) -> tuple[Progress, list[StateDict], torch.Tensor]:
    """Counters, averaging snapshots and the epoch's data-order generator state: fresh or restored."""
    if resume is None:
        progress = Progress(best_metric=worst(run.config.valid_metric))
        if run.world.rank:  # the weights are rank 0's (DDP copies them); dropout differs per process
            torch.manual_seed(seed + run.world.rank)
        return progress, [], torch.Generator().manual_seed(seed).get_state()
    run.model.load_state_dict(resume.model)
    run.optimizer.load_state_dict(resume.optimizer)
    # Last, so that nothing done while rebuilding (model initialisation) shifts the random streams.
    restore_rng(resume.rng[run.world.rank] if isinstance(resume.rng, list) else resume.rng)
    return resume.progress, resume.snapshots, resume.epoch_generator


def train(
    train_data: EncodedSplit,
    valid_data: EncodedSplit,
    valid_text: ParallelText,
    *,
    samples: Sequence[EncodedSplit] = (),
    model_config: ModelConfig,
    config: TrainConfig,
    tokenizer: Tokenizer,
    seed: int,
    device: torch.device,
    outputs: Outputs,
    info: dict[str, Any],
    resume: Saved | None = None,
    live: Any = None,
    tokenize: str = "13a",
    world: World = World(),
) -> TrainResult:
    """Train from scratch, or continue ``resume`` exactly; ``outputs.checkpoint`` keeps the best validation.
    ``samples``: sampled segmentations of ``train_data`` (subword regularization), one per epoch in turn.
    Under torchrun every process calls it with its ``world``; rank 0 alone validates and writes."""
    model = build_network(train_data, samples=samples, model_config=model_config, tokenizer=tokenizer, device=device)
    if config.init_from:
        init_weights(model, config.init_from)
    run = Run(model=model, optimizer=make_optimizer(model, config), config=config, tokenizer=tokenizer, device=device,
              valid_data=valid_data, valid_text=valid_text, outputs=outputs, info=info, live=live, tokenize=tokenize,
              world=world)
    progress, snapshots, epoch_start = start(run, resume, seed=seed)
    run = replace(run, net=wrap(model, world, device) if world.distributed else None)
    resumed_from = progress.step
    cap = global_batch_tokens(config, world)
    lengths = [(s.src_lengths, s.tgt_lengths) for s in summaries(samples)] if samples else [train_data.lengths()]
    total = planned_steps(config, steps_per_epoch=_epoch_steps(lengths, cap=cap, run=run))
    begin, meter, generator = time.perf_counter(), Throughput(), torch.Generator()
    # A with-block, so that an error (or Ctrl-C) closes the bar before the message is printed.
    with tqdm(total=total, initial=progress.step, desc="train", unit="step", mininterval=2.0, leave=False,
              disable=not world.leader) as bar:
        run.model.train()
        while progress.epoch <= config.epochs and not budget_spent(progress, config):
            # Each epoch's order is drawn from the generator as it was when the epoch began, so a
            # run resumed mid-epoch sees exactly the batches of a run that never stopped.
            generator.set_state(epoch_start)
            data = epoch_split(train_data, samples, progress.epoch)
            batches = bucket_indices(*lengths[(progress.epoch - 1) % len(lengths)], batch_tokens=cap,
                                     generator=generator)
            progress, snapshots = train_epoch(run, data, batches, progress, snapshots, total=total,
                                              epoch_start=epoch_start, meter=meter, bar=bar)
            if progress.position == len(batches):
                progress, epoch_start = replace(progress, epoch=progress.epoch + 1, position=0), generator.get_state()
    progress, averaged = finish(run, progress, snapshots, epoch_start, meter=meter)
    seconds = time.perf_counter() - begin
    return TrainResult(
        parameters=count_parameters(run.model), steps=progress.step, best_step=progress.best_step,
        best_metric=progress.best_metric, resumed_from=resumed_from, stopped_early=stopped_early(progress, config),
        averaged=averaged, wall_seconds=seconds, tokens_per_sec=meter.total / max(seconds, 1e-9),
    )


def _epoch_steps(lengths: list[tuple[np.ndarray, np.ndarray]], *, cap: int, run: Run) -> list[int]:
    """The batch count of an epoch over each of ``lengths`` (the split, or each subword sample),
    which depends on the lengths only, not on the shuffle; announced with the model's size."""
    steps = [len(bucket_indices(*pair, batch_tokens=cap, generator=None)) for pair in lengths]
    if run.world.leader:
        each = f"{steps[0]}" if len(set(steps)) == 1 else \
            f"{min(steps)}-{max(steps)} (over {len(steps)} subword samples)"
        config = run.config
        print(f"model: {count_parameters(run.model):,} parameters on {run.device}; {each} steps per epoch; "
              f"effective batch {run.world.size} processes x {config.accumulate} accumulate x {config.batch_tokens} "
              f"batch_tokens = {cap} tokens", flush=True)
    return steps


def global_batch_tokens(config: TrainConfig, world: World) -> int:
    """The padded-token bound of one update's batch: processes x accumulate x batch_tokens."""
    return world.size * config.accumulate * config.batch_tokens


def train_epoch(run: Run, data: EncodedSplit, batches: list[np.ndarray], progress: Progress,
                snapshots: list[StateDict], *, total: int, epoch_start: torch.Tensor, meter: Throughput,
                bar: tqdm) -> tuple[Progress, list[StateDict]]:
    """The rest of this epoch's ``batches`` from ``progress.position``, or until the budget is spent."""
    config, tokens = run.config, target_tokens(data)
    while progress.position < len(batches) and not budget_spent(progress, config):
        lr = learning_rate(progress.step + 1, config=config, total_steps=total, plateau=progress.plateau)
        work = step_work(data, batches[progress.position], tokens, rank=run.world.rank, world=run.world.size,
                         accumulate=config.accumulate, device=run.device)
        loss = train_step(run, work, step=progress.step + 1, lr=lr)
        progress = replace(progress, step=progress.step + 1, position=progress.position + 1,
                           loss_sum=progress.loss_sum + loss, loss_tokens=progress.loss_tokens + work.global_tokens)
        meter.add(work.global_tokens)
        bar.update(1)
        bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_tokens:.3f}", tok_s=f"{meter.rate():,.0f}",
                        refresh=False)
        if validation_due(progress, config, epoch_batches=len(batches)):
            progress, snapshots = validated(run, progress, snapshots, meter=meter, write=bar.write)
        if save_due(progress, config):
            save(run, progress, snapshots, epoch_start)
    return progress, snapshots


def finish(run: Run, progress: Progress, snapshots: list[StateDict], epoch_start: torch.Tensor, *,
           meter: Throughput) -> tuple[Progress, bool]:
    """Validate the last steps if they were not, average if asked, save the state as finished.
    Returns the final counters and whether the checkpoint is now the average."""
    if progress.valid_step != progress.step:
        progress, snapshots = validated(run, progress, snapshots, meter=meter, write=print)
    kept = average_into_best(run, progress, snapshots) if run.world.leader else None
    kept_metric = from_leader(None if kept is None else kept.metric, run.world)
    if kept_metric is not None:  # the saved model is the average: the best is its score at this step
        progress = replace(progress, best_metric=kept_metric, best_step=progress.step)
    progress = replace(progress, finished=True)
    save(run, progress, snapshots, epoch_start)
    return progress, kept_metric is not None


def validated(run: Run, progress: Progress, snapshots: list[StateDict], *, meter: Throughput,
              write: Callable[[str], None]) -> tuple[Progress, list[StateDict]]:
    """Rank 0 validates (and saves the best, and logs); every rank takes its verdict, so none stops alone."""
    if run.world.leader:
        progress, snapshots = validation_round(run, progress, snapshots, meter=meter, write=write)
    else:
        meter.reset()
    return from_leader(progress, run.world), snapshots


def save(run: Run, progress: Progress, snapshots: list[StateDict], epoch_start: torch.Tensor) -> None:
    """Rank 0 writes the state, with every rank's RNG streams so that each resumes its own."""
    rng = gather(capture_rng(), run.world)
    if run.world.leader:
        save_state(run.outputs.state, fingerprint=run.outputs.fingerprint, progress=progress, model=run.model,
                   optimizer=run.optimizer, epoch_generator=epoch_start, snapshots=snapshots,
                   rng=rng if run.world.distributed else rng[0], world_size=run.world.size)


