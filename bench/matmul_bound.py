"""How close to the matmul peak the fp32 training step could come if only its matmuls took time.

    python bench/matmul_bound.py                          # the Multi30k preset's model, 3962 outputs
    python bench/matmul_bound.py --batch 200 --name multi30k-b200

The fraction of the machine's matmul peak a training step reaches is bounded by
the rate of its own matmuls: an RNN's per-step products have only a batch's
rows (64 here), and MKL runs such products well below the rate of the large
square product that defines the peak. This bench records every matmul of real
update steps (forward, backward and the weight-gradient tapes: aten mm, addmm,
bmm, baddbmm, mv, addmv, dot) through a dispatch mode that times each call
where it runs, and replays the same calls (shapes and strides) in isolation.
It reports, per interleaved round and as medians:

- the step's throughput and fraction of the fp32 peak (analytic FLOPs, as
  ``train_speed.py`` counts them), timed without the recorder;
- the matmuls' share of the step time and their FLOPs per target token;
- the bound: the fraction of peak the step would reach if everything that is
  not a matmul took no time, from the in-step matmul times and from the
  isolated replay (an optimistic bound: warm caches, no other work between calls);
- the time of the optimizer's update, of all other ops, and of the same steps
  with every width 8 (the interpreter's and autograd's own time), and what a given
  fraction of peak (55%) would require of everything that is not a matmul;
- the largest shape classes, with their rate.

Writes bench/results/matmul_bound-<name>.{json,md}.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import click
import torch
from report import write_results
from torch.utils._python_dispatch import TorchDispatchMode
from train_speed import flops_per_target_token, matmul_peak, seconds, synthetic_batches, train_step

from seqlab.core.config import Config, load_config
from seqlab.core.run_config import ModelConfig
from seqlab.model.batch import Batch
from seqlab.model.seq2seq import build_model
from seqlab.train.loop import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
aten = torch.ops.aten
MATMULS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default,
           aten.mv.default, aten.addmv.default, aten.dot.default}
CPU = torch.device("cpu")
OPTIMIZER_OPS = ("_fused_adam", "_foreach_")  # Adam's update, clip_grad_norm_'s norms and scaling


@dataclass(frozen=True)
class Call:
    """One matmul as it ran: op, its tensor arguments' (shape, stride), FLOPs and seconds."""

    op: torch._ops.OpOverload
    layouts: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    flops: int
    seconds: float


def matmul_flops(op: torch._ops.OpOverload, out: torch.Tensor, args: tuple) -> int:
    """2 x multiply-adds of one matmul call, from its output shape and the contracted dimension."""
    if op in (aten.addmm.default, aten.baddbmm.default, aten.addmv.default):
        args = args[1:]  # the added term does not multiply
    if op is aten.dot.default:
        return 2 * args[0].numel()
    return 2 * out.numel() * args[0].size(-1)


class MatmulRecorder(TorchDispatchMode):
    """Inside ``with``: every op the process dispatches (autograd's backward included) is timed where it
    runs; matmuls are kept as :class:`Call` s, the optimizer's update (fused Adam, the clipping norm and
    scale) and everything else are summed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.optimizer_seconds = 0.0
        self.other_seconds = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        start = time.perf_counter()
        out = func(*args, **kwargs)
        took = time.perf_counter() - start
        if func in MATMULS:
            layouts = tuple((tuple(a.shape), a.stride()) for a in args if isinstance(a, torch.Tensor))
            self.calls.append(Call(func, layouts, matmul_flops(func, out, args), took))
        elif func.__name__.startswith(OPTIMIZER_OPS):
            self.optimizer_seconds += took
        else:
            self.other_seconds += took
        return out


def replay(calls: list[Call], repeats: int = 3) -> float:
    """Seconds the same matmuls take in isolation, in order, on random tensors of the same layouts
    (one tensor per layout, so the weights stay few as in the step); best of ``repeats``."""
    tensors: dict[tuple, torch.Tensor] = {}
    for call in calls:
        for shape, stride in call.layouts:
            if (shape, stride) not in tensors:  # strides as they ran: transposed views, broadcast biases
                extent = 1 + sum((n - 1) * st for n, st in zip(shape, stride))
                tensors[shape, stride] = torch.randn(extent).as_strided(shape, stride)
    arguments = [[tensors[layout] for layout in call.layouts] for call in calls]

    def run() -> None:
        for call, args in zip(calls, arguments):
            call.op(*args)

    return min(seconds(run, CPU) for _ in range(repeats))


def updates(config: Config, model_config: ModelConfig, batches: list[Batch], *, vocab: int, outputs: int):
    """A function that runs one fp32 update per batch, as training does, on a fresh seeded model."""
    torch.manual_seed(0)
    model = build_model(model_config, src_vocab=vocab, tgt_vocab=vocab, output_ids=torch.arange(outputs)).train()
    optimizer = make_optimizer(model, config.train)

    def run() -> None:
        for batch in batches:
            train_step(model, optimizer, batch, bf16=False, smoothing=config.train.label_smoothing,
                       clip_norm=config.train.clip_norm)

    return run


def shape_classes(calls: list[Call], top: int = 8) -> list[str]:
    """The ``top`` (op, argument shapes) classes by time, each with its calls per run, GFLOP/s and share of matmul time."""
    groups: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for c in calls:
        g = groups[f"{c.op.__name__.split('.')[0]} {' x '.join(str(list(s)) for s, _ in c.layouts)}"]
        g[0] += 1
        g[1] += c.flops
        g[2] += c.seconds
    total = sum(c.seconds for c in calls)
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][2])[:top]
    return [f"{key}: {int(n)} calls, {f / s / 1e9:.0f} GFLOP/s, {s / total:.1%} of matmul time"
            for key, (n, f, s) in ranked]


def measure_round(steps, overhead_steps, *, batches: int, tokens: float, work: float) -> dict:
    """One round's timings per batch, each set against a peak measured just before it: the machine drifts."""
    peak = lambda: matmul_peak(torch.float32, CPU) * 1e9  # noqa: E731
    peak_step = peak()
    step = seconds(steps, CPU) / batches
    peak_recorded = peak()
    with MatmulRecorder() as recorder:
        steps()
    matmuls = sum(c.seconds for c in recorder.calls) / batches
    optimizer_update, other = (x / batches for x in (recorder.optimizer_seconds, recorder.other_seconds))
    peak_replay = peak()
    isolated = replay(recorder.calls) / batches
    overhead = min(seconds(overhead_steps, CPU) for _ in range(3)) / batches
    share = matmuls / (matmuls + optimizer_update + other + overhead)
    fraction = work / step / peak_step
    return {
        "peak_gflops": peak_step / 1e9,
        "tokens_per_sec": tokens / step,
        "fraction_of_peak": fraction,
        "matmul_share_of_op_time": matmuls / (matmuls + optimizer_update + other),
        "bound_in_step": work / matmuls / peak_recorded,
        "bound_isolated": work / isolated / peak_replay,
        "ms_matmuls": matmuls * 1e3, "ms_optimizer": optimizer_update * 1e3, "ms_other": other * 1e3,
        "ms_overhead": overhead * 1e3,
        "matmul_share_of_wall_time": share,
        # 55% of peak means the step's time times fraction / 0.55, of which the matmuls keep their share
        "cut_for_55": 1 - (fraction / 0.55 - share) / (1 - share),
        "calls": recorder.calls,
    }


@click.command()
@click.option("--config", "config_path", default=str(ROOT / "tests/assets/presets/multi30k.yaml"), show_default=True,
              help="The params file whose model is timed.")
@click.option("--vocab", default=8000, show_default=True, help="Source (and joint) vocabulary.")
@click.option("--output-vocab", default=3962, show_default=True, help="Outputs (model.output_vocab: target).")
@click.option("--batch", "batch_size", default=64, show_default=True, help="Sentences per batch.")
@click.option("--src-len", default=13, show_default=True)
@click.option("--tgt-len", default=14, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds; medians are reported.")
@click.option("--name", default="multi30k", show_default=True)
def main(config_path: str, vocab: int, output_vocab: int, batch_size: int, src_len: int, tgt_len: int,
         rounds: int, name: str) -> None:
    config = load_config(Path(config_path))
    batches = synthetic_batches(batch_size=batch_size, src_len=src_len, tgt_len=tgt_len, vocab=vocab,
                                outputs=output_vocab)
    tokens = sum(b.n_tokens for b in batches)
    flops = flops_per_target_token(config.model, vocab=output_vocab, src_per_tgt=src_len / tgt_len, src_len=src_len)
    steps = updates(config, config.model, batches, vocab=vocab, outputs=output_vocab)
    # The same steps with every width 8: the time of the interpreter and of torch's dispatch and autograd
    # bookkeeping, which no kernel fusion below the Python level removes.
    narrow = replace(config.model, embed_dim=8, hidden_dim=8, attention_dim=8)
    overhead_steps = updates(config, narrow, batches, vocab=vocab, outputs=output_vocab)

    steps()  # allocation and kernel choice
    overhead_steps()
    work = tokens * flops / len(batches)  # FLOPs per batch
    rounds_out = [measure_round(steps, overhead_steps, batches=len(batches), tokens=tokens / len(batches), work=work)
                  for _ in range(rounds)]
    median = lambda key, digits=None: round(statistics.median(r[key] for r in rounds_out), digits)  # noqa: E731
    each = lambda key, digits=None: [round(r[key], digits) for r in rounds_out]  # noqa: E731
    calls = rounds_out[len(rounds_out) // 2]["calls"]
    result = {
        "machine": f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32",
        "setup": f"{Path(config_path).name}'s model, {output_vocab} outputs, {len(batches)} synthetic bucketed batches "
                 f"of {batch_size} sentences (source ~{src_len}, target ~{tgt_len} pieces), {rounds} rounds",
        "train_flops_per_target_token": round(flops),
        "matmul_flops_per_target_token_executed": round(sum(c.flops for c in calls) / tokens),
        "matmul_calls_per_batch": len(calls) // len(batches),
        "matmul_peak_gflops_fp32_each_round": each("peak_gflops", 1),
        "tokens_per_sec_each_round": each("tokens_per_sec"),
        "tokens_per_sec": median("tokens_per_sec"),
        "fraction_of_fp32_peak_each_round": each("fraction_of_peak", 3),
        "fraction_of_fp32_peak": median("fraction_of_peak", 3),
        "matmul_share_of_op_time": median("matmul_share_of_op_time", 3),
        "bound_fraction_of_peak_matmuls_only_in_step_each_round": each("bound_in_step", 3),
        "bound_fraction_of_peak_matmuls_only_in_step": median("bound_in_step", 3),
        "bound_fraction_of_peak_matmuls_only_isolated": median("bound_isolated", 3),
        # per batch, in the recorded steps
        "ms_per_batch_matmuls": median("ms_matmuls", 1),
        "ms_per_batch_optimizer_update": median("ms_optimizer", 1),
        "ms_per_batch_other_ops": median("ms_other", 1),
        "ms_per_batch_same_steps_at_width_8": median("ms_overhead", 1),
        "matmul_share_of_wall_time": median("matmul_share_of_wall_time", 3),
        # how much of all that is not a matmul would have to go for the step to reach 55% of peak (issue 3's figure)
        "non_matmul_time_cut_for_55pct_of_peak_each_round": each("cut_for_55", 2),
        "largest_shape_classes": shape_classes(calls),
    }
    write_results(f"matmul_bound-{name}", f"Matmul-only bound of the fp32 training step, {name} "
                  "(`python bench/matmul_bound.py`)", result, options=click.get_current_context().params)


if __name__ == "__main__":
    main()
