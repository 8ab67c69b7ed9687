"""The training loop: updates, validation every N steps, the best checkpoint, resume.

:func:`train` reads top to bottom: build (or restore) the model, optimizer and
counters; for each epoch draw the batch order from the data-order generator;
for each batch set the learning rate of this step, update, validate when due,
save the full training state when due; at the end validate once more, average
the last checkpoints if asked, and mark the state finished. The helpers it
calls each do one of those things.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seqlab.core.errors import ConfigError, SeqlabError
from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.core.text import ParallelText
from seqlab.model.batch import Batch
from seqlab.model.checkpoint import save_checkpoint
from seqlab.model.runtime import autocast
from seqlab.model.seq2seq import Seq2Seq, build_model, count_parameters, output_pieces
from seqlab.tokenizer import Tokenizer
from seqlab.train.averaging import StateDict, average, keep_last, snapshot
from seqlab.train.batches import EncodedSplit, bucket_indices
from seqlab.train.loss import batch_loss
from seqlab.train.schedule import learning_rate, planned_steps, plateau_update
from seqlab.train.state import Progress, Saved, restore_rng, save_state
from seqlab.train.validation import Validation, is_better, validate, worst


class TrainingDiverged(SeqlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Outputs:
    checkpoint: Path  # the best model so far (models/model.pt)
    state: Path  # the full training state (models/train_state.pt)
    fingerprint: str  # of the parameters and data; stored in the state


@dataclass(frozen=True)
class Run:
    """What stays fixed while training; the counters live in :class:`Progress`."""

    model: Seq2Seq
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    tokenizer: Tokenizer
    device: torch.device
    valid_data: EncodedSplit
    valid_text: ParallelText  # raw valid text, for the decoded metric
    outputs: Outputs
    info: dict[str, Any]  # provenance stored in the checkpoint
    live: Any  # a dvclive Live, or None


@dataclass(frozen=True)
class TrainResult:
    parameters: int
    steps: int
    best_step: int
    best_metric: float  # of train.valid_metric
    resumed_from: int  # the step a resumed run started from; 0 for a fresh one
    stopped_early: bool
    averaged: bool  # models/model.pt is the average of the last train.average_last validations
    wall_seconds: float


class Throughput:
    """Target tokens per second of training since the last reset (validation time excluded)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tokens, self.start = 0, time.perf_counter()

    def rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (weight decay as L2 in the gradient) or AdamW (decoupled weight decay).

    The fused kernel updates all parameters in one pass; on 2 CPU cores it is
    about 3x faster than the default multi-tensor one, which was 7% of a step.
    """
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def budget_spent(progress: Progress, config: TrainConfig) -> bool:
    """max_steps reached, or early stopping's patience used up (the epochs are the loop's own bound)."""
    if config.max_steps and progress.step >= config.max_steps:
        return True
    return bool(config.patience) and progress.bad_validations >= config.patience


def validation_due(progress: Progress, config: TrainConfig, *, epoch_batches: int) -> bool:
    """Every ``valid_every`` steps, or at the end of each epoch when it is 0."""
    if config.valid_every:
        return progress.step % config.valid_every == 0
    return progress.position == epoch_batches


def train_step(run: Run, batch: Batch, *, step: int) -> float:
    """One update on ``batch``; returns its summed objective. A NaN or inf loss stops before the update."""
    with autocast(run.device, cpu_bf16=run.config.cpu_bf16):
        loss = batch_loss(run.model, batch, smoothing=run.config.label_smoothing)
    value = float(loss.detach())  # a CPU-GPU sync once per step, for this check and the progress bar
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"train: loss became {value} at step {step}; stopping. {run.outputs.checkpoint} keeps the last "
            f"good checkpoint (try a lower train.lr or a train.warmup_steps)"
        )
    run.optimizer.zero_grad(set_to_none=True)
    (loss / batch.n_tokens).backward()
    if run.config.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_norm)
    run.optimizer.step()
    return value


def start(run: Run, resume: Saved | None, *, seed: int) -> tuple[Progress, list[StateDict], torch.Tensor]:
    """Counters, averaging snapshots and the epoch's data-order generator state: fresh or restored."""
    if resume is None:
        progress = Progress(best_metric=worst(run.config.valid_metric))
        return progress, [], torch.Generator().manual_seed(seed).get_state()
    run.model.load_state_dict(resume.model)
    run.optimizer.load_state_dict(resume.optimizer)
    # Last, so that nothing done while rebuilding (model initialisation) shifts the random streams.
    restore_rng(resume.rng)
    return resume.progress, resume.snapshots, resume.epoch_generator


def train(
    train_data: EncodedSplit,
    valid_data: EncodedSplit,
    valid_text: ParallelText,
    *,
    model_config: ModelConfig,
    config: TrainConfig,
    tokenizer: Tokenizer,
    seed: int,
    device: torch.device,
    outputs: Outputs,
    info: dict[str, Any],
    resume: Saved | None = None,
    live: Any = None,
) -> TrainResult:
    """Train from scratch, or continue ``resume`` exactly; models/model.pt keeps the best validation."""
    if model_config.share_embeddings and not tokenizer.joint:
        raise ConfigError("model.share_embeddings: needs tokenizer.joint: true")
    output_ids = output_pieces(train_data.tgt, tokenizer.tgt_vocab_size) if model_config.output_vocab == "target" else None
    model = build_model(model_config, src_vocab=tokenizer.src_vocab_size, tgt_vocab=tokenizer.tgt_vocab_size,
                        output_ids=output_ids)
    if output_ids is not None:
        print(f"output layer: the {output_ids.numel():,} of {tokenizer.tgt_vocab_size:,} pieces the training targets use",
              flush=True)
    model.to(device)
    run = Run(model, make_optimizer(model, config), config, tokenizer, device, valid_data, valid_text, outputs,
              info, live)
    progress, snapshots, epoch_start = start(run, resume, seed=seed)
    resumed_from = progress.step
    src_len, tgt_len = train_data.lengths()
    # The batch count of an epoch depends on the lengths only, not on the shuffle.
    steps_per_epoch = len(bucket_indices(src_len, tgt_len, batch_tokens=config.batch_tokens, generator=None))
    total = planned_steps(config, steps_per_epoch=steps_per_epoch)
    print(f"model: {count_parameters(model):,} parameters on {device}; {steps_per_epoch} steps per epoch", flush=True)
    begin, meter, generator = time.perf_counter(), Throughput(), torch.Generator()
    # A with-block, so that an error (or Ctrl-C) closes the bar before the message is printed.
    with tqdm(total=total, initial=progress.step, desc="train", unit="step", mininterval=2.0, leave=False) as bar:
        model.train()
        while progress.epoch <= config.epochs and not budget_spent(progress, config):
            # Each epoch's order is drawn from the generator as it was when the epoch began, so a
            # run resumed mid-epoch sees exactly the batches of a run that never stopped.
            generator.set_state(epoch_start)
            batches = bucket_indices(src_len, tgt_len, batch_tokens=config.batch_tokens, generator=generator)
            while progress.position < len(batches) and not budget_spent(progress, config):
                lr = learning_rate(progress.step + 1, config=config, total_steps=total, plateau=progress.plateau)
                set_lr(run.optimizer, lr)
                batch = train_data.batch(batches[progress.position]).to(device)
                progress.loss_sum += train_step(run, batch, step=progress.step + 1)
                progress.loss_tokens += batch.n_tokens
                meter.tokens += batch.n_tokens
                progress.step, progress.position = progress.step + 1, progress.position + 1
                bar.update(1)
                bar.set_postfix(loss=f"{progress.loss_sum / progress.loss_tokens:.3f}", tok_s=f"{meter.rate():,.0f}",
                                refresh=False)
                if validation_due(progress, config, epoch_batches=len(batches)):
                    snapshots = validate_and_keep(run, progress, snapshots, meter=meter, bar=bar)
                if config.save_every and progress.step % config.save_every == 0:
                    save(run, progress, snapshots, epoch_start)
            if progress.position == len(batches):
                progress.epoch, progress.position = progress.epoch + 1, 0
                epoch_start = generator.get_state()
    averaged = finish(run, progress, snapshots, epoch_start, meter=meter)
    return TrainResult(
        parameters=count_parameters(model), steps=progress.step, best_step=progress.best_step,
        best_metric=progress.best_metric, resumed_from=resumed_from,
        stopped_early=bool(config.patience) and progress.bad_validations >= config.patience,
        averaged=averaged, wall_seconds=time.perf_counter() - begin,
    )


def finish(run: Run, progress: Progress, snapshots: list[StateDict], epoch_start: torch.Tensor, *,
           meter: Throughput) -> bool:
    """Validate the last steps if they were not, average if asked, save the state as finished.
    Returns whether models/model.pt is now the average."""
    if progress.valid_step != progress.step:
        snapshots = validate_and_keep(run, progress, snapshots, meter=meter, bar=None)
    averaged = average_into_best(run, progress, snapshots)
    progress.finished = True
    save(run, progress, snapshots, epoch_start)
    return averaged


def save(run: Run, progress: Progress, snapshots: list[StateDict], epoch_start: torch.Tensor) -> None:
    save_state(run.outputs.state, fingerprint=run.outputs.fingerprint, progress=progress, model=run.model,
               optimizer=run.optimizer, epoch_generator=epoch_start, snapshots=snapshots)


def validate_and_keep(run: Run, progress: Progress, snapshots: list[StateDict], *, meter: Throughput,
                      bar: tqdm | None) -> list[StateDict]:
    """Validate; keep the checkpoint if best; advance patience and plateau; log. Returns the snapshots."""
    config, tick = run.config, time.perf_counter()
    result = validate(run.model, run.valid_data, run.valid_text, config=config, tokenizer=run.tokenizer,
                      device=run.device)
    run.model.train()
    seconds = time.perf_counter() - tick
    improved = is_better(result.metric, progress.best_metric, metric=config.valid_metric)
    if improved:
        progress.best_metric, progress.best_step, progress.bad_validations = result.metric, progress.step, 0
        save_checkpoint(run.outputs.checkpoint, model=run.model, tokenizer=run.tokenizer,
                        info=provenance(run, progress, result))
    else:
        progress.bad_validations += 1
    if config.schedule == "plateau":
        progress.plateau = plateau_update(progress.plateau, improved=improved, config=config)
    stats = {
        "train/loss": progress.loss_sum / max(progress.loss_tokens, 1),
        "valid/loss": result.loss,
        "valid/ppl": math.exp(min(result.loss, 50.0)),
        **({} if config.valid_metric == "loss" else {f"valid/{config.valid_metric}": result.metric}),
        "lr": run.optimizer.param_groups[0]["lr"],
        "tokens_per_sec": meter.rate(),
    }
    line = "  ".join(f"{name} {value:.4g}" for name, value in stats.items())
    note = f"  (validated in {seconds:.1f}s{'; best, saved' if improved else ''})"
    (bar.write if bar is not None else print)(f"step {progress.step} (epoch {progress.epoch}): {line}{note}")
    if run.live is not None:
        log_validation(run.live, progress.step, stats)
    progress.valid_step, progress.loss_sum, progress.loss_tokens = progress.step, 0.0, 0
    meter.reset()
    return keep_last(snapshots, snapshot(run.model), config.average_last)


def log_validation(live: Any, step: int, stats: dict[str, float]) -> None:
    """One dvclive row per metric at ``step``: the x of every curve is the optimizer step."""
    live.step = step
    for name, value in stats.items():
        live.log_metric(name, value)
    live.make_summary()


def provenance(run: Run, progress: Progress, result: Validation) -> dict[str, Any]:
    """The checkpoint's record of where it came from."""
    return {**run.info, "step": progress.step, "epoch": progress.epoch, "valid_loss": result.loss,
            "valid_metric": run.config.valid_metric, "valid_score": result.metric}


def average_into_best(run: Run, progress: Progress, snapshots: list[StateDict]) -> bool:
    """With ``train.average_last`` > 1, validate the average of the last snapshots and make it
    models/model.pt when it scores at least as well as the best single checkpoint."""
    if len(snapshots) < 2:
        return False
    averaged = copy.deepcopy(run.model)
    averaged.load_state_dict(average(snapshots))
    result = validate(averaged, run.valid_data, run.valid_text, config=run.config, tokenizer=run.tokenizer,
                      device=run.device)
    keep = not is_better(progress.best_metric, result.metric, metric=run.config.valid_metric)
    print(f"average of the last {len(snapshots)} checkpoints: valid {run.config.valid_metric} "
          f"{result.metric:.4g} vs best {progress.best_metric:.4g}: {'kept' if keep else 'discarded'}", flush=True)
    if keep:
        info = {**provenance(run, progress, result), "averaged_checkpoints": len(snapshots)}
        save_checkpoint(run.outputs.checkpoint, model=averaged, tokenizer=run.tokenizer, info=info)
    return keep
