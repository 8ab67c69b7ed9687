"""The worker processes that draw subword samples: results in order, a dead worker reported in one
line, and no worker outliving a stage that is killed outright (real spawned processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqlab.core.errors import SeqlabError
from seqlab.preprocess.workers import ordered_map


def slow_scale(shared: int, value: int, delay: float) -> tuple[int, int]:
    time.sleep(delay)
    return shared * value, os.getpid()


def die(shared: int, value: int) -> int:
    os._exit(1)


def test_results_come_in_task_order_from_several_processes() -> None:
    # the first tasks sleep longest, so they finish last
    tasks = [(value, 0.3 if value < 2 else 0.0) for value in range(8)]
    results = list(ordered_map(slow_scale, tasks, shared=3, workers=2))
    assert [product for product, _ in results] == [3 * value for value in range(8)]
    assert len({pid for _, pid in results}) == 2 and os.getpid() not in {pid for _, pid in results}
    assert list(ordered_map(slow_scale, tasks, shared=3, workers=1)) == [(3 * v, os.getpid()) for v in range(8)]


def test_a_worker_that_dies_is_one_line_naming_the_key() -> None:
    with pytest.raises(SeqlabError, match=r"worker process ended abruptly .* preprocess\.threads"):
        list(ordered_map(die, [(1,), (2,)], shared=0, workers=2))


STAGE = """
import multiprocessing, sys, time
from seqlab.preprocess.workers import ordered_map

def wait(shared, seconds):
    time.sleep(seconds)
    return seconds

if __name__ == "__main__":
    results = ordered_map(wait, [(0.0,), (60.0,), (60.0,)], shared=None, workers=2)
    next(results)
    print(" ".join(str(child.pid) for child in multiprocessing.active_children()), flush=True)
    next(results)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # an ended process not yet reaped by its new parent is a zombie
    return not stat.exists() or stat.read_text().split()[2] != "Z"


def test_workers_end_when_the_stage_is_killed_outright(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    stage = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in stage.stdout.readline().split()]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
