"""Work spread over processes, results in order.

sentencepiece's n-best encoding holds the GIL (two threads ran no faster than one), so only
processes share it out. Workers start by ``spawn``: a fork of a process that already runs
sentencepiece's or Arrow's threads can deadlock. Each receives ``shared`` (the tokenizer) once,
not with every task, and ignores SIGINT: Ctrl-C reaches the whole process group, and the stage
alone answers it (one message, not one traceback per worker), after the running tasks end. A
worker ends itself when the stage dies without a word (SIGKILL).
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from seqlab.core.errors import SeqlabError

T = TypeVar("T")

_SHARED: Any = None  # a worker's ``shared``


def _start(shared: Any) -> None:
    global _SHARED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SHARED = shared
    # An idle worker waits on its task queue for ever: if the stage is killed outright (SIGKILL, the
    # OOM killer), nothing else would end it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _call(fn: Callable[..., T], task: tuple) -> T:
    return fn(_SHARED, *task)


def ordered_map(fn: Callable[..., T], tasks: Iterable[tuple], *, shared: Any, workers: int) -> Iterator[T]:
    """``fn(shared, *task)`` of each task, in the tasks' order: in ``workers`` processes when more than
    one (``fn`` and the tasks must pickle), else here. At most ``workers + 1`` results wait to be
    taken, so memory stays bounded however many tasks there are. Close the iterator (or exhaust it)
    to stop the workers."""
    if workers <= 1:
        yield from (fn(shared, *task) for task in tasks)
        return
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                   initargs=(shared,))
    try:
        pending: collections.deque[Future[T]] = collections.deque()
        for task in tasks:
            pending.append(executor.submit(_call, fn, task))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as err:
        raise SeqlabError(f"preprocess: a worker process ended abruptly (killed, or out of memory?); "
                          f"preprocess.threads sets how many run, {workers} now") from err
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
