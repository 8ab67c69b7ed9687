"""What each validation decides and records: the best, early stopping's count and the plateau
memory (:func:`judged`), the best checkpoint, the log line and dvclive row, and at the end
whether the average of the last checkpoints replaces the best."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from seqlab.core.run_config import TrainConfig
from seqlab.model.checkpoint import save_checkpoint
from seqlab.train.averaging import StateDict, average, keep_last, snapshot
from seqlab.train.run import Run, Throughput
from seqlab.train.schedule import plateau_update
from seqlab.train.state import Progress
from seqlab.train.validation import Validation, is_better, validate


def judged(progress: Progress, *, metric: float, config: TrainConfig) -> tuple[Progress, bool]:
    """What a validation scoring ``metric`` changes: the best, early stopping's count, the plateau memory.
    Returns the new counters and whether the metric improved on the best."""
    improved = is_better(metric, progress.best_metric, metric=config.valid_metric)
    plateau = progress.plateau
    if config.schedule == "plateau":
        plateau = plateau_update(plateau, improved=improved, config=config)
    if improved:
        return replace(progress, best_metric=metric, best_step=progress.step, bad_validations=0, plateau=plateau), True
    return replace(progress, bad_validations=progress.bad_validations + 1, plateau=plateau), False


def validation_round(run: Run, progress: Progress, snapshots: list[StateDict], *, meter: Throughput,
                     write: Callable[[str], None]) -> tuple[Progress, list[StateDict]]:
    """Validate, judge, keep the checkpoint if best, report; returns the new counters and snapshots."""
    tick = time.perf_counter()
    result = validate(run.model, run.valid_data, run.valid_text, config=run.config, tokenizer=run.tokenizer,
                      device=run.device, tokenize=run.tokenize)
    run.model.train()
    seconds = time.perf_counter() - tick
    progress, improved = judged(progress, metric=result.metric, config=run.config)
    if improved:
        save_checkpoint(run.outputs.checkpoint, model=run.model, tokenizer=run.tokenizer,
                        info=provenance(run, progress, result))
    note = f"  {meter.rate():,.0f} tokens/s  (validated in {seconds:.1f}s{'; best, saved' if improved else ''})"
    report(run, progress, result, write=write, note=note)
    meter.reset()
    progress = replace(progress, valid_step=progress.step, loss_sum=0.0, loss_tokens=0)
    return progress, keep_last(snapshots, snapshot(run.model), run.config.average_last)


def report(run: Run, progress: Progress, result: Validation, *, write: Callable[[str], None], note: str) -> None:
    """Print one line and log one dvclive row per metric at this step (the x of every curve).

    Only what the weights determine is logged: timings and throughput are printed,
    so that the same run gives the same log, byte for byte.
    """
    config = run.config
    stats = {
        "train/loss": progress.loss_sum / max(progress.loss_tokens, 1),
        "valid/loss": result.loss,
        "valid/ppl": math.exp(min(result.loss, 50.0)),
        **({} if config.valid_metric == "loss" else {f"valid/{config.valid_metric}": result.metric}),
        "lr": run.optimizer.param_groups[0]["lr"],
    }
    line = "  ".join(f"{name} {value:.4g}" for name, value in stats.items())
    write(f"step {progress.step} (epoch {progress.epoch}): {line}{note}")
    if run.live is not None:
        run.live.step = progress.step
        for name, value in stats.items():
            run.live.log_metric(name, value)
        run.live.make_summary()


def provenance(run: Run, progress: Progress, result: Validation) -> dict[str, Any]:
    """The checkpoint's record of where it came from."""
    return {**run.info, "step": progress.step, "epoch": progress.epoch, "valid_loss": result.loss,
            "valid_metric": run.config.valid_metric, "valid_score": result.metric}


def average_into_best(run: Run, progress: Progress, snapshots: list[StateDict]) -> Validation | None:
    """With ``train.average_last`` > 1, validate the average of the last snapshots and make it the
    checkpoint when it scores at least as well as the best single one. Returns its validation if kept."""
    if len(snapshots) < 2:
        return None
    averaged = copy.deepcopy(run.model)
    averaged.load_state_dict(average(snapshots))
    result = validate(averaged, run.valid_data, run.valid_text, config=run.config, tokenizer=run.tokenizer,
                      device=run.device, tokenize=run.tokenize)
    keep = not is_better(progress.best_metric, result.metric, metric=run.config.valid_metric)
    print(f"average of the last {len(snapshots)} checkpoints: valid {run.config.valid_metric} "
          f"{result.metric:.4g} vs best {progress.best_metric:.4g}: {'kept' if keep else 'discarded'}", flush=True)
    if not keep:
        return None
    info = {**provenance(run, progress, result), "averaged_checkpoints": len(snapshots)}
    save_checkpoint(run.outputs.checkpoint, model=averaged, tokenizer=run.tokenizer, info=info)
    return result
