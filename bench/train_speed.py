"""Training throughput of the RNN or Transformer model, in target tokens per second and as a fraction of matmul peak.

    python bench/train_speed.py                       # emb 256, hidden 512, BiLSTM, Bahdanau, vocab 8000
    python bench/train_speed.py --output-vocab 3962 --name multi30k-target   # the Multi30k preset's output layer
    python bench/train_speed.py --hidden 256 --embed 128 --vocab 150 --name numbers
    python bench/train_speed.py --arch transformer --embed 256 --hidden 1024 --output-vocab 3962 --name transformer-multi30k
    python bench/train_speed.py --arch transformer --embed 256 --hidden 1024 --output-vocab 3962 --layers 6 --decoder-layers 1 --tie --batch 140 --name transformer-multi30k-6-1   # the preset

Times forward + backward + Adam steps on random batches shaped like Multi30k
(64 sentences, source ~13 and target ~14 pieces, bucketed by length), in fp32 and with bf16
autocast, on the CPU or (``--device cuda``) the GPU, and times a large
torch.matmul in both precisions in the same run. FLOPs per target token are counted analytically from the
architecture (3 x forward multiply-adds x 2). Every timing runs in ``--repeats``
interleaved rounds and the medians are reported. Writes bench/results/train_speed-<name>.{json,md}.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time

import click
import torch
from report import write_results

from seqlab.core.run_config import ModelConfig, TrainConfig
from seqlab.model.batch import Batch, make_batch
from seqlab.model.seq2seq import build_model, count_parameters
from seqlab.train.loop import make_optimizer
from seqlab.train.loss import batch_loss

JOEYNMT_TOKENS_PER_SEC = 850  # fp32 on the 2-core CPU machines; meaningful only for the default CPU shapes


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    """GFLOP/s of an n x n matmul in ``dtype`` (best of ``repeats``); n is 2048 on CPU, 8192 on a GPU."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    torch.matmul(a, b)
    best = min(seconds(lambda: torch.matmul(a, b), device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device: torch.device) -> float:
    """Wall seconds of ``fn()``, the device synchronised before and after."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def flops_per_target_token(c: ModelConfig, *, vocab: int, src_per_tgt: float, src_len: float) -> float:
    """Training FLOPs per target token: 2 x multiply-adds x 3 (forward, and backward at twice the forward).
    vocab: outputs of the output layer; src_per_tgt: source over target tokens; src_len: mean source length."""
    if c.arch == "transformer":
        return transformer_flops_per_target_token(c, vocab=vocab, src_len=src_len, tgt_len=src_len / src_per_tgt)
    h, e, a, d = c.hidden_dim, c.embed_dim, c.attention_dim, c.memory_dim
    gates = 4 if c.rnn_type == "lstm" else 3
    dirs = 2 if c.bidirectional else 1
    encoder = dirs * gates * h * (e + h) + (c.encoder_layers - 1) * dirs * gates * h * (d + h) + d * a
    first_in = e + h if c.input_feeding else e
    decoder = gates * h * (first_in + h) + (c.decoder_layers - 1) * gates * h * 2 * h
    attention = h * a + src_len * (a + d)  # query projection, energies, context
    output = (h + d) * h + h * vocab  # combine layer and output projection
    macs = decoder + attention + output + src_per_tgt * encoder
    return 2 * macs * 3


def transformer_flops_per_target_token(c: ModelConfig, *, vocab: int, src_len: float, tgt_len: float) -> float:
    """As :func:`flops_per_target_token`, for the Transformer: what its kernels multiply, so the
    self-attention counts every key of the T x T product (causal masking does not skip them)."""
    d, f, ratio = c.model_dim, c.ff_dim, src_len / tgt_len
    encoder = 4 * d * d + 2 * d * f + 2 * src_len * d  # per source token: projections, feed-forward, attention
    decoder = (6 * d * d + 2 * d * f + 2 * tgt_len * d + 2 * src_len * d  # self and cross attention, feed-forward
               + ratio * 2 * d * d)  # the cross keys and values, once per source token
    macs = c.decoder_layers * decoder + ratio * c.encoder_layers * encoder + d * vocab
    return 2 * macs * 3


def synthetic_batches(*, batch_size: int, src_len: int, tgt_len: int, vocab: int, outputs: int,
                      count: int = 8) -> list[Batch]:
    """``count`` batches of ``batch_size`` random sentence pairs with Multi30k-like lengths (normal around
    ``tgt_len``, sources ``src_len / tgt_len`` as long), bucketed by length into batches as training's
    token batching does, so padding stays small. Targets are drawn from the first ``outputs`` ids."""
    g = torch.Generator().manual_seed(0)
    n = count * batch_size
    tgt_lens = torch.normal(float(tgt_len), tgt_len / 3, (n,), generator=g).clamp(min=2).long()
    src_lens = (tgt_lens.float() * src_len / tgt_len + torch.randn(n, generator=g)).clamp(min=2).long()
    order = torch.argsort(tgt_lens * 1000 + src_lens).tolist()
    pairs = [(torch.randint(4, vocab, (int(src_lens[i]),), generator=g).numpy(),
              torch.randint(4, outputs, (int(tgt_lens[i]),), generator=g).numpy()) for i in order]
    return [make_batch([s for s, _ in chunk], [t for _, t in chunk])
            for chunk in (pairs[i : i + batch_size] for i in range(0, n, batch_size))]


def train_step(model, optimizer, batch: Batch, *, bf16: bool, smoothing: float = 0.0, clip_norm: float = 1.0) -> None:
    """One update as training makes it (loss over target tokens, norm clipping, the optimizer's step)."""
    ctx = torch.autocast(batch.src.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        loss = batch_loss(model, batch, smoothing=smoothing)
    optimizer.zero_grad(set_to_none=True)
    (loss / batch.n_tokens).backward()
    if clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()


def throughput(model, batches, *, bf16: bool, steps: int, device: torch.device) -> float:
    optimizer = make_optimizer(model, TrainConfig())  # what training uses, fused Adam included
    tokens, elapsed = 0, 0.0
    for i in range(steps + 2):
        batch = batches[i % len(batches)]
        took = seconds(lambda: train_step(model, optimizer, batch, bf16=bf16), device)
        if i >= 2:  # the first steps allocate and choose kernels
            elapsed += took
            tokens += batch.n_tokens
    return tokens / elapsed


def bench_config(arch: str, *, embed: int, hidden: int, heads: int, layers: int, output_vocab: int,
                 decoder_layers: int = 0, tie: bool = False) -> ModelConfig:
    """The benchmarked model: the RNN (emb ``embed``, hidden ``hidden``) or a Transformer (model_dim ``embed``,
    feed-forward ``hidden``, ``layers`` encoder layers and ``decoder_layers`` (0: as many) decoder ones,
    pre-norm, the usual dropouts, the output layer tied to the embedding with ``tie``)."""
    vocab_kind = "target" if output_vocab else "full"
    if arch == "transformer":
        return ModelConfig(arch="transformer", model_dim=embed, ff_dim=hidden, heads=heads, encoder_layers=layers,
                           decoder_layers=decoder_layers or layers, dropout=0.1, output_vocab=vocab_kind,
                           tie_embeddings=tie)
    return ModelConfig(embed_dim=embed, hidden_dim=hidden, attention_dim=hidden, dropout=0.1, output_vocab=vocab_kind)


def describe(c: ModelConfig, *, vocab: int, outputs: int) -> str:
    if c.arch == "transformer":
        return (f"transformer {c.encoder_layers}+{c.decoder_layers} layers, d {c.model_dim}, {c.heads} heads, "
                f"ff {c.ff_dim}, {c.norm}-norm, vocab {vocab}, {outputs} outputs{', tied' if c.tie_embeddings else ''}")
    return f"emb {c.embed_dim}, hidden {c.hidden_dim}, BiLSTM, Bahdanau, input feeding, vocab {vocab}, {outputs} outputs"


@click.command()
@click.option("--embed", default=256, show_default=True)
@click.option("--hidden", default=512, show_default=True)
@click.option("--vocab", default=8000, show_default=True)
@click.option("--batch", "batch_size", default=64, show_default=True, help="Sentences per batch.")
@click.option("--src-len", default=13, show_default=True)
@click.option("--tgt-len", default=14, show_default=True)
@click.option("--steps", default=20, show_default=True)
@click.option("--name", default="multi30k-shape", show_default=True)
@click.option("--device", "device_name", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--output-vocab", default=0, show_default=True,
              help="model.output_vocab: target with this many output pieces (targets drawn from them); 0: full.")
@click.option("--arch", type=click.Choice(["rnn", "transformer"]), default="rnn", show_default=True,
              help="transformer: --embed is model_dim, --hidden the feed-forward width.")
@click.option("--heads", default=4, show_default=True, help="Transformer attention heads.")
@click.option("--layers", default=3, show_default=True, help="Transformer layers on each side.")
@click.option("--decoder-layers", default=0, show_default=True, help="Transformer decoder layers (0: --layers).")
@click.option("--tie/--no-tie", default=False, show_default=True,
              help="Transformer: the output layer is the target embedding's rows (model.tie_embeddings).")
@click.option("--repeats", default=3, show_default=True,
              help="Interleaved rounds of peak, fp32 and bf16 timings; medians are reported (the machine drifts).")
def main(embed: int, hidden: int, vocab: int, batch_size: int, src_len: int, tgt_len: int, steps: int, name: str,
         device_name: str, output_vocab: int, arch: str, heads: int, layers: int, decoder_layers: int, tie: bool,
         repeats: int) -> None:
    torch.manual_seed(0)
    device = torch.device(device_name)
    config = bench_config(arch, embed=embed, hidden=hidden, heads=heads, layers=layers, output_vocab=output_vocab,
                          decoder_layers=decoder_layers, tie=tie)
    output_ids = torch.arange(output_vocab) if output_vocab else None
    outputs = output_vocab or vocab
    model = build_model(config, src_vocab=vocab, tgt_vocab=vocab, output_ids=output_ids).train().to(device)
    batches = synthetic_batches(batch_size=batch_size, src_len=src_len, tgt_len=tgt_len, vocab=vocab,
                                outputs=outputs)
    batches = [batch.to(device) for batch in batches]
    rounds = [(matmul_peak(torch.float32, device), matmul_peak(torch.bfloat16, device),
               throughput(model, batches, bf16=False, steps=steps, device=device),
               throughput(model, batches, bf16=True, steps=steps, device=device)) for _ in range(repeats)]
    peak32, peak16, fp32, bf16 = (statistics.median(column) for column in zip(*rounds))
    flops = flops_per_target_token(config, vocab=outputs, src_per_tgt=src_len / tgt_len, src_len=src_len)
    result = {
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": describe(config, vocab=vocab, outputs=outputs),
        "parameters": count_parameters(model),
        "batch_sentences": batch_size,
        "train_flops_per_target_token": round(flops),
        "matmul_peak_gflops_fp32": round(peak32, 1),
        "matmul_peak_gflops_bf16": round(peak16, 1),
        "tokens_per_sec_fp32": round(fp32),
        "tokens_per_sec_fp32_each_round": [round(r[2]) for r in rounds],
        "tokens_per_sec_bf16_autocast": round(bf16),
        "tokens_per_sec_bf16_each_round": [round(r[3]) for r in rounds],
        "fraction_of_fp32_peak": round(fp32 * flops / 1e9 / peak32, 3),
        "fraction_of_bf16_peak": round(bf16 * flops / 1e9 / peak16, 3),
    }
    if arch == "rnn":  # JoeyNMT 2.3, this architecture on Multi30k, 64-sentence batches, 2 cores (issue 3's anchor)
        result["fp32_times_joeynmt_850"] = round(fp32 / JOEYNMT_TOKENS_PER_SEC, 2)
        result["bf16_times_joeynmt_850"] = round(bf16 / JOEYNMT_TOKENS_PER_SEC, 2)
    write_results(f"train_speed-{name}", f"Training throughput, {name} (`python bench/train_speed.py`)", result,
                  options=click.get_current_context().params)


if __name__ == "__main__":
    main()
