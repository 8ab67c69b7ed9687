"""Training throughput of seqlab against JoeyNMT 2.3, alternating on the same machine, data and architecture.

    python -m venv /tmp/joey
    /tmp/joey/bin/pip install torch==2.13.0 joeynmt==2.3.0 importlib_metadata sentencepiece==0.2.0
    python bench/vs_joeynmt.py --joeynmt-python /tmp/joey/bin/python
    python bench/vs_joeynmt.py --joeynmt-python /tmp/joey/bin/python \
        --config tests/assets/presets/multi30k-transformer.yaml --name multi30k-transformer

Issue 3 anchors training speed to JoeyNMT's 850 target tokens per second, measured
once; this machine's speed drifts by a quarter within minutes, so a ratio to a
constant drifts with it. Here each round runs JoeyNMT's own training
(``python -m joeynmt train``) and then seqlab's update step on the same
Multi30k de-en pairs, the same sentencepiece model (the Multi30k preset's
tokenizer, trained here) and the same architecture (``--config``'s model: by
default the RNN preset's BiLSTM 512, Bahdanau, input feeding; or the Transformer
preset's 3+3 pre-norm layers, d 256, 4 heads, ff 1024; either with an output layer over the ~3,960
target pieces, as JoeyNMT builds its target vocabulary from the data), 64
sentences per batch, Adam, label smoothing, norm clipping, fp32.

Both sides are timed the way JoeyNMT logs: target tokens (EOS included, padding
not) over wall time per window of ``--log-every`` updates, batch building
included; the first window (allocation, kernel choice) is dropped and the
median of the rest kept. Each tool runs twice per round: on random 64-sentence
batches (JoeyNMT's own sampling) and on 64-sentence batches of similar target
length in shuffled order (what seqlab's length bucketing makes; JoeyNMT reads
the very same batches from a file written in that order, unshuffled).
Writes bench/results/vs_joeynmt-<name>.{json,md}.
The JoeyNMT interpreter is a separate environment: its pins need not agree with seqlab's.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import torch
import yaml
from report import write_results
from train_speed import flops_per_target_token, matmul_peak, train_step

from seqlab.core.config import Config, load_config
from seqlab.core.run_config import ModelConfig
from seqlab.core.text import ParallelText, read_lines
from seqlab.model.seq2seq import build_model, output_pieces
from seqlab.tokenizer import train_tokenizer
from seqlab.train.batches import EncodedSplit
from seqlab.train.loop import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
JOEY_RATE = re.compile(r"Tokens per Sec:\s+(\d+)")


def joeynmt_config(config: Config, *, work: Path, train: str, shuffle: bool, steps: int, log_every: int,
                   batch: int) -> dict:
    """A JoeyNMT 2.3 config with ``config``'s architecture and optimiser, no validation inside the timed run.
    train: the training files' prefix in ``work``; shuffle: False reads batches in file order."""
    m, t = config.model, config.train
    side = lambda lang: {  # noqa: E731
        "lang": lang, "max_length": config.preprocess.max_src_len, "lowercase": False, "normalize": False,
        "level": "bpe", "voc_limit": config.tokenizer.vocab_size, "voc_min_freq": 1,
        "tokenizer_type": "sentencepiece",
        "tokenizer_cfg": {"model_file": str(work / "sp.model"), "pretokenizer": "none"},
    }
    return {
        "name": "seqlab_speed",
        "joeynmt_version": "2.3.0",
        "data": {"train": str(work / train), "dev": str(work / "val"), "dataset_type": "plain",
                 "src": side("de"), "trg": side("en")},
        "testing": {"beam_size": 1, "batch_size": batch, "batch_type": "sentence", "eval_metrics": ["bleu"]},
        "training": {
            "random_seed": config.seed, "optimizer": "adam", "learning_rate": t.lr, "learning_rate_min": 0.0,
            # a constant rate: ExponentialLR with gamma 1 (its plateau scheduler passes an argument torch 2.13 removed)
            "scheduling": "exponential", "decrease_factor": 1.0,
            "clip_grad_norm": t.clip_norm, "label_smoothing": t.label_smoothing, "loss": "crossentropy",
            "batch_size": batch, "batch_type": "sentence", "normalization": "tokens",
            "epochs": 1, "updates": steps, "validation_freq": 10 * steps, "logging_freq": log_every,
            "model_dir": str(work / "model"), "overwrite": True, "shuffle": shuffle, "use_cuda": False, "fp16": False,
            "print_valid_sents": [], "keep_best_ckpts": 1,
        },
        "model": joeynmt_model(m),
    }


def joeynmt_model(m: ModelConfig) -> dict:
    """JoeyNMT's model section for seqlab's architecture, RNN or Transformer.

    JoeyNMT builds each side's vocabulary from its own data, so the source and target
    embeddings cannot be tied as seqlab's ``share_embeddings`` does; a lookup costs
    the same either way."""
    init = {"initializer": "xavier_uniform", "bias_initializer": "zeros"}
    if m.arch == "transformer":
        side = {"type": "transformer", "num_heads": m.heads, "hidden_size": m.model_dim, "ff_size": m.ff_dim,
                "dropout": m.dropout, "layer_norm": m.norm, "activation": m.activation,
                "embeddings": {"embedding_dim": m.model_dim, "scale": m.scale_embeddings}}
        return {**init, "embed_initializer": "xavier_uniform",
                "encoder": {**side, "num_layers": m.encoder_layers},
                "decoder": {**side, "num_layers": m.decoder_layers}}
    rnn = {"type": "recurrent", "rnn_type": m.rnn_type, "embeddings": {"embedding_dim": m.embed_dim},
           "hidden_size": m.hidden_dim, "dropout": m.dropout}
    return {**init,
            "encoder": {**rnn, "bidirectional": m.bidirectional, "num_layers": m.encoder_layers},
            "decoder": {**rnn, "num_layers": m.decoder_layers, "hidden_dropout": m.dropout,
                        "input_feeding": m.input_feeding, "init_hidden": "bridge" if m.bridge else "zero",
                        "attention": "bahdanau" if m.attention == "bahdanau" else "luong"}}


def run_joeynmt(python: str, cfg_path: Path, work: Path) -> list[float]:
    """JoeyNMT's logged tokens per second, one per logging window."""
    done = subprocess.run([python, "-m", "joeynmt", "train", str(cfg_path), "--skip-test"], cwd=work,
                          capture_output=True, text=True)
    rates = [float(r) for r in JOEY_RATE.findall(done.stdout + done.stderr)]
    if done.returncode != 0 or not rates:
        raise click.ClickException(f"joeynmt failed (rc {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return rates


def seqlab_rates(config: Config, pairs: EncodedSplit, order: Iterator[np.ndarray], *, output_ids: torch.Tensor,
                 vocab: int, steps: int, log_every: int) -> list[float]:
    """Tokens per second per window of ``log_every`` updates of a fresh model, batches built in the loop."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, src_vocab=vocab, tgt_vocab=vocab, output_ids=output_ids).train()
    optimizer = make_optimizer(model, config.train)
    rates, tokens, start = [], 0, time.perf_counter()
    for step in range(1, steps + 1):
        batch = pairs.batch(next(order))
        train_step(model, optimizer, batch, bf16=False, smoothing=config.train.label_smoothing,
                   clip_norm=config.train.clip_norm)
        tokens += batch.n_tokens
        if step % log_every == 0:
            rates.append(tokens / (time.perf_counter() - start))
            tokens, start = 0, time.perf_counter()
    return rates


def random_batches(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """JoeyNMT's sampling: a shuffled order cut into batches of ``size``, lengths mixed."""
    order = np.random.default_rng(seed).permutation(n)
    return iter(order[i : i + size] for i in range(0, n - size + 1, size))


def bucketed_batches(lengths: np.ndarray, size: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of ``size`` pairs of similar target length, in shuffled order."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(lengths)), lengths))
    chunks = [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
    return iter(chunks[i] for i in rng.permutation(len(chunks)))


@click.command()
@click.option("--joeynmt-python", required=True, type=click.Path(exists=True, dir_okay=False),
              help="An interpreter with joeynmt 2.3 installed.")
@click.option("--data", "data_dir", default=str(ROOT.parent / "shared/data/multi30k"), show_default=True,
              type=click.Path(exists=True, file_okay=False))
@click.option("--config", "config_path", default=str(ROOT / "tests/assets/presets/multi30k.yaml"), show_default=True)
@click.option("--steps", default=200, show_default=True, help="Updates per run.")
@click.option("--log-every", default=50, show_default=True, help="Updates per timing window.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds; medians are reported.")
@click.option("--name", default="multi30k", show_default=True)
def main(joeynmt_python: str, data_dir: str, config_path: str, steps: int, log_every: int, rounds: int,
         name: str) -> None:
    config, batch = load_config(config_path), 64
    with tempfile.TemporaryDirectory(prefix="vs-joeynmt-") as tmp:
        work = Path(tmp)
        text = {f"{split}.{lang}": read_lines(Path(data_dir) / f"{split}.{lang}.gz")
                for split in ("train", "val") for lang in ("de", "en")}
        for file, lines in text.items():  # JoeyNMT's plain datasets read <prefix>.<lang>
            (work / file).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tokenizer = train_tokenizer(ParallelText(src=text["train.de"], tgt=text["train.en"]), config.tokenizer,
                                    seed=config.seed)
        (work / "sp.model").write_bytes(tokenizer.src_model)
        pairs = EncodedSplit(src=[np.array(ids) for ids in tokenizer.encode_src(text["train.de"])],
                             tgt=[np.array(ids) for ids in tokenizer.encode_tgt(text["train.en"])])
        output_ids = output_pieces(pairs.tgt, tokenizer.tgt_vocab_size)
        tgt_lengths = np.array([len(t) for t in pairs.tgt])
        buckets = list(bucketed_batches(tgt_lengths, batch, config.seed))
        for lang in ("de", "en"):  # the bucketed batches, in order, for JoeyNMT to read unshuffled
            lines = text[f"train.{lang}"]
            (work / f"bucketed.{lang}").write_text("".join(f"{lines[i]}\n" for b in buckets for i in b),
                                                  encoding="utf-8")
        configs = {}
        for key, train, shuffle in (("joeynmt", "train", True), ("joeynmt_bucketed", "bucketed", False)):
            configs[key] = work / f"{key}.yaml"
            configs[key].write_text(yaml.safe_dump(joeynmt_config(
                config, work=work, train=train, shuffle=shuffle, steps=steps, log_every=log_every, batch=batch)))
        common = dict(output_ids=output_ids, vocab=tokenizer.src_vocab_size, steps=steps, log_every=log_every)
        per_round = []
        for r in range(rounds):
            rates = {"peak": matmul_peak(torch.float32, torch.device("cpu"))}
            for key in configs:
                rates[key] = statistics.median(run_joeynmt(joeynmt_python, configs[key], work)[1:])
            rates["seqlab"] = statistics.median(seqlab_rates(
                config, pairs, random_batches(len(pairs.src), batch, config.seed + r), **common)[1:])
            rates["seqlab_bucketed"] = statistics.median(seqlab_rates(config, pairs, iter(buckets), **common)[1:])
            per_round.append(rates)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()), flush=True)
    src_len = float(np.mean([len(s) for s in pairs.src]))
    tgt_len = float(np.mean(tgt_lengths)) + 1  # + EOS, as both count
    flops = flops_per_target_token(config.model, vocab=len(output_ids), src_per_tgt=src_len / tgt_len,
                                   src_len=src_len)
    tools = ("joeynmt", "joeynmt_bucketed", "seqlab", "seqlab_bucketed")
    ratio = lambda a, b: round(statistics.median(r[a] / r[b] for r in per_round), 2)  # noqa: E731  paired per round
    result = {
        "machine": f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32",
        "setup": f"Multi30k de-en train, {Path(config_path).name}'s tokenizer and model, {len(output_ids)} outputs, "
                 f"{batch} sentences per batch, {steps} updates per run, windows of {log_every} (first dropped)",
        "train_flops_per_target_token": round(flops),
        "matmul_peak_gflops_fp32_each_round": [round(r["peak"], 1) for r in per_round],
        **{f"tokens_per_sec_{key}_each_round": [round(r[key]) for r in per_round] for key in tools},
        **{f"tokens_per_sec_{key}": round(statistics.median(r[key] for r in per_round)) for key in tools},
        "same_random_batches_seqlab_over_joeynmt": ratio("seqlab", "joeynmt"),
        "same_bucketed_batches_seqlab_over_joeynmt": ratio("seqlab_bucketed", "joeynmt_bucketed"),
        "as_each_trains_seqlab_bucketed_over_joeynmt_random": ratio("seqlab_bucketed", "joeynmt"),
        **{f"fraction_of_fp32_peak_{key}": round(statistics.median(r[key] * flops / 1e9 / r["peak"]
                                                                   for r in per_round), 3) for key in tools},
    }
    write_results(f"vs_joeynmt-{name}", f"Training throughput against JoeyNMT 2.3, {name} "
                                        "(`python bench/vs_joeynmt.py`)", result, options=click.get_current_context().params)


if __name__ == "__main__":
    main()
