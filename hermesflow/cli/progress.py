"""Progress of a running graph: one line per finished node, with an estimate of the time left.

:class:`Progress` is a Nipype ``status_callback`` (called with ``(node, "start" | "end" |
"exception")``); :class:`Callbacks` lets it run beside :class:`~hermesflow.cli.failures.
NodeFailures`.  Neither tqdm nor rich is a dependency: plain lines read the same in a terminal,
a SLURM log and a CI log, e.g.::

    [ 12/ 63] sub-02 ses-06 glm: done in 3.1 s; elapsed 0:41, about 1:32 left
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from copy import deepcopy
from typing import TextIO

from hermesflow.cli.failures import iterable_labels


def count_nodes(workflow) -> int:
    """Nodes the plugin will run: the workflow's graph with its iterables expanded."""
    from nipype.pipeline.engine.utils import generate_expanded_graph

    # The same expansion Workflow.run does; on a copy, so the run itself is untouched.
    return len(generate_expanded_graph(deepcopy(workflow._create_flat_graph())).nodes)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """Nipype ``status_callback`` that prints a line each time a node finishes or fails.

    Parameters
    ----------
    total
        Nodes expected (:func:`count_nodes`); 0 when unknown (no count, no estimate).
    stream
        Where the lines go (standard error by default, beside the log).
    clock
        Seconds since an arbitrary origin (``time.monotonic``).
    """

    def __init__(self, total: int = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream
        self.clock = clock
        self.start = clock()
        self.started: dict[str, float] = {}
        self.finished = 0

    def __call__(self, node, status: str) -> None:
        key = str(getattr(node, "_id", id(node))) + str(getattr(node, "parameterization", ""))
        if status == "start":
            self.started[key] = self.clock()
            return
        if status not in ("end", "exception"):
            return
        self.finished += 1
        now = self.clock()
        took = now - self.started.pop(key, now)
        verb = "done" if status == "end" else "FAILED"
        print(self.line(node, verb, took, now - self.start),
              file=self.stream or sys.stderr, flush=True)

    def line(self, node, verb: str, took: float, elapsed: float) -> str:
        """``[ n/total] sub-X ses-Y node: done in s; elapsed, about ETA left``."""
        labels = iterable_labels(node)
        where = " ".join(f"{'sub' if k == 'subject' else 'ses'}-{v}"
                         for k, v in sorted(labels.items(), key=lambda kv: kv[0] != "subject"))
        name = getattr(node, "name", str(node))
        width = len(str(self.total)) if self.total else 1
        count = f"[{self.finished:>{width}}/{self.total}]" if self.total else f"[{self.finished}]"
        text = f"{count} {where + ' ' if where else ''}{name}: {verb} in {took:.1f} s; " \
               f"elapsed {_clock(elapsed)}"
        remaining = self.total - self.finished
        if self.total and remaining > 0 and self.finished:
            text += f", about {_clock(elapsed / self.finished * remaining)} left"
        return text


class Callbacks:
    """Several status callbacks as one (Nipype's plugins accept a single callable)."""

    def __init__(self, *callbacks: Callable[[object, str], None]) -> None:
        self.callbacks = callbacks

    def __call__(self, node, status: str) -> None:
        for callback in self.callbacks:
            callback(node, status)
