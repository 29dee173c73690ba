"""A MultiProc scheduler that leaves the cores to the nodes and wakes when a node ends.

:class:`PinnedMultiProcPlugin` is Nipype's ``MultiProc`` with these changes, made as a subclass
(Nipype 1.8-1.11 share this plugin's structure; an upstream fix would be the better home):

* the main loop wakes as soon as a worker's node ends (a ``threading.Event`` set by the
  future's done-callback), not after a fixed poll (``poll_sleep_duration`` is the longest wait);
* no full ``gc.collect()`` at every poll (``multiproc.py``: before each submission pass and
  after each node run in the main process): most of a cached rerun, with a 0.1 s poll;
* cached nodes are cleared without taking a processor slot, depth first (a session's chain
  down to its first node that must run, which goes to a worker at once), while every worker
  is busy: a cached rerun walks the graph in one pass, not two nodes per poll; a node found
  not cached is not hashed again while it waits for a slot;
* a node goes to its worker pickled in the main process, not deep-copied first (the copy
  cost more than the pickling), and an upstream result is unpickled once per run in the main
  process, not once per reader (:func:`results_read_once`);
* nodes that run in the main process (``run_without_submitting``: sinks, gathering) take no
  worker slot and run after the pass has filled the free slots, so the workers never wait for
  them, nor they for a free worker;
* a worker that dies (killed, out of memory) fails its node instead of hanging the run;
* every node runs with its BLAS / OpenMP / ITK threads pinned to its ``n_procs``
  (:func:`pinned_threads`), so ``--nprocs N`` means N cores and not N processes x all cores.
  The main process, which only schedules and runs the sinks, is pinned to one thread;
* workers keep the memory their nodes free (:mod:`hermesflow.cli.allocator`) and fork from the
  run's fork server while it runs (:mod:`hermesflow.cli.workers`).

One ITK thread per node is also what makes antspyx's registrations bit-reproducible.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from copy import deepcopy
from functools import lru_cache, partial
from traceback import format_exception

import numpy as np
from nipype.pipeline.engine import MapNode
from nipype.pipeline.engine import nodes as nipype_nodes
from nipype.pipeline.plugins.multiproc import MultiProcPlugin, logger, run_node
from nipype.pipeline.plugins.tools import report_nodes_not_run
from nipype.utils.misc import str2bool
from threadpoolctl import threadpool_limits

from hermesflow.cli.allocator import keep_freed_memory
from hermesflow.cli.workers import PRELOADED, worker_context

# Read by the libraries when they start their pools (OpenBLAS, MKL, OpenMP, numexpr, ITK), so
# they also reach command-line tools and libraries loaded after the limit is set.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


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
    """Nipype's worker function with the node's threads pinned to its ``n_procs``; ``node``
    may come pickled (:meth:`PinnedMultiProcPlugin._submit_job`)."""
    if isinstance(node, bytes):
        node = pickle.loads(node)
    keep_freed_memory()  # once per worker: its nodes' arrays reuse the pages freed before
    with pinned_threads(node.n_procs):
        return run_node(node, updatehash, taskid)


# Result files the main process keeps unpickled during a run (results_read_once).
RESULTS_KEPT = 512


@contextmanager
def results_read_once() -> Iterator[None]:
    """Within the block, a node's result file is unpickled once while it is unchanged.

    Nipype reads an upstream node's ``result_*.pklz`` for every node that takes one of its
    outputs, at each cache check and each run (``nodes._get_inputs``): a session's GLM result
    three times in the main process, 468 reads for 252 files in an atlas re-run of the demo.
    The readers copy what they take (``deepcopy`` before ``set_input``), so sharing the loaded
    result is safe; the key holds the file's inode, size and modification time, so a result
    rewritten by a rerun is read again.  Restored on exit (Nipype's module is patched only for
    the run).
    """
    original = nipype_nodes._load_resultfile

    # Bounded: a result carries its run's environment; a trial of hundreds of sessions must
    # not keep them all.  Readers of one file come close together (a session's chain).
    @lru_cache(maxsize=RESULTS_KEPT)
    def read(path: str, resolve: bool, stamp: tuple):
        return original(path, resolve)

    def load(results_file, resolve: bool = True):
        stat = os.stat(results_file)  # FileNotFoundError, as Nipype's own raises
        return read(str(results_file), resolve, (stat.st_ino, stat.st_size, stat.st_mtime_ns))

    nipype_nodes._load_resultfile = load
    try:
        yield
    finally:
        nipype_nodes._load_resultfile = original


class PinnedMultiProcPlugin(MultiProcPlugin):
    """``MultiProc`` woken by its workers, without per-poll garbage collection, with slot-free
    cache clearing and main-process nodes, and with threads pinned per node.  Takes the same
    ``plugin_args`` as Nipype's ``MultiProc``."""

    def __init__(self, plugin_args: dict | None = None) -> None:
        super().__init__(plugin_args=plugin_args)
        # Jobs hashed once and found stale: they run, so they are not hashed again per poll.
        self._not_cached: set[int] = set()
        # Set from the executor's thread when a worker's node ends: the loop has work.
        self._wake = threading.Event()
        # How many unfinished jobs each job still waits for (None: recount from depidx, which
        # only changes when a job finishes or a MapNode expands).
        self._waiting: np.ndarray | None = None

    def run(self, graph, config, updatehash: bool = False):
        # Without the fork server, workers fork from this process when first needed and
        # inherit its modules: those most nodes import are loaded here once, not per worker.
        for module in PRELOADED if worker_context() is None else ():
            importlib.import_module(module)
        # What exists now lives through the run: frozen, the collections here skip it, and
        # the forked workers' do not write to the pages they share (Python's advice for fork).
        gc.freeze()
        try:
            with pinned_threads(1), results_read_once():
                return self._run_graph(graph, config, updatehash)
        finally:
            gc.unfreeze()

    def _run_graph(self, graph, config, updatehash: bool) -> None:
        """Nipype's distributed main loop (``plugins/base.py``), waiting on ``_wake``."""
        self._run_errors = []
        self._config = config
        longest_wait = float(config["execution"]["poll_sleep_duration"])
        self._prerun_check(graph)
        self._generate_dependency_list(graph)
        self.mapnodes, self.mapnodesubids = [], {}
        notrun: list[dict] = []
        while True:
            self._wake.clear()
            self._collect_results(graph, notrun)
            finished = np.count_nonzero(self.proc_done & ~self.proc_pending)
            if len(self.pending_tasks) < self.max_jobs:
                self._send_procs_to_workers(updatehash=updatehash, graph=graph)
            if np.all(self.proc_done) and not np.any(self.proc_pending):
                break
            # A node finished here may have released others: look again before waiting.
            if np.count_nonzero(self.proc_done & ~self.proc_pending) == finished:
                # Nothing more to hand out: clear cached nodes meanwhile (until a worker's
                # node ends), and wait only if that released nothing.
                self._clear_cached(graph)
                if np.count_nonzero(self.proc_done & ~self.proc_pending) == finished:
                    self._wake.wait(longest_wait)
        self._remove_node_dirs()
        report_nodes_not_run(notrun)
        self._postrun_check()
        if self._run_errors:
            error, cause = self._run_errors[0], None
            if isinstance(error, (str, list)):
                error = RuntimeError(error)
            if len(self._run_errors) > 1:
                error, cause = RuntimeError(f"{len(self._run_errors)} raised. Re-raising "
                                            "first."), error
            raise error from cause

    def _collect_results(self, graph, notrun: list[dict]) -> None:
        """Release the jobs whose workers are done, oldest first; record the failures."""
        still = []
        for taskid, jobid in reversed(self.pending_tasks):
            result = self._taskresult.pop(taskid, None)
            if result is None:
                still.append((taskid, jobid))
                continue
            if result["traceback"]:
                notrun.append(self._clean_queue(jobid, graph, result=result))
                self._run_errors.append("".join(result["traceback"]))
            else:
                self._task_finished_cb(jobid)
                self._remove_node_dirs()
            self._clear_task(taskid)
        self.pending_tasks = still[::-1]

    def _submit_job(self, node, updatehash: bool = False) -> int:
        self._taskid += 1
        # The worker gets the node as it is now, pickled here: MultiProc deep-copies it first
        # (so that the executor's thread, which pickles it later, cannot see it change),
        # which cost more than pickling it.
        if getattr(node.interface, "terminal_output", "") == "stream":
            node = _streamless(node)
        payload = pickle.dumps(node, protocol=pickle.HIGHEST_PROTOCOL)
        future = self.pool.submit(run_node_pinned, payload, updatehash, self._taskid)
        future.add_done_callback(partial(self._task_done, self._taskid))
        self._task_obj[self._taskid] = future
        logger.debug("[PinnedMultiProc] Submitted task %s (taskid=%d).", node.fullname,
                     self._taskid)
        return self._taskid

    def _task_done(self, taskid: int, future) -> None:
        """Done-callback (executor thread): keep the result and wake the main loop."""
        try:
            result = future.result()
        except BaseException:  # noqa: BLE001 - a dead worker fails its node, not the run
            result = {"result": None, "taskid": taskid,
                      "traceback": format_exception(*sys.exc_info())}
        self._taskresult[taskid] = result
        self._wake.set()

    def _task_finished_cb(self, jobid: int, cached: bool = False) -> None:
        """As Nipype's: the job is done and its dependants wait for one job less.  Its row of
        the dependency matrix is emptied in place (the lil matrix's own lists) and the waiting
        counts follow, instead of sparse slicing and a recount at every completion."""
        logger.info("[Job %d] %s (%s).", jobid, "Cached" if cached else "Completed",
                    self.procs[jobid])
        if self._status_callback:
            self._status_callback(self.procs[jobid], "end")
        self.proc_pending[jobid] = False
        if self._waiting is not None:
            np.subtract.at(self._waiting, self.depidx.rows[jobid], self.depidx.data[jobid])
        self.depidx.rows[jobid], self.depidx.data[jobid] = [], []
        # The reference counts serve only the removal of used-up node folders.
        if jobid not in self.mapnodesubids and str2bool(
                self._config["execution"]["remove_node_directories"]):
            self.refidx[self.refidx[:, jobid].nonzero()[0], jobid] = 0

    def _submit_mapnode(self, jobid: int) -> bool:
        self._waiting = None
        return super()._submit_mapnode(jobid)

    def _ready_jobs(self) -> np.ndarray:
        if self._waiting is None or len(self._waiting) != len(self.proc_done):
            self._waiting = np.asarray(self.depidx.sum(axis=0)).ravel()
        return np.flatnonzero(~self.proc_done & (self._waiting == 0))

    def _clear_cached(self, graph, enough=lambda runnable: False) -> None:
        """Finish ready nodes whose outputs are cached, depth first: each branch (a session's
        chain) down to its first node that must run, which becomes runnable at once instead
        of after every cached node of the graph has been checked.  Stops when
        ``enough(runnable)`` (the number of worker nodes found to run) says so, or when a
        worker's node has ended (the loop has results to collect first)."""
        # _ready_jobs also brings the waiting counts up to date (read below).
        stack = list(self._ready_jobs()[::-1])
        runnable = 0
        while stack:
            if enough(runnable) or self._wake.is_set():
                return
            jobid = stack.pop()
            node = self.procs[jobid]
            # MapNodes expand into sub-nodes first: the stock path handles them.
            if self.proc_done[jobid] or jobid in self._not_cached or isinstance(node, MapNode):
                continue
            dependants = list(self.depidx.rows[jobid])
            self.proc_done[jobid] = True
            self.proc_pending[jobid] = True
            if self._local_hash_check(jobid, graph):
                stack += [d for d in reversed(dependants)
                          if not self.proc_done[d] and self._waiting[d] == 0]
            else:
                self.proc_done[jobid] = False
                self.proc_pending[jobid] = False
                self._not_cached.add(jobid)
                runnable += not node.run_without_submitting

    def _send_procs_to_workers(self, updatehash: bool = False, graph=None) -> None:
        """Fill the free worker slots, then run the main process's ready nodes."""
        free_gb, free_procs, free_gpus = self._check_resources(self.pending_tasks)
        self._clear_cached(graph, enough=lambda runnable: runnable >= free_procs)
        local = []
        ready = self._sort_jobs(self._ready_jobs(), scheduler=self.plugin_args.get("scheduler"))
        # Nodes known to need a run first; the rest are checked (and may be cached) after.
        for jobid in sorted(ready, key=lambda job: job not in self._not_cached):
            node = self.procs[jobid]
            if isinstance(node, MapNode) and not self._expand_mapnode(jobid, graph):
                continue
            if node.run_without_submitting or (updatehash and self._stale_hash(node)):
                local.append(jobid)
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
            free_gb, free_procs, free_gpus = (free_gb - need_gb, free_procs - need_procs,
                                              free_gpus - need_gpus)
            if self._status_callback:
                self._status_callback(node, "start")
            taskid = self._submit_job(node, updatehash=updatehash)
            self.pending_tasks.insert(0, (taskid, jobid))
        for jobid in local:
            # A worker came free: refill it first; the rest wait for the next pass.
            if self._wake.is_set():
                break
            self.proc_done[jobid] = True
            self.proc_pending[jobid] = True
            if jobid not in self._not_cached and self._local_hash_check(jobid, graph):
                continue
            self._run_in_main_process(jobid, graph, updatehash)

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
        """Sinks and hash updates run here, as in MultiProc, with the node's threads (the
        loop already holds this process at one)."""
        node = self.procs[jobid]
        logger.debug("Running node %s on master thread", node)
        try:
            with pinned_threads(node.n_procs) if node.n_procs > 1 else nullcontext():
                node.run(updatehash=updatehash)
        except Exception:  # noqa: BLE001 - the node's failure is recorded, the graph goes on
            traceback = format_exception(*sys.exc_info())
            self._run_errors.append(traceback)
            self._clean_queue(jobid, graph, result={"result": None, "traceback": traceback})
        # MultiProc releases the node even after a failure (its dependants are gone already).
        self._task_finished_cb(jobid)
        self._remove_node_dirs()


def _streamless(node):
    """A copy of ``node`` whose command line output is collected, not streamed (a worker has
    no terminal), as MultiProc sets it on its own copy."""
    node = deepcopy(node)
    node.interface.terminal_output = "allatonce"
    return node


def run_with_plugin(workflow, plugin: str, plugin_args: dict) -> None:
    """Run ``workflow`` with ``plugin``; ``n_procs`` means that many cores, not processes.

    ``MultiProc`` is :class:`PinnedMultiProcPlugin`; in-process plugins (``Linear``) run with
    the process pinned to ``n_procs`` threads; cluster plugins set their jobs' resources.
    """
    if plugin == "MultiProc":
        plugin_args = {"mp_context": worker_context(), **plugin_args}  # the fork server's
        workflow.run(plugin=PinnedMultiProcPlugin(plugin_args=plugin_args))
    elif plugin == "Linear":
        with pinned_threads(plugin_args.get("n_procs", 1)):
            workflow.run(plugin=plugin, plugin_args=plugin_args)
    else:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
