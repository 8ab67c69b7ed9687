"""Benchmark the data stages at scale: 1,000,000 synthetic pairs through prepare, tokenizer, preprocess.

Builds a synthetic parallel corpus (about 20 words per side, Zipf-distributed
words) in a temporary folder, then runs the real stage scripts on it, each as
its own process: prepare (read, clean, write), tokenizer (sentencepiece on a
200,000-sentence sample) and preprocess (tokenize, encode, write parquet shards;
the target is at most 60 seconds with peak memory under 2 GB on 2 cores).
Writes bench/results/preprocess.json and bench/results/preprocess.md.

    python bench/preprocess.py [--pairs 1000000]
    python bench/preprocess.py --pairs 100000 --samples 32 --threads 1 --name preprocess-samples-1thread

With ``--samples`` preprocess also writes that many subword samples of the train split
(``preprocess.subword_samples``, drawn from the ``--nbest`` best segmentations); ``--threads``
is ``preprocess.threads`` (0: one per core).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from report import OUT, markdown_rows, write_json

ROOT = Path(__file__).resolve().parents[1]
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def write_corpus(directory: Path, pairs: dict[str, int], *, seed: int = 0) -> None:
    """``<split>.src`` / ``<split>.tgt`` files: a target is its source's words reversed and respelled."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(LETTERS, rng.integers(2, 10))) for _ in range(20_000)]
    respelled = [w[::-1] + "e" for w in words]
    zipf = 1.0 / np.arange(1, len(words) + 1)
    zipf /= zipf.sum()
    for split, n in pairs.items():
        with open(directory / f"{split}.src", "w") as src, open(directory / f"{split}.tgt", "w") as tgt:
            for start in range(0, n, 100_000):
                rows = min(100_000, n - start)
                lengths = rng.integers(15, 26, rows)  # 15 to 25 words, 20 on average
                ids = rng.choice(len(words), size=(rows, 25), p=zipf)
                src.write("".join(" ".join([words[j] for j in row[:k]]) + "\n" for row, k in zip(ids, lengths)))
                tgt.write("".join(" ".join([respelled[j] for j in row[:k][::-1]]) + "\n"
                                  for row, k in zip(ids, lengths)))


def run_stage(stage: str, cwd: Path, env: dict[str, str]) -> dict:
    """Run one stage script in its own process: wall seconds, CPU seconds, peak RSS (MB), its output."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{stage} failed:\n{output}")
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "output": output.strip()}


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="training pairs")
    parser.add_argument("--samples", type=int, default=0, help="preprocess.subword_samples")
    parser.add_argument("--nbest", type=int, default=64, help="preprocess.subword_nbest")
    parser.add_argument("--threads", type=int, default=0, help="preprocess.threads")
    parser.add_argument("--name", default="preprocess", help="label of the results files")
    return parser.parse_args()


def main() -> None:
    args = options()
    sizes = {"train": args.pairs, "valid": 10_000, "test": 1_000}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "raw").mkdir()
        tick = time.perf_counter()
        write_corpus(work / "raw", sizes)
        generate = time.perf_counter() - tick
        files = {f"{split}_{side}": f"raw/{split}.{side}" for split in sizes for side in ("src", "tgt")}
        params = {"prepare": {"source": "files", "files": files},
                  "tokenizer": {"vocab_size": 8000, "input_sentence_size": 200_000, "threads": 2},
                  "preprocess": {"threads": args.threads, "subword_samples": args.samples,
                                 "subword_nbest": args.nbest}}
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        stages = {stage: run_stage(stage, work, env) for stage in ("prepare", "tokenizer", "preprocess")}
        shards = sorted((work / "data/encoded").glob("*.parquet"))
        digest = hashlib.sha256(b"".join(path.name.encode() + path.read_bytes() for path in shards)).hexdigest()
    load_after = os.getloadavg()
    encoded = sizes["train"] + sizes["valid"]
    pre = stages["preprocess"]
    result = {
        "machine": f"{len(os.sched_getaffinity(0))} CPU cores, {platform.processor() or platform.machine()}, "
                   f"Python {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "pairs_encoded": encoded,
        "subword_samples": args.samples,
        "subword_nbest": args.nbest if args.samples else None,
        "preprocess_threads": args.threads,
        "words_per_side": 20,
        "generate_seconds": round(generate, 1),
        "preprocess_seconds": pre["wall_seconds"],
        "preprocess_pairs_per_second": round(encoded / pre["wall_seconds"]),
        "preprocess_peak_rss_mb": pre["peak_rss_mb"],
        "preprocess_cpu_seconds": pre["cpu_seconds"],
        "preprocess_shards": len(shards),
        "encoded_sha256": digest,  # equal across --threads: the same bytes however many workers
        "prepare_seconds": stages["prepare"]["wall_seconds"],
        "prepare_pairs_per_second": round(sum(sizes.values()) / stages["prepare"]["wall_seconds"]),
        "prepare_peak_rss_mb": stages["prepare"]["peak_rss_mb"],
        "tokenizer_seconds": stages["tokenizer"]["wall_seconds"],
        "tokenizer_peak_rss_mb": stages["tokenizer"]["peak_rss_mb"],
        "target_met": pre["wall_seconds"] <= 60 and pre["peak_rss_mb"] < 2048,
    }
    recorded = write_json(args.name, result, options=vars(args))
    rows = markdown_rows(recorded)
    logs = "\n".join(f"{s['output']}" for s in stages.values())
    (OUT / f"{args.name}.md").write_text(
        f"# Data stages at scale (`python bench/preprocess.py`)\n\n"
        f"{encoded:,} pairs (about 20 words per side) encoded by `stages/preprocess.py`"
        f"{f', with {args.samples} subword samples of the train split' if args.samples else ''}: target at most "
        f"60 s and under 2 GB peak RSS. Each stage is its own process; peak RSS is that process's.\n"
        f"The load average shows what else was running on the machine.\n\n"
        f"| measure | value |\n|---|---|\n{rows}\n\n```\n{logs}\n```\n"
    )
    print(json.dumps(recorded, indent=2))


if __name__ == "__main__":
    main()
