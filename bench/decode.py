"""Decoding speed: batched beam search versus one sentence at a time, and versus greedy.

    python bench/decode.py                                   # the default pipeline's model and test set
    python bench/decode.py --model M.pt --src test.de.gz --ref test.en.gz --name multi30k
    python bench/decode.py ... --params tests/assets/presets/multi30k.yaml -S max_length_ratio=1.5   # a preset's decode section

Writes bench/results/decode-<name>.json and .md: sentences per second for
greedy (batched), beam 5 batched (fp32 and with decode.cpu_bf16), and beam 5
one sentence at a time, with the torch thread count and the machine. Each is
timed ``--repeats`` times in interleaved rounds (this machine's speed drifts by
up to a quarter within minutes) and the median is reported, with every beam
run's seconds; the batched/one-at-a-time ratio is the median of the rounds'. With
``--device cuda`` search runs on the GPU under bf16 autocast (as decode does
there), so the separate cpu_bf16 run is left out. With
--ref, the sacreBLEU of each batched run too, so a speed-up that costs BLEU shows.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import replace

import click
import sacrebleu
import torch
import yaml
from report import write_results

from seqlab.core.config import load_config
from seqlab.core.run_config import DecodeConfig
from seqlab.core.text import read_lines
from seqlab.model.checkpoint import load_checkpoint
from seqlab.search.texts import decode_texts


def timed(lines: list[str], loaded, config: DecodeConfig, device: torch.device) -> tuple[float, list[str]]:
    start = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(0)  # used only with -S strategy=sample
    results = decode_texts(lines, model=loaded.model, tokenizer=loaded.tokenizer, config=config, device=device,
                           generator=generator)
    return time.perf_counter() - start, [r.texts[0] for r in results]


@click.command()
@click.option("--model", "model_path", default="models/model.pt", show_default=True, type=click.Path(exists=True))
@click.option("--src", default="data/corpus/test.src", show_default=True, type=click.Path(exists=True))
@click.option("--ref", default=None, type=click.Path(exists=True), help="References: report BLEU of each run.")
@click.option("--name", default="default", show_default=True, help="Label of the results files.")
@click.option("--beam", default=5, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--single-limit", default=200, show_default=True,
              help="Sentences timed one at a time (the slow mode), extrapolated to per-second.")
@click.option("--params", "params_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Take the decode section of this params file (default: DecodeConfig's defaults).")
@click.option("-S", "--set", "overrides", multiple=True, help="decode key=value on top, e.g. max_length_ratio=1.5.")
@click.option("--device", "device_name", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--repeats", default=3, show_default=True, help="Interleaved rounds of every timing; medians are reported.")
def main(model_path: str, src: str, ref: str | None, name: str, beam: int, batch_size: int, single_limit: int,
         params_file: str | None, overrides: tuple[str, ...], device_name: str, repeats: int) -> None:
    device = torch.device(device_name)
    loaded = load_checkpoint(model_path, device=device)
    lines = read_lines(src)
    base = load_config(params_file).decode if params_file else DecodeConfig()
    settings = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in overrides)}
    base = replace(base, beam_size=beam, batch_size=batch_size, cpu_bf16=False, device=device_name, **settings)
    timed(lines[:64], loaded, base, device)  # warm-up: first calls allocate and pick kernels
    single = lines[:single_limit]
    runs: dict[str, list[float]] = {"greedy": [], "beam": [], "bf16": [], "single": []}
    for _ in range(repeats):
        seconds, greedy_out = timed(lines, loaded, replace(base, beam_size=1), device)
        runs["greedy"].append(seconds)
        seconds, beam_out = timed(lines, loaded, base, device)
        runs["beam"].append(seconds)
        if device.type == "cpu":
            seconds, bf16_out = timed(lines, loaded, replace(base, cpu_bf16=True), device)
            runs["bf16"].append(seconds)
        seconds, single_out = timed(single, loaded, replace(base, batch_size=1), device)
        runs["single"].append(seconds)
    greedy_s, beam_s, single_s = (statistics.median(runs[k]) for k in ("greedy", "beam", "single"))
    ratios = [(len(lines) / b) / (len(single) / o) for b, o in zip(runs["beam"], runs["single"])]
    same = sum(a == b for a, b in zip(single_out, beam_out[: len(single)]))
    result = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": model_path,
        "search": f"alpha {base.length_penalty}, max_length_ratio {base.max_length_ratio}, batch {base.batch_size}",
        "sentences": len(lines),
        "greedy_batched_sent_per_s": round(len(lines) / greedy_s, 1),
        f"beam{beam}_batched_sent_per_s": round(len(lines) / beam_s, 1),
        f"beam{beam}_batched_seconds": round(beam_s, 2),
        f"beam{beam}_batched_seconds_each_round": [round(x, 2) for x in runs["beam"]],
        f"beam{beam}_one_at_a_time_sent_per_s": round(len(single) / single_s, 1),
        "batched_speedup_over_one_at_a_time": round(statistics.median(ratios), 2),
        "one_at_a_time_outputs_identical_to_batched": f"{same}/{len(single)}",
    }
    outputs = [("greedy", greedy_out), (f"beam{beam}", beam_out)]
    if device.type == "cpu":
        bf16_s = statistics.median(runs["bf16"])
        result.update({
            f"beam{beam}_batched_cpu_bf16_seconds": round(bf16_s, 2),
            f"beam{beam}_batched_cpu_bf16_sent_per_s": round(len(lines) / bf16_s, 1),
            "cpu_bf16_outputs_identical_to_fp32": f"{sum(a == b for a, b in zip(bf16_out, beam_out))}/{len(lines)}",
        })
        outputs.append((f"beam{beam}_cpu_bf16", bf16_out))
    if ref:
        refs = [read_lines(ref)]
        for label, out in outputs:
            result[f"bleu_{label}"] = round(sacrebleu.corpus_bleu(out, refs).score, 2)
    write_results(f"decode-{name}", f"Decoding speed, {name} (`python bench/decode.py`)", result,
                  options=click.get_current_context().params)


if __name__ == "__main__":
    main()
