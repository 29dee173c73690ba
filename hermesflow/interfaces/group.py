"""Nipype doors to the group stage: compute the tables, write them, draw the report.

``GroupModels`` (:func:`hermesflow.group.run.run_group`) keeps its tables in its own folder;
``GroupSink`` (:func:`hermesflow.derivatives.group_sink.sink_group`) copies them into
OUTPUT_DIR/group; ``GroupReport`` draws the page from the tables as written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.config import Config
from hermesflow.derivatives.group_sink import read_group_tables, sink_group, write_group_tables
from hermesflow.derivatives.reports import TrialRecords, group_report
from hermesflow.group.long_table import read_sidecar_roles, report_outcomes
from hermesflow.group.run import run_group


class _GroupModelsInputSpec(BaseInterfaceInputSpec):
    roi_tables = InputMultiObject(File(exists=True), mandatory=True)
    bids_dir = Directory(mandatory=True)
    config = File(mandatory=True, desc="the run's TOML configuration")
    n_expected = traits.Int(desc="sessions expected (for the log)")


class _GroupModelsOutputSpec(TraitedSpec):
    files = traits.Dict(traits.Str, File(exists=True),
                        desc="'<desc>.<ext>' -> table in this node's folder")
    long_table = File(exists=True)
    models = File(exists=True)


class GroupModels(SimpleInterface):
    """Long table + mixed models of all sessions (the JoinNode's consumer); writes no output."""

    input_spec = _GroupModelsInputSpec
    output_spec = _GroupModelsOutputSpec

    def _run_interface(self, runtime):
        config = Config.load(self.inputs.config)
        tables = run_group(list(self.inputs.roi_tables), self.inputs.bids_dir, config,
                           participant_ids=list(config.execution.participant_label))
        files = write_group_tables(runtime.cwd, tables.by_file())
        self._results["files"] = files
        self._results["long_table"] = files["long.tsv"]
        self._results["models"] = files["mixedlm.tsv"]
        return runtime


class _GroupSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True)
    task = traits.Str(mandatory=True)
    atlas = traits.Str(mandatory=True, desc="atlas label of the file names")
    files = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                        desc="'<desc>.<ext>' -> file to copy")


class _GroupSinkOutputSpec(TraitedSpec):
    written = traits.Dict(traits.Str, File(exists=True),
                          desc="'<desc>.<ext>' -> file as written in OUTPUT_DIR/group")


class GroupSink(SimpleInterface):
    """Copy group files into OUTPUT_DIR/group with their BIDS names (run every time)."""

    input_spec = _GroupSinkInputSpec
    output_spec = _GroupSinkOutputSpec

    def _run_interface(self, runtime):
        self._results["written"] = sink_group(self.inputs.output_dir, self.inputs.task,
                                              self.inputs.atlas, dict(self.inputs.files))
        return runtime


class _GroupReportInputSpec(BaseInterfaceInputSpec):
    tables = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                         desc="the group tables as written ('long.tsv', 'mixedlm.tsv', ...)")
    bids_dir = Directory(desc="the raw dataset: participants and sessions tables (trial flow)")
    output_dir = Directory(desc="OUTPUT_DIR: the session reports linked from the page")
    primary = traits.List(traits.Str, desc="the primary outcomes (default: the report's)")


class _GroupReportOutputSpec(TraitedSpec):
    files = traits.Dict(traits.Str, File(exists=True), desc="{'report.html': the page}")


class GroupReport(SimpleInterface):
    """Draw the group report page in this node's folder from the written tables."""

    input_spec = _GroupReportInputSpec
    output_spec = _GroupReportOutputSpec

    def _run_interface(self, runtime):
        long, models, safety = read_group_tables(dict(self.inputs.tables))
        # The long table's sidecar carries the ROI measures' roles (Model, Report).
        shown = report_outcomes(long, read_sidecar_roles(self.inputs.tables["long.json"]))
        page = group_report(Path(runtime.cwd) / "report.html", long=long, models=models,
                            figure_outcomes=shown.figures, table_outcomes=shown.table,
                            safety=safety, records=self._records(),
                            primary=list(self.inputs.primary or []),
                            page_dir=self._page_dir())
        self._results["files"] = {"report.html": str(page)}
        return runtime

    def _page_dir(self) -> Path | None:
        """Where the page is read from: OUTPUT_DIR/group, where the report sink copies it."""
        written = self.inputs.tables.get("long.tsv")
        return Path(written).parent if written else None

    def _records(self) -> TrialRecords:
        """participants.tsv, every sessions.tsv, the sessions' QC and their report pages."""
        from hermesflow.bids.layout import read_participants, read_sessions

        records = TrialRecords()
        qc = self.inputs.tables.get("sessionqc.tsv")
        if qc:
            records.session_qc = pd.read_csv(qc, sep="\t", keep_default_na=False,
                                             na_values=["n/a"],
                                             dtype={"participant_id": str, "session_id": str})
        if self.inputs.bids_dir:
            participants = read_participants(self.inputs.bids_dir)
            records.participants = participants
            records.sessions = pd.concat(
                [read_sessions(self.inputs.bids_dir, p.removeprefix("sub-"))
                 for p in participants["participant_id"]], ignore_index=True)
        if self.inputs.output_dir:
            out = Path(self.inputs.output_dir)
            records.session_reports = {
                (page.parts[-4], page.parts[-3]): str(page)
                for page in sorted(out.glob("sub-*/ses-*/func/*_report.html"))}
        return records
