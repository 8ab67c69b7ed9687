"""Units of the scale-out work: GPU claims by advisory lock (a fake device count), train.init_from."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_accumulate import CPU, MODEL, make_tiny

from seqlab.core.errors import SeqlabError
from seqlab.core.run_config import ModelConfig
from seqlab.model.checkpoint import save_checkpoint
from seqlab.model.runtime import claim_device
from seqlab.train.run import build_network, init_weights


def test_each_process_claims_a_gpu_no_other_holds(tmp_path: Path) -> None:
    first = claim_device("auto", lock_dir=tmp_path, count=2, visible="")
    second = claim_device("auto", lock_dir=tmp_path, count=2, visible="")
    assert (first.device, second.device) == (torch.device("cuda", 0), torch.device("cuda", 1))
    first.lock.close()  # as at the first process's exit
    assert claim_device("auto", lock_dir=tmp_path, count=2, visible="").device == torch.device("cuda", 0)


def test_claims_follow_cuda_visible_devices(tmp_path: Path) -> None:
    held = claim_device("auto", lock_dir=tmp_path, count=4, visible="0,1,2,3")
    assert held.device == torch.device("cuda", 0)
    # another process that sees only GPUs 0 and 3: its device 0 is taken, its device 1 (GPU 3) is free
    assert claim_device("auto", lock_dir=tmp_path, count=2, visible="0,3").device == torch.device("cuda", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.lock", "gpu-3.lock"]


def test_the_kernel_releases_a_claim_when_its_process_dies(tmp_path: Path) -> None:
    code = ("import os, sys; from pathlib import Path; from seqlab.model.runtime import claim_device; "
            f"c = claim_device('auto', lock_dir=Path({str(tmp_path)!r}), count=1, visible=''); "
            "print(c.device, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "cuda:0"
    assert claim_device("auto", lock_dir=tmp_path, count=1, visible="").device == torch.device("cuda", 0)


def test_named_devices_and_cpu_only_machines_claim_nothing(tmp_path: Path) -> None:
    assert claim_device("cpu", lock_dir=tmp_path, count=2).lock is None
    assert claim_device("auto", lock_dir=tmp_path, count=0).device == torch.device("cpu")
    assert not list(tmp_path.iterdir())


def test_init_from_starts_from_a_checkpoints_weights(tmp_path: Path) -> None:
    tiny = make_tiny()
    torch.manual_seed(1)
    source = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU)
    save_checkpoint(tmp_path / "base.pt", model=source, tokenizer=tiny.tokenizer, info={})
    torch.manual_seed(2)
    target = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU)
    init_weights(target, str(tmp_path / "base.pt"))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_init_from_a_checkpoint_of_another_shape_names_the_parameter_and_both_shapes(tmp_path: Path) -> None:
    tiny = make_tiny()
    source = build_network(tiny.data, model_config=MODEL, tokenizer=tiny.tokenizer, device=CPU)
    save_checkpoint(tmp_path / "base.pt", model=source, tokenizer=tiny.tokenizer, info={})
    wider = ModelConfig(embed_dim=12, hidden_dim=8, attention_dim=8, dropout=0.0)
    target = build_network(tiny.data, model_config=wider, tokenizer=tiny.tokenizer, device=CPU)
    with pytest.raises(SeqlabError) as info:
        init_weights(target, str(tmp_path / "base.pt"))
    assert str(info.value) == (f"train.init_from: parameter decoder.cells.0.weight_ih has shape (32, 16) in "
                               f"{tmp_path / 'base.pt'}, (32, 20) in this model")


def test_the_failure_line_names_the_rank_that_caused_it() -> None:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from seqlab.train.launch import failure_line

    def failure(rank: int, exitcode: int, message: str | None) -> ProcessFailure:
        made = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file="/nonexistent")
        if message is not None:
            made.message = message
        return made

    stopped = failure(0, -15, None)  # torchrun's SIGTERM to the survivors
    assert failure_line({0: stopped, 1: failure(1, -9, None)}, 2) == "train: rank 1 of 2 failed: killed by SIGKILL"
    own = failure(1, -15, "error: train: cannot write models/model.pt")  # recorded, then stopped
    assert failure_line({0: stopped, 1: own}, 2) == "train: rank 1 of 2 failed: train: cannot write models/model.pt"
    crash = failure(0, 1, "DistBackendError: connection closed by peer")
    assert failure_line({0: crash, 1: failure(1, -9, None)}, 2) == "train: rank 1 of 2 failed: killed by SIGKILL"


def test_a_torchrun_world_other_than_the_params_is_refused_in_one_line() -> None:
    from seqlab.core.run_config import TrainConfig
    from seqlab.train.launch import check_world

    check_world(TrainConfig(nproc_per_node=2, nnodes=2), 4)
    check_world(TrainConfig(nproc_per_node="auto", nnodes=2), 6)  # auto: whatever each node has
    with pytest.raises(SeqlabError) as info:
        check_world(TrainConfig(nproc_per_node=2, nnodes=1), 4)
    assert str(info.value) == "train.nproc_per_node x train.nnodes: 2 x 1 = 2 processes, but torchrun started 4"


# A rank that torchrun stops: the first SIGTERM interrupts training, the second arrives while the process
# is already shutting down (torchrun closes its processes once on the failure and again on its own shutdown).
SIGTERM_TWICE = """
import atexit, signal, sys, time
from seqlab.core.errors import run_stage
from seqlab.train.launch import as_rank

def on_exit():
    print("shutting down", flush=True)
    time.sleep(5)

def main():
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    atexit.register(on_exit)
    print("training", flush=True)
    time.sleep(60)

run_stage(as_rank(main) if sys.argv[1] == "rank" else main)
"""


@pytest.mark.parametrize("role", ["rank", "single"])
def test_a_second_sigterm_on_the_way_out_ends_the_process_without_a_traceback(tmp_path: Path, role: str) -> None:
    env = {**os.environ, "RANK": "0", "TORCHELASTIC_ERROR_FILE": str(tmp_path / "error.json")} if role == "rank" \
        else {k: v for k, v in os.environ.items() if k not in ("RANK", "TORCHELASTIC_RUN_ID")}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_TWICE, role], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for expected in ("training", "shutting down"):
        assert proc.stdout.readline().strip() == expected
        proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == -signal.SIGTERM, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
