"""Start the train stage under torchrun when it asks for several processes, and report how it ended.

``python stages/train.py`` stays the one command: with one process it trains
itself; with ``train.nproc_per_node`` above 1 (one node) it runs itself again
under torch.distributed.run (torchrun, standalone rendezvous on a free port),
which starts the processes, stops them all when any fails or on Ctrl-C, and
tells which failed. Each process records a :class:`SeqlabError` in torchrun's
error file instead of printing it, so the job reports one line: the rank and
its cause (its message, its signal, or its crash).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

import torch

from seqlab.core.errors import SeqlabError, leaving
from seqlab.core.run_config import TrainConfig
from seqlab.train.distributed import under_torchrun

USER = "error: "  # an error file's message from a SeqlabError: the cause, not a consequence


def processes(config: TrainConfig) -> int:
    """train.nproc_per_node resolved: ``auto`` is one per visible GPU (on a CUDA device), else one."""
    if config.nproc_per_node != "auto":
        return config.nproc_per_node
    uses_cuda = config.device != "cpu" and torch.cuda.is_available()
    return max(torch.cuda.device_count(), 1) if uses_cuda else 1


def relaunched(config: TrainConfig, argv: list[str]) -> bool:
    """Run ``argv`` (this script) under torchrun when several processes are asked for and we are not
    under torchrun already; True once the job succeeded, False when this process should train itself."""
    if under_torchrun():
        return False
    if config.nnodes > 1:
        raise SeqlabError(f"train.nnodes: {config.nnodes} nodes need torchrun started on every node "
                          f"(see the README's multi-process section)")
    count = processes(config)
    if count == 1:
        return False
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun logs each failed process and a failure table; the job's one line says it below
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # The cores are shared out here, so torchrun neither warns nor pins every process to one thread.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    print(f"train: starting {count} processes under torchrun", flush=True)
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={count}", "--max-restarts=0", *argv]))
    except ChildFailedError as err:
        raise SeqlabError(failure_line(err.failures, count)) from None
    except SignalException:  # Ctrl-C or SIGTERM: torchrun has stopped every process
        raise KeyboardInterrupt from None
    return True


def check_world(config: TrainConfig, world_size: int) -> None:
    """Under torchrun, the processes it started are the ones params.yaml asks for: the effective batch,
    the fingerprint and dvc.lock's params must describe the run that happened."""
    if config.nproc_per_node == "auto":
        return
    wanted = config.nproc_per_node * config.nnodes
    if world_size != wanted:
        raise SeqlabError(f"train.nproc_per_node x train.nnodes: {config.nproc_per_node} x {config.nnodes} = "
                          f"{wanted} processes, but torchrun started {world_size}")


def failure_line(failures: dict, count: int) -> str:
    """One line for the failed job: the rank whose failure caused it, and how.

    A rank's own error comes first, then a death by a signal, then a crash; last
    the SIGTERM with which torchrun stops the others once one has failed.
    """
    def rank_of(rank: int) -> tuple[int, int, int]:
        failure = failures[rank]
        if str(failure.message).startswith(USER):
            kind = 0
        elif failure.exitcode < 0:
            kind = 3 if -failure.exitcode == signal.SIGTERM else 1
        else:
            kind = 2
        return kind, failure.timestamp, rank

    rank = min(failures, key=rank_of)
    failure = failures[rank]
    if str(failure.message).startswith(USER):  # recorded, then stopped by torchrun on its way out
        cause = str(failure.message).removeprefix(USER)
    elif failure.exitcode < 0:
        cause = f"killed by {failure.signal_name()}"
    else:
        cause = str(failure.message) if failure.message else f"exit status {failure.exitcode}"
    return f"train: rank {rank} of {count} failed: {cause}"


def as_rank(main: Callable[[], None]) -> Callable[[], None]:
    """``main`` for a torchrun process: its error goes to torchrun's error file, not the terminal."""
    def wrapped() -> None:
        path = os.environ.get("TORCHELASTIC_ERROR_FILE")
        if path is None or not under_torchrun():
            return main()
        die_with_launcher()
        try:
            main()
        except SeqlabError as err:
            leaving()
            _record(path, f"{USER}{err}")
            sys.exit(1)
        except KeyboardInterrupt:
            leaving()
            sys.exit(130)
        except Exception as err:  # a crash, or a peer's death seen as a broken connection
            leaving()
            _record(path, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            sys.exit(1)
    return wrapped


def die_with_launcher() -> None:
    """Have the kernel SIGKILL this process when torchrun dies (Linux).

    torchrun starts each process in a session of its own, so a SIGKILL of the
    job's process group (dvc and torchrun) would leave the ranks training on.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: ranks outlive a killed launcher there
        return
    if os.getppid() == 1:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def _record(path: str, message: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"message": message, "timestamp": int(time.time())}, file)
