"""A MultiProc scheduler that leaves the cores to the nodes.

:class:`PinnedMultiProcPlugin` is Nipype's ``MultiProc`` with three changes, made as a subclass
(Nipype 1.8-1.11 share this plugin's structure; an upstream fix would be the better home):

* no full ``gc.collect()`` at every poll (``multiproc.py``: before each submission pass and
  after each node run in the main process).  With a 0.1 s poll it was most of a cached rerun's
  time and a good part of the group stage's;
* cached nodes are cleared before any processor slot is handed out, and a pass keeps clearing
  the nodes they release, so a cached rerun walks the whole graph in one pass instead of two
  nodes per poll; a node found not cached is not hashed again while it waits for a slot;
* every node runs with its BLAS / OpenMP / ITK threads pinned to its ``n_procs``
  (:func:`pinned_threads`), so ``--nprocs N`` means N cores and not N processes x all cores.
  The main process, which only schedules and runs the sinks, is pinned to one thread.

One ITK thread per node is also what makes antspyx's registrations bit-reproducible.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from traceback import format_exception

import numpy as np
from nipype.pipeline.engine import MapNode
from nipype.pipeline.plugins.multiproc import MultiProcPlugin, logger, run_node
from threadpoolctl import threadpool_limits

# Read by the libraries when they start their pools (OpenBLAS, MKL, OpenMP, numexpr, ITK), so
# they also reach command-line tools and libraries loaded after the limit is set.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


@contextmanager
def pinned_threads(n_threads: int) -> Iterator[None]:
    """Run the body with ``n_threads`` BLAS / OpenMP / ITK threads, then restore.

    Parameters
    ----------
    n_threads : int
        Threads allowed; values below one mean one.

    Notes
    -----
    Thread pools already loaded in the process are limited through ``threadpoolctl``; the
    environment variables reach child processes and pools started inside the body (ITK reads
    its variable when its first filter runs in a process).
    """
    n_threads = max(1, int(n_threads))
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(n_threads) for name in THREAD_VARIABLES})
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_node_pinned(node, updatehash: bool, taskid: int) -> dict:
    """Nipype's worker function with the node's threads pinned to its ``n_procs``."""
    with pinned_threads(node.n_procs):
        return run_node(node, updatehash, taskid)


class PinnedMultiProcPlugin(MultiProcPlugin):
    """``MultiProc`` without per-poll garbage collection, slot-free cache clearing and with
    threads pinned per node.  Takes the same ``plugin_args`` as Nipype's ``MultiProc``."""

    def __init__(self, plugin_args: dict | None = None) -> None:
        super().__init__(plugin_args=plugin_args)
        # Jobs hashed once and found stale: they run, so they are not hashed again per poll.
        self._not_cached: set[int] = set()

    def run(self, graph, config, updatehash: bool = False):
        # Workers fork from this process when first needed and inherit its one-thread pools.
        with pinned_threads(1):
            return super().run(graph, config, updatehash=updatehash)

    def _submit_job(self, node, updatehash: bool = False) -> int:
        self._taskid += 1
        if getattr(node.interface, "terminal_output", "") == "stream":
            node.interface.terminal_output = "allatonce"
        future = self.pool.submit(run_node_pinned, node, updatehash, self._taskid)
        future.add_done_callback(self._async_callback)
        self._task_obj[self._taskid] = future
        logger.debug("[PinnedMultiProc] Submitted task %s (taskid=%d).", node.fullname,
                     self._taskid)
        return self._taskid

    def _ready_jobs(self) -> np.ndarray:
        return np.flatnonzero(~self.proc_done & (self.depidx.sum(axis=0) == 0).__array__())

    def _clear_cached(self, graph) -> None:
        """Finish every ready node whose outputs are cached, and those they release."""
        cleared = True
        while cleared:
            cleared = False
            for jobid in self._ready_jobs():
                # MapNodes expand into sub-nodes first: the stock path handles them.
                if jobid in self._not_cached or isinstance(self.procs[jobid], MapNode):
                    continue
                self.proc_done[jobid] = True
                self.proc_pending[jobid] = True
                if self._local_hash_check(jobid, graph):
                    cleared = True
                else:
                    self.proc_done[jobid] = False
                    self.proc_pending[jobid] = False
                    self._not_cached.add(jobid)

    def _send_procs_to_workers(self, updatehash: bool = False, graph=None) -> None:
        self._clear_cached(graph)
        jobids = self._ready_jobs()
        free_gb, free_procs, free_gpus = self._check_resources(self.pending_tasks)
        if free_gb < 0.01 or free_procs == 0 or len(jobids) == 0:
            return
        for jobid in self._sort_jobs(jobids, scheduler=self.plugin_args.get("scheduler")):
            node = self.procs[jobid]
            if isinstance(node, MapNode) and not self._expand_mapnode(jobid, graph):
                continue
            need_gb = min(node.mem_gb_runtime, self.memory_gb)
            need_procs = min(node.n_procs, self.processors)
            need_gpus = min(node.n_procs, self.n_gpu_procs) if node.is_gpu_node() else 0
            if need_procs > free_procs or need_gb > free_gb or need_gpus > free_gpus:
                continue
            self.proc_done[jobid] = True
            self.proc_pending[jobid] = True
            # Jobs not pre-checked (MapNodes, or local_hash_check off) are hashed here, and a
            # cached one gives its slot straight back.
            if jobid not in self._not_cached and self._local_hash_check(jobid, graph):
                continue
            if node.run_without_submitting or (updatehash and self._stale_hash(node)):
                self._run_in_main_process(jobid, graph, updatehash)
                self._stats = None
                continue
            free_gb, free_procs, free_gpus = (free_gb - need_gb, free_procs - need_procs,
                                              free_gpus - need_gpus)
            if self._status_callback:
                self._status_callback(node, "start")
            taskid = self._submit_job(deepcopy(node), updatehash=updatehash)
            self.pending_tasks.insert(0, (taskid, jobid))
            self._stats = None

    def _expand_mapnode(self, jobid: int, graph) -> bool:
        """As MultiProc: a MapNode with several sub-nodes queues them and waits for them."""
        try:
            num_subnodes = self.procs[jobid].num_subnodes()
        except Exception:  # noqa: BLE001 - any failure of the node is reported as its crash
            traceback = format_exception(*sys.exc_info())
            self._clean_queue(jobid, graph, result={"result": None, "traceback": traceback})
            self.proc_pending[jobid] = False
            return False
        return num_subnodes <= 1 or self._submit_mapnode(jobid)

    @staticmethod
    def _stale_hash(node) -> bool:
        cached, updated = node.is_cached()
        return cached and not updated

    def _run_in_main_process(self, jobid: int, graph, updatehash: bool) -> None:
        """Sinks and hash updates run here, as in MultiProc, with the node's threads."""
        node = self.procs[jobid]
        logger.debug("Running node %s on master thread", node)
        try:
            with pinned_threads(node.n_procs):
                node.run(updatehash=updatehash)
        except Exception:  # noqa: BLE001 - the node's failure is recorded, the graph goes on
            traceback = format_exception(*sys.exc_info())
            self._run_errors.append(traceback)
            self._clean_queue(jobid, graph, result={"result": None, "traceback": traceback})
        # MultiProc releases the node even after a failure (its dependants are gone already).
        self._task_finished_cb(jobid)
        self._remove_node_dirs()


def run_with_plugin(workflow, plugin: str, plugin_args: dict) -> None:
    """Run ``workflow`` with ``plugin``; ``n_procs`` means that many cores, not processes.

    ``MultiProc`` is :class:`PinnedMultiProcPlugin`; in-process plugins (``Linear``) run with
    the process pinned to ``n_procs`` threads; cluster plugins set their jobs' resources.
    """
    if plugin == "MultiProc":
        workflow.run(plugin=PinnedMultiProcPlugin(plugin_args=plugin_args))
    elif plugin == "Linear":
        with pinned_threads(plugin_args.get("n_procs", 1)):
            workflow.run(plugin=plugin, plugin_args=plugin_args)
    else:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
