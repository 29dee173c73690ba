"""The workers' fork server: it imports what the nodes need while the main process checks the
inputs, and every MultiProc worker is forked from it.

A participant-level run spends its first two seconds in the main process alone (Nipype's
import, atlases, the pybids index, the input checks, Nipype's graph) while the other core
idles; each worker then spent its first nodes importing nilearn's GLM, confounds and plotting
(sklearn, matplotlib: about a second of CPU per worker) and preparing the atlas.  Here one
process, forked from the main process as soon as the run is known to go ahead (before the main
process imports Nipype: the server imports it too, on the other core), does that work; the
workers fork from it, so they start with it done.  Measured on 2 cores
(2 mm, fresh work dirs, interleaved with the server off): 6 participants 15.41 -> 15.01 s
(means of 6 pairs), 12 participants 28.41 -> 27.75 s (2 pairs); a worker's first GLM node
1.3-1.4 -> 0.85-0.9 s, its first session figures 1.0 -> 0.75 s.  Only a first run starts it:
in a work dir that holds a graph (an atlas re-run, the GLMs cached) the first workers would
wait for imports their nodes do not need (atlas re-run 1.49 -> 1.66 s).

Python's own fork server (``multiprocessing``'s ``forkserver`` context) is a fresh interpreter
that imports numpy, pandas and Nipype again (about 2 s here).  This one runs the same server
loop (``multiprocessing.forkserver.main``) in a child forked from the main process, registered
as the process's fork server, so that ``ProcessPoolExecutor(mp_context=forkserver)`` uses it.
That registration reads ``multiprocessing``'s internals; where they are not those of Python
3.10-3.12 (checked at start), or the fork fails, the workers fork from the main process as
before.  The server ignores Ctrl-C (the main process handles it) and ends with the main
process: its loop stops when the pipe the main process holds is closed, as Python's does.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOGGER = logging.getLogger("hermesflow")

# What every ROI node and atlas page needs beyond the main process's imports (0.1 s of a
# worker's first): without the server, the main process imports them before its workers fork.
PRELOADED = ("scipy.ndimage", "PIL.Image", "PIL.PngImagePlugin")

# What the nodes of a session import when they first run (and the interfaces their pickles
# name): the GLM with nilearn's design and confounds, the ROI measures, the figures with
# nilearn's plotting and matplotlib.
WORKER_MODULES = (
    "hermesflow.cli.scheduler",
    "hermesflow.interfaces.glm",
    "hermesflow.interfaces.lesion",
    "hermesflow.interfaces.qc",
    "hermesflow.interfaces.roi",
    "hermesflow.interfaces.report",
    "hermesflow.glm.model",
    "nilearn.interfaces.fmriprep",
    "nilearn.plotting",
    *PRELOADED,
)

# The multiprocessing context that forks from the server (None: fork from this process).
_CONTEXT: str | None = None


def _server_internals():
    """``multiprocessing.forkserver``'s module and server object, if they are the ones this
    module was written against (Python 3.10-3.12); else None."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fields = ("_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid", "_lock")
    expected = ["listener_fd", "alive_r", "preload", "main_path", "sys_path"]
    if server is None or not all(hasattr(server, name) for name in fields):
        return None
    if list(inspect.signature(forkserver.main).parameters) != expected:
        return None
    return forkserver, server


def _serve(listener: socket.socket, alive_r: int, prepare: Callable[[], None] | None) -> None:
    """The server's life (in the forked child): import, prepare, then fork on request."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threadpool_limits(limits=1)  # as the scheduler pins its workers' pools
    for module in WORKER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as err:  # the node imports it, and reports it, itself
            LOGGER.debug("worker server: %s not imported (%s)", module, err)
    if prepare is not None:
        try:
            prepare()
        except Exception as err:  # noqa: BLE001 - the main process checks and reports
            LOGGER.debug("worker server: preparation skipped (%s)", err)
    gc.freeze()  # the workers share these pages: collections must not write to them
    from multiprocessing import forkserver

    forkserver.main(listener.fileno(), alive_r, [])


def start_worker_server(prepare: Callable[[], None] | None = None) -> bool:
    """Fork the server from this process; True if this call started it (the workers fork
    from it until :func:`stop_worker_server`; a server already running is left to its owner).

    ``prepare`` runs in the server after its imports (for example: read the run's atlases as
    the ROI nodes will ask for them), so that every worker starts with its result.
    """
    global _CONTEXT
    internals = _server_internals()
    if internals is None or _CONTEXT is not None:
        return False
    _, server = internals
    from multiprocessing import connection, resource_tracker

    with server._lock:
        if server._forkserver_pid is not None:  # one already serves this process
            return False
        resource_tracker.ensure_running()
        with socket.socket(socket.AF_UNIX) as listener:
            address = connection.arbitrary_address("AF_UNIX")
            listener.bind(address)
            os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()
            try:
                pid = os.fork()
            except OSError as err:
                os.close(alive_r)
                os.close(alive_w)
                LOGGER.debug("worker server not started (%s)", err)
                return False
            if pid == 0:
                status = 1
                try:
                    os.close(alive_w)
                    _serve(listener, alive_r, prepare)
                    status = 0
                finally:
                    os._exit(status)
            os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    _CONTEXT = "forkserver"
    return True


def stop_worker_server() -> None:
    """End the server (its workers have ended with their pool) and forget it."""
    global _CONTEXT
    internals = _server_internals()
    if _CONTEXT is None or internals is None:
        return
    _, server = internals
    with server._lock:
        pid, alive_w = server._forkserver_pid, server._forkserver_alive_fd
        server._forkserver_address = server._forkserver_alive_fd = None
        server._forkserver_pid = None
        if alive_w is not None:
            os.close(alive_w)  # the server's loop ends at this pipe's end
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    _CONTEXT = None


def worker_context() -> str | None:
    """The ``mp_context`` for the workers' pool: ``"forkserver"`` while the server runs."""
    return _CONTEXT


@contextmanager
def worker_server(wanted: bool, prepare: Callable[[], None] | None = None) -> Iterator[None]:
    """The block runs with the server started when ``wanted``; it is stopped on the way out,
    whatever happens in the block."""
    started = wanted and start_worker_server(prepare)
    try:
        yield
    finally:
        if started:
            stop_worker_server()


@contextmanager
def participant_workers(config, setup: Callable[[], None] | None = None) -> Iterator[None]:
    """The server for a participant-level run of ``config`` (a :class:`~hermesflow.config.
    Config`), preparing its atlases: with MultiProc on more than one process, in a work dir
    without a graph yet.  A work dir with one most likely holds the GLMs (an atlas re-run),
    and its first workers would wait for imports their nodes do not need.

    ``setup`` runs in the server before the atlases: what the main process sets up after the
    server forked (Nipype's logging), for the workers to inherit.
    """
    from hermesflow.cli.selection import prepare_atlases
    from hermesflow.workflows import PARTICIPANT_WF

    def prepare() -> None:
        if setup is not None:
            setup()
        prepare_atlases(config)

    ex = config.execution
    fresh = not (Path(ex.work_dir) / PARTICIPANT_WF).is_dir()
    with worker_server(ex.plugin == "MultiProc" and ex.nprocs > 1 and fresh, prepare=prepare):
        yield
