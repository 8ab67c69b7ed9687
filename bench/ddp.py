"""Data-parallel training on the CPU: tokens/s of 2 processes x 1 thread against 1 process x 2 threads,
and the all-reduce's share of a 2-process step.

    python bench/ddp.py                      # the Numbers preset's model (params.yaml), 4,000-token global batches
    python bench/ddp.py --hidden 512 --embed 256 --name multi30k-shape

Both arms run the library's update (:func:`seqlab.train.loop.train_step`) on the
same synthetic global batches, cut into shares as training cuts them; 2
processes are gloo DDP started by torch.multiprocessing. The all-reduce share is
the time of an all-reduce of every gradient (one flat tensor, as DDP's buckets
add up to) over the step's time. The load average is recorded: the machine is shared.
Writes bench/results/ddp-<name>.{json,md}.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from dataclasses import replace

import click
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from report import write_results

from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.model.seq2seq import build_model
from seqlab.train.batches import EncodedSplit
from seqlab.train.distributed import World, start, stop, wrap
from seqlab.train.loop import make_optimizer, train_step
from seqlab.train.run import Outputs, Run
from seqlab.train.shares import step_work, target_tokens

CPU = torch.device("cpu")


def synthetic(*, pairs: int, vocab: int, seed: int = 0) -> EncodedSplit:
    """Pairs of 4-12 source and 5-14 target pieces, like the Numbers corpus."""
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, vocab, rng.integers(4, 13)).astype(np.int32) for _ in range(pairs)]
    tgt = [rng.integers(4, vocab, rng.integers(5, 15)).astype(np.int32) for _ in range(pairs)]
    return EncodedSplit(src, tgt)


def global_batches(data: EncodedSplit, *, batch_tokens: int, count: int) -> list[np.ndarray]:
    """``count`` consecutive row ranges of about ``batch_tokens`` target tokens each."""
    tokens, out, start_row = target_tokens(data), [], 0
    for _ in range(count):
        end = start_row + int(np.searchsorted(np.cumsum(tokens[start_row:]), batch_tokens)) + 1
        out.append(np.arange(start_row, end))
        start_row = end
    return out


def make_run(model_config: ModelConfig, data: EncodedSplit, world: World, vocab: int) -> Run:
    torch.manual_seed(0)
    model = build_model(model_config, src_vocab=vocab, tgt_vocab=vocab)
    config = TrainConfig(device="cpu")
    run = Run(model=model, optimizer=make_optimizer(model, config), config=config, tokenizer=None, device=CPU,
              valid_data=data, valid_text=None, outputs=Outputs(None, None, ""), info={}, live=None,
              tokenize="13a", world=world)
    return replace(run, net=wrap(model, world, CPU) if world.distributed else None)


def timed_steps(run: Run, data: EncodedSplit, batches: list[np.ndarray], *, warmup: int) -> tuple[float, int]:
    """Seconds and global target tokens of the steps after ``warmup``."""
    tokens, seconds, counted = target_tokens(data), 0.0, 0
    for i, rows in enumerate(batches):
        work = step_work(data, rows, tokens, rank=run.world.rank, world=run.world.size, accumulate=1, device=CPU)
        tick = time.perf_counter()
        train_step(run, work, step=i + 1, lr=1e-3)
        if i >= warmup:
            seconds, counted = seconds + time.perf_counter() - tick, counted + work.global_tokens
    return seconds, counted


def allreduce_seconds(model: torch.nn.Module, repeats: int = 20) -> float:
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    dist.all_reduce(flat)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def _rank(rank: int, port: int, options: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = World(rank=rank, size=2)
    start(world, CPU)
    try:
        data, batches, model_config = inputs(options)
        run = make_run(model_config, data, world, options["vocab"])
        seconds, tokens = timed_steps(run, data, batches, warmup=options["warmup"])
        reduce = allreduce_seconds(run.model)
        if rank == 0:
            torch.save({"seconds": seconds, "tokens": tokens, "allreduce": reduce,
                        "steps": len(batches) - options["warmup"]}, out)
    finally:
        stop()


def inputs(options: dict) -> tuple[EncodedSplit, list[np.ndarray], ModelConfig]:
    data = synthetic(pairs=options["pairs"], vocab=options["vocab"])
    batches = global_batches(data, batch_tokens=options["batch_tokens"], count=options["steps"] + options["warmup"])
    config = ModelConfig(embed_dim=options["embed"], hidden_dim=options["hidden"], attention_dim=options["hidden"],
                         dropout=0.1)
    return data, batches, config


@click.command()
@click.option("--embed", default=128, show_default=True)
@click.option("--hidden", default=256, show_default=True)
@click.option("--vocab", default=150, show_default=True)
@click.option("--batch-tokens", default=4000, show_default=True, help="Target tokens per global batch.")
@click.option("--steps", default=10, show_default=True)
@click.option("--warmup", default=2, show_default=True)
@click.option("--pairs", default=20000, show_default=True)
@click.option("--name", default="numbers", show_default=True)
def main(embed: int, hidden: int, vocab: int, batch_tokens: int, steps: int, warmup: int, pairs: int,
         name: str) -> None:
    """Time both arms and write bench/results/ddp-<name>.{json,md}."""
    options = click.get_current_context().params
    load_before = os.getloadavg()[0]
    torch.set_num_threads(2)
    data, batches, model_config = inputs(options)
    seconds, tokens = timed_steps(make_run(model_config, data, World(), vocab), data, batches, warmup=warmup)
    single = tokens / seconds
    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        mp.spawn(_rank, args=(port, options, f"{folder}/ddp.pt"), nprocs=2)
        ddp = torch.load(f"{folder}/ddp.pt", weights_only=True)
    step = ddp["seconds"] / ddp["steps"]
    result = {"tokens_per_sec_1proc_x_2threads": round(single), "tokens_per_sec_2procs_x_1thread":
              round(ddp["tokens"] / ddp["seconds"]), "ddp_speedup": round(ddp["tokens"] / ddp["seconds"] / single, 3),
              "ddp_step_ms": round(step * 1000, 1), "allreduce_ms": round(ddp["allreduce"] * 1000, 2),
              "allreduce_share_of_step": round(ddp["allreduce"] / step, 4),
              "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
              "cpu_count": os.cpu_count()}
    write_results(f"ddp-{name}", "Data-parallel training on the CPU (seqlab.train, gloo DDP)", result, options=options)


if __name__ == "__main__":
    main()
