"""The scheduler's cache path: depth-first clearing, and upstream results read once per run."""

from __future__ import annotations

import os

from nipype.interfaces.base import Bunch
from nipype.interfaces.base.support import InterfaceResult
from nipype.interfaces.utility import Function, IdentityInterface
from nipype.pipeline import engine as pe
from nipype.pipeline.engine import nodes as nipype_nodes
from nipype.pipeline.engine.utils import save_resultfile

from hermesflow.cli.scheduler import PinnedMultiProcPlugin, results_read_once


def _plus(x, offset=0):
    return x + offset


def _chains(base_dir, offset: int) -> pe.Workflow:
    """Six chains source -> a -> b -> c; only c's ``offset`` changes between runs."""
    wf = pe.Workflow(name="chains", base_dir=str(base_dir))
    source = pe.Node(IdentityInterface(fields=["x"]), name="source")
    source.iterables = ("x", [1, 2, 3, 4, 5, 6])
    steps = [pe.Node(Function(["x", "offset"], ["x"], _plus), name=n) for n in "abc"]
    steps[2].inputs.offset = offset
    wf.connect([(source, steps[0], [("x", "x")]), (steps[0], steps[1], [("x", "x")]),
                (steps[1], steps[2], [("x", "x")])])
    return wf


def test_first_node_to_run_is_handed_out_before_every_cached_node_is_checked(tmp_path):
    args = {"n_procs": 2, "memory_gb": 1.0, "raise_insufficient": False}
    _chains(tmp_path, 0).run(plugin=PinnedMultiProcPlugin(plugin_args=args))
    events = []
    args["status_callback"] = lambda node, status: events.append((node.name, status))
    graph = _chains(tmp_path, 10).run(plugin=PinnedMultiProcPlugin(plugin_args=args))
    first = next(i for i, (_, status) in enumerate(events) if status == "start")
    # Depth first: two chains' cached nodes (a, b; Nipype drops the identity source) give
    # the two workers their c; breadth first would clear all 12 cached nodes before.
    assert events[:first] == [("a", "end"), ("b", "end")] * 2
    assert sorted(n for n, s in events if s == "start") == ["c"] * 6
    assert len([e for e in events if e[1] == "end"]) == 18
    assert sorted(n.result.outputs.x for n in graph.nodes() if n.name == "c") == [
        11, 12, 13, 14, 15, 16]


def _result(folder, value) -> str:
    outputs = Bunch(x=value)
    save_resultfile(InterfaceResult(interface=None, runtime=Bunch(cwd=str(folder)),
                                    outputs=outputs), str(folder), "node")
    return str(folder / "result_node.pklz")


def test_results_are_read_once_while_unchanged(tmp_path):
    path = _result(tmp_path, 1)
    original = nipype_nodes._load_resultfile
    with results_read_once():
        first = nipype_nodes._load_resultfile(path)
        assert nipype_nodes._load_resultfile(path) is first
        os.utime(path, ns=(1, 1))      # rewritten by a rerun (another time stamp)
        again = nipype_nodes._load_resultfile(path)
        assert again is not first and again.outputs.x == 1
        _result(tmp_path, 2)           # new content, new inode
        assert nipype_nodes._load_resultfile(path).outputs.x == 2
    assert nipype_nodes._load_resultfile is original, "Nipype's reader restored"
