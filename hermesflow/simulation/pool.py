"""Participants simulated side by side: a fork pool whose results do not depend on its size.

Each participant draws from its own random stream (``SeedSequence.spawn``) and writes only its
own folders, so the dataset is the same bytes with one process or several; only the order in
which files appear differs.  Workers are forked: they inherit the template grid and the
participant table instead of receiving them pickled, and they run one BLAS / OpenMP thread
each, so ``n_procs`` processes use ``n_procs`` cores.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

# The function the forked workers call, set just before the pool forks them.
_TASK: dict[str, Callable[[int], Any]] = {}


def _pin_threads() -> None:
    threadpool_limits(1)


def _run(index: int) -> Any:
    return _TASK["function"](index)


def map_participants(function: Callable[[int], Any], n_items: int, n_procs: int = 1) -> list:
    """``[function(i) for i in range(n_items)]``, in up to ``n_procs`` forked processes.

    Results come back in order.  An exception in a worker is raised here, as it would be in
    the loop.  Falls back to the loop for one process, one item, or a platform without
    ``fork`` (the simulator then runs as before, only slower).
    """
    n_procs = max(1, min(int(n_procs), n_items))
    if n_procs == 1 or sys.platform == "win32" or \
            "fork" not in multiprocessing.get_all_start_methods():
        return [function(index) for index in range(n_items)]
    _TASK["function"] = function
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(n_procs, initializer=_pin_threads) as pool:
            return pool.map(_run, range(n_items), chunksize=1)
    finally:
        _TASK.clear()
