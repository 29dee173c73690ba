"""Every workflow factory builds (without running) and exposes its documented doors."""

from __future__ import annotations

import networkx as nx

from hermesflow.config import Config
from hermesflow.workflows.base import init_group_wf, init_hermesflow_wf, init_participant_wf
from hermesflow.workflows.session import init_session_wf


def _config(tmp_path) -> Config:
    config = Config()
    config.execution.bids_dir = str(tmp_path / "bids")
    config.execution.output_dir = str(tmp_path / "out")
    config.execution.work_dir = str(tmp_path / "work")
    config.workflow.fmriprep_dir = str(tmp_path / "fmriprep")
    return config


def test_session_wf_doors(tmp_path):
    workflow = init_session_wf(config=_config(tmp_path))
    inputnode = workflow.get_node("inputnode")
    outputnode = workflow.get_node("outputnode")
    assert set(inputnode.inputs.copyable_trait_names()) == {"subject", "session", "fmriprep_dir"}
    assert "roi_table" in outputnode.outputs.copyable_trait_names()
    assert {"gather", "glm", "roi", "sink"} <= set(workflow.list_node_names())


def test_participant_wf_iterates_over_each_subjects_sessions(tmp_path):
    pairs = [("01", "01"), ("01", "06"), ("02", "01")]
    workflow = init_participant_wf(config=_config(tmp_path), pairs=pairs)
    assert workflow.get_node("subjectsource").iterables == ("subject", ["01", "02"])
    source = workflow.get_node("sessionsource")
    assert source.itersource == ("subjectsource", "subject")
    assert source.iterables == [("session", {"01": ["01", "06"], "02": ["01"]})]
    names = {node.fullname for node in workflow._create_flat_graph().nodes}
    # One node per session and atlas (roi: measures and page) and its sink.
    stages = ("inputnode", "gather", "lesion", "glm", "maps_sink", "atlassource", "roi",
              "sink", "outputnode", "qc", "session_figures")
    assert names == {f"hermesflow_participant_wf.{n}" for n in ["subjectsource", "sessionsource"]
                     } | {f"hermesflow_participant_wf.session_wf.{n}" for n in stages}
    expanded = workflow._create_flat_graph()
    from nipype.pipeline.engine.utils import generate_expanded_graph

    glms = [n for n in generate_expanded_graph(expanded).nodes if n.name == "glm"]
    assert len(glms) == len(pairs), "one GLM per existing subject x session, no more"


def test_group_wf_joins_every_table(tmp_path):
    config = _config(tmp_path)
    tables = [str(tmp_path / f"t{i}.tsv") for i in range(3)]
    workflow = init_group_wf(config=config, roi_tables=tables, config_file="c.toml")
    group = workflow.get_node("group_models")
    assert group.joinsource == "sessionsource"
    assert group.joinfield == ["roi_tables"]
    config.execution.analysis_level = "group"
    top = init_hermesflow_wf(config, roi_tables=tables, config_file="c.toml")
    assert top.base_dir == config.execution.work_dir


def test_group_tables_are_written_before_and_without_the_report(tmp_path):
    workflow = init_group_wf(config=_config(tmp_path), roi_tables=["a.tsv"], config_file="c.toml")
    graph = workflow._graph
    names = {node.name: node for node in graph.nodes}
    assert set(names) == {"sessionsource", "group_models", "group_sink", "group_report",
                          "report_sink"}
    assert nx.ancestors(graph, names["group_sink"]) == {names["sessionsource"],
                                                        names["group_models"]}
    assert names["group_sink"] in nx.ancestors(graph, names["group_report"])
    assert nx.ancestors(graph, names["report_sink"]) >= {names["group_report"],
                                                         names["group_sink"]}
    assert names["group_sink"].inputs.output_dir == str(tmp_path / "out")
