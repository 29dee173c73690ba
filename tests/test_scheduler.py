"""The MultiProc subclass: same results as Nipype's own, cached nodes cleared, threads pinned."""

from __future__ import annotations

import os

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
