"""The MultiProc subclass: same results as Nipype's own, cached nodes cleared, threads pinned."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from nipype.interfaces.utility import Function, IdentityInterface
from nipype.pipeline import engine as pe

from hermesflow.cli.scheduler import THREAD_VARIABLES, PinnedMultiProcPlugin, pinned_threads


def _square(x):
    return x * x


def _total(values):
    return sum(values)


def _threads_seen(x):
    import os

    from threadpoolctl import threadpool_info

    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return [x, int(os.environ["OMP_NUM_THREADS"]),
            int(os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"]), blas]


def _graph(base_dir, name="graph"):
    """source (3 iterables) -> square -> JoinNode total."""
    wf = pe.Workflow(name=name, base_dir=str(base_dir))
    source = pe.Node(IdentityInterface(fields=["x"]), name="source")
    source.iterables = ("x", [1, 2, 3])
    square = pe.Node(Function(["x"], ["y"], _square), name="square")
    total = pe.JoinNode(Function(["values"], ["total"], _total), joinsource="source",
                        joinfield=["values"], name="total")
    wf.connect([(source, square, [("x", "x")]), (square, total, [("y", "values")])])
    return wf


class _Calls:
    def __init__(self):
        self.calls = []

    def __call__(self, node, status):
        self.calls.append((node.name, status))


def _results(wf, plugin) -> dict[str, object]:
    graph = wf.run(plugin=plugin)
    # One entry per expanded node: the name and the iterables it descends from.
    return {f"{node.fullname}{node.parameterization}": node.result.outputs.get()
            for node in graph.nodes()}


def _args(callback=None, n_procs=2):
    args = {"n_procs": n_procs, "memory_gb": 1.0, "raise_insufficient": False}
    if callback is not None:
        args["status_callback"] = callback
    return args


def test_same_results_as_stock_multiproc(tmp_path):
    from nipype.pipeline.plugins.multiproc import MultiProcPlugin

    stock = _results(_graph(tmp_path / "stock"), MultiProcPlugin(plugin_args=_args()))
    ours = _results(_graph(tmp_path / "ours"), PinnedMultiProcPlugin(plugin_args=_args()))
    assert ours == stock
    assert [v for k, v in ours.items() if "total" in k] == [{"total": 14}]
    assert len(ours) == 4


def test_cached_rerun_submits_nothing_and_gives_the_same_results(tmp_path):
    first = _results(_graph(tmp_path), PinnedMultiProcPlugin(plugin_args=_args()))
    calls = _Calls()
    again = _results(_graph(tmp_path), PinnedMultiProcPlugin(plugin_args=_args(calls)))
    assert again == first
    # Every node finished from its cache: none was started in a worker.
    assert not [c for c in calls.calls if c[1] != "end"]
    assert len(calls.calls) == len(first)


def test_a_changed_input_reruns_only_what_depends_on_it(tmp_path):
    _results(_graph(tmp_path), PinnedMultiProcPlugin(plugin_args=_args()))
    wf = _graph(tmp_path)
    wf.get_node("source").iterables = ("x", [1, 2, 4])
    calls = _Calls()
    results = _results(wf, PinnedMultiProcPlugin(plugin_args=_args(calls)))
    started = sorted(name for name, status in calls.calls if status == "start")
    assert started == ["square", "total"]
    assert [v for k, v in results.items() if "total" in k] == [{"total": 21}]


@pytest.mark.parametrize("n_procs", [1, 2])
def test_a_node_runs_with_its_n_procs_threads(tmp_path, n_procs):
    wf = pe.Workflow(name="threads", base_dir=str(tmp_path))
    node = pe.Node(Function(["x"], ["seen"], _threads_seen), name="seen", n_procs=n_procs)
    node.inputs.x = 0
    wf.add_nodes([node])
    graph = wf.run(plugin=PinnedMultiProcPlugin(plugin_args=_args(n_procs=2)))
    _, omp, itk, blas = next(iter(graph.nodes())).result.outputs.seen
    assert (omp, itk) == (n_procs, n_procs)
    assert blas and set(blas) == {n_procs}


def test_pinned_threads_restores_the_environment(monkeypatch):
    from threadpoolctl import threadpool_info

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    before = {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}
    with pinned_threads(1):
        assert {os.environ[name] for name in THREAD_VARIABLES} == {"1"}
        assert {pool["num_threads"] for pool in threadpool_info()} <= {1}
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ
    assert {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()} == before


def test_in_process_plugins_run_pinned_to_n_procs(tmp_path):
    from hermesflow.cli.scheduler import run_with_plugin

    wf = pe.Workflow(name="linear", base_dir=str(tmp_path))
    node = pe.Node(Function(["x"], ["seen"], _threads_seen), name="seen")
    node.inputs.x = 0
    wf.add_nodes([node])
    run_with_plugin(wf, "Linear", _args(n_procs=1))
    result = pe.Node(Function(["x"], ["seen"], _threads_seen), name="seen",
                     base_dir=str(tmp_path / "linear")).result
    _, omp, itk, blas = result.outputs.seen
    assert (omp, itk) == (1, 1)
    assert set(blas) <= {1}


class _CountingWake(threading.Event):
    """The loop's wake-up event, counting the waits that ran out instead of being woken."""

    def __init__(self):
        super().__init__()
        self.waits = self.ran_out = 0

    def wait(self, timeout=None):
        woken = super().wait(timeout)
        self.waits += 1
        self.ran_out += not woken
        return woken


def test_the_loop_wakes_when_a_node_ends_not_at_the_next_poll(tmp_path):
    wf = _graph(tmp_path)
    # A poll this long would be a minute per pass: every wait must end by a node ending.
    wf.config["execution"]["poll_sleep_duration"] = 60
    plugin = PinnedMultiProcPlugin(plugin_args=_args())
    plugin._wake = wake = _CountingWake()
    results = _results(wf, plugin)
    assert [v for k, v in results.items() if "total" in k] == [{"total": 14}]
    assert wake.ran_out == 0
    assert 1 <= wake.waits <= len(results)


def _wait_for(flag):
    import time
    from pathlib import Path

    for _ in range(600):
        if Path(flag).exists():
            return True
        time.sleep(0.05)
    return False


def _raise_flag(flag):
    from pathlib import Path

    Path(flag).write_text("up")
    return flag


def test_main_process_nodes_run_while_every_worker_is_busy(tmp_path):
    # The only worker waits for a file that a main-process node writes: had that node
    # waited for a free slot, as in MultiProc, the worker would give up after 30 s.
    wf = pe.Workflow(name="slots", base_dir=str(tmp_path))
    waiter = pe.Node(Function(["flag"], ["seen"], _wait_for), name="waiter")
    raiser = pe.Node(Function(["flag"], ["flag"], _raise_flag), name="raiser",
                     run_without_submitting=True)
    waiter.inputs.flag = raiser.inputs.flag = str(tmp_path / "flag")
    wf.add_nodes([waiter, raiser])
    graph = wf.run(plugin=PinnedMultiProcPlugin(plugin_args=_args(n_procs=1)))
    seen = {node.name: node.result.outputs.get() for node in graph.nodes()}
    assert seen["waiter"] == {"seen": True}


def _die(x):
    import os

    os._exit(3)


def test_a_worker_that_dies_fails_its_node_instead_of_hanging(tmp_path):
    def give_up(signum, frame):
        raise TimeoutError("the run hangs on a dead worker")

    wf = pe.Workflow(name="dies", base_dir=str(tmp_path))
    node = pe.Node(Function(["x"], ["y"], _die), name="die")
    node.inputs.x = 1
    wf.add_nodes([node])
    wf.config["execution"]["crashdump_dir"] = str(tmp_path)
    calls = _Calls()
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(120)
    try:
        with pytest.raises(RuntimeError, match="BrokenProcessPool|terminated abruptly"):
            wf.run(plugin=PinnedMultiProcPlugin(plugin_args=_args(calls)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert calls.calls == [("die", "start"), ("die", "exception")]


def _double(x):
    return 2 * x


def _sums(values):
    return sum(sum(v) for v in values)


def test_mapnodes_give_the_same_results_as_stock_multiproc(tmp_path):
    from nipype.pipeline.plugins.multiproc import MultiProcPlugin

    def graph(base_dir):
        wf = pe.Workflow(name="mapped", base_dir=str(base_dir))
        source = pe.Node(IdentityInterface(fields=["xs"]), name="source")
        source.iterables = ("xs", [[1, 2, 3], [4, 5]])
        double = pe.MapNode(Function(["x"], ["y"], _double), iterfield=["x"], name="double")
        total = pe.JoinNode(Function(["values"], ["total"], _sums), joinsource="source",
                            joinfield=["values"], name="total")
        wf.connect([(source, double, [("xs", "x")]), (double, total, [("y", "values")])])
        return wf

    def results(wf, plugin):
        return sorted((f"{node.fullname}{node.parameterization}", repr(node.result.outputs))
                      for node in wf.run(plugin=plugin).nodes())

    stock = results(graph(tmp_path / "stock"), MultiProcPlugin(plugin_args=_args()))
    ours = results(graph(tmp_path / "ours"), PinnedMultiProcPlugin(plugin_args=_args()))
    again = results(graph(tmp_path / "ours"), PinnedMultiProcPlugin(plugin_args=_args()))
    assert ours == stock == again
    assert any("'total': 30" in outputs or "total = 30" in outputs for _, outputs in ours)


def _frozen(x):
    import gc

    return gc.get_freeze_count()


def test_objects_alive_at_the_start_are_frozen_for_the_run_only(tmp_path):
    """The main process's collections skip what existed before the run (the graph, the
    modules), and an in-process caller (these tests) gets every object back after it."""
    import gc

    wf = pe.Workflow(name="frozen", base_dir=str(tmp_path))
    source = pe.Node(IdentityInterface(fields=["x"]), name="source")
    source.iterables = ("x", [1, 2])
    probe = pe.Node(Function(["x"], ["n"], _frozen), name="probe", run_without_submitting=True)
    wf.connect(source, "x", probe, "x")
    assert gc.get_freeze_count() == 0
    graph = wf.run(plugin=PinnedMultiProcPlugin(plugin_args=_args()))
    seen = [node.result.outputs.n for node in graph.nodes() if node.name == "probe"]
    assert len(seen) == 2 and min(seen) > 10_000
    assert gc.get_freeze_count() == 0


def _refaults(megabytes):
    """Page faults of touching a new array of ``megabytes`` after freeing one as large."""
    import resource

    import numpy as np

    np.ones(megabytes << 17).sum()  # float64: 2**17 values per MB; freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(megabytes << 17).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_reuse_the_memory_their_nodes_freed(tmp_path):
    import inspect
    import subprocess
    import sys
    import textwrap

    # A fresh interpreter as glibc starts it: a 64 MB array after another is faulted in anew.
    source = textwrap.dedent(inspect.getsource(_refaults))
    plain = subprocess.run([sys.executable, "-c", f"{source}\nprint(_refaults(64))"],
                           check=True, capture_output=True, text=True)
    assert int(plain.stdout) >= 32  # 2 MB huge pages at the least
    node = pe.Node(Function(input_names=["megabytes"], output_names=["faults"],
                            function=_refaults), name="refault", base_dir=str(tmp_path))
    node.inputs.megabytes = 64
    wf = pe.Workflow(name="alloc", base_dir=str(tmp_path))
    wf.add_nodes([node])
    graph = wf.run(plugin=PinnedMultiProcPlugin(plugin_args=_args()))
    (done,) = graph.nodes()
    assert done.result.outputs.faults < 8
