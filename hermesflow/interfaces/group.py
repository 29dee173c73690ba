"""The group stage: one long table of every session's measures, then the trial's models.

The long table has one row per participant x session x outcome.  ROI outcomes are named
``<roi>_<hemi>_<measure>`` (``mi4p_ipsi_psc``) and ``<roi>_li``; clinical outcomes keep their
column name in ``sessions.tsv`` (``fm_motor``).  Participant columns (arm, treated, age, sex,
lesion side) and ``months`` are joined to every row.
"""

from __future__ import annotations

import dataclasses
import json
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

from hermesflow.atlases import atlas_label
from hermesflow.bids.layout import read_participants, read_sessions
from hermesflow.config import Config, GroupConfig
from hermesflow.derivatives.naming import group_file
from hermesflow.derivatives.reports import group_report
from hermesflow.derivatives.writing import write_json, write_tsv
from hermesflow.stats import MODEL_COLUMNS, fit_group_models, safety_tables

REPORT_OUTCOMES = ["mi4a_ipsi_psc", "mi4p_ipsi_psc", "nihss_motor", "fm_motor"]
DEFAULT_ROI_MEASURES = ("effect", "psc", "peak_t", "n_active", "li")
LONG_COLUMNS = ["participant_id", "session_id", "months", "arm", "treated", "age", "sex",
                "lesion_side", "outcome", "value"]


def roi_long_rows(roi_tables: list[str]) -> pd.DataFrame:
    """Session ROI tables as ``participant_id, session_id, outcome, value`` rows."""
    frames = [pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
              for path in roi_tables]
    roi = pd.concat(frames, ignore_index=True)
    roi["outcome"] = roi["roi"] + "_" + roi["hemi"] + "_" + roi["measure"]
    roi.loc[roi["measure"] == "li", "outcome"] = roi["roi"] + "_li"
    return roi[["participant_id", "session_id", "outcome", "value"]]


def build_long_table(roi_tables: list[str], bids_dir: str | Path,
                     clinical_scores: list[str]) -> pd.DataFrame:
    """Join ROI measures with clinical scores, session times and participant columns."""
    roi = roi_long_rows(roi_tables)
    participants = read_participants(bids_dir)
    subjects = sorted(set(roi["participant_id"]))
    sessions = pd.concat([read_sessions(bids_dir, s.removeprefix("sub-")) for s in subjects],
                         ignore_index=True)
    scores = [c for c in clinical_scores if c in sessions.columns]
    clinical = sessions.melt(id_vars=["participant_id", "session_id"], value_vars=scores,
                             var_name="outcome", value_name="value")
    # Clinical scores count for the sessions that were scanned, and for those that were not.
    long = pd.concat([roi, clinical], ignore_index=True)
    long = long.merge(sessions[["participant_id", "session_id", "months"]],
                      on=["participant_id", "session_id"], how="left")
    keep = [c for c in LONG_COLUMNS if c in participants.columns or c == "participant_id"]
    long = long.merge(participants[keep], on="participant_id", how="left")
    columns = [c for c in LONG_COLUMNS if c in long.columns]
    return long[columns].sort_values(["outcome", "participant_id", "months"],
                                     kind="stable").reset_index(drop=True)


def default_outcomes(long_table: pd.DataFrame, spec: GroupConfig) -> list[str]:
    """The configured outcomes, else every ROI measure of interest and the clinical scores."""
    if spec.outcomes:
        return list(spec.outcomes)
    present = list(dict.fromkeys(long_table["outcome"]))
    rois = [o for o in present if o not in spec.clinical_scores
            and any(o.endswith(f"_{measure}") for measure in DEFAULT_ROI_MEASURES)]
    return rois + [c for c in spec.clinical_scores if c in present]


def run_group(roi_tables: list[str], bids_dir: str, output_dir: str, config: Config) -> dict:
    """Build the long table, fit the models, write both (and the safety tables)."""
    spec = config.group
    task, atlas = config.workflow.task, atlas_label(config.workflow.atlas)
    long = build_long_table(roi_tables, bids_dir, spec.clinical_scores)
    outputs = {"long_table": str(write_tsv(group_file(output_dir, task, atlas, "long"), long))}
    write_json(group_file(output_dir, task, atlas, "long", ".json"), {
        "outcome": {"Description": "ROI measure <roi>_<hemi>_<measure> or clinical score"},
        "value": {"Description": "Value of the outcome at that session"},
        "months": {"Description": "Time since stroke", "Units": "month"},
    })
    model_spec = dataclasses.replace(spec, outcomes=default_outcomes(long, spec))
    models = fit_group_models(long, model_spec)
    outputs["models"] = str(write_tsv(group_file(output_dir, task, atlas, "mixedlm"), models))
    write_json(group_file(output_dir, task, atlas, "mixedlm", ".json"), {
        "Description": "Linear mixed models value ~ arm * time, random intercept per participant "
                       "(statsmodels MixedLM), one per outcome and analysis set.",
        "TimeCoding": spec.time,
        "AnalysisSets": {"itt": "arm as randomised (intention to treat)",
                         "as_treated": "treated yes/no"},
        "NPermutations": spec.n_permutations,
        "Seed": spec.seed,
        "Columns": MODEL_COLUMNS,
    })
    events_path = Path(bids_dir) / "phenotype" / "adverse_events.tsv"
    tables = {}
    if events_path.exists():
        events = pd.read_csv(events_path, sep="\t", dtype={"participant_id": str})
        tables = safety_tables(events, read_participants(bids_dir))
        for name, table in tables.items():
            outputs[f"safety_{name}"] = str(write_tsv(
                group_file(output_dir, task, atlas, f"safety{name.replace('_', '')}"), table))
    outputs["report"] = str(group_report(
        group_file(output_dir, task, atlas, "report", ".html"), long=long, models=models,
        figure_outcomes=REPORT_OUTCOMES, safety=tables))
    return outputs


class _GroupModelsInputSpec(BaseInterfaceInputSpec):
    roi_tables = InputMultiObject(File(exists=True), mandatory=True)
    bids_dir = Directory(mandatory=True)
    output_dir = Directory(mandatory=True)
    config = File(mandatory=True, desc="the run's TOML configuration")
    n_expected = traits.Int(desc="sessions expected (for the log)")


class _GroupModelsOutputSpec(TraitedSpec):
    long_table = File(exists=True)
    models = File(exists=True)


class GroupModels(SimpleInterface):
    """Long table + mixed models of all sessions (the JoinNode's consumer)."""

    input_spec = _GroupModelsInputSpec
    output_spec = _GroupModelsOutputSpec

    def _run_interface(self, runtime):
        config = Config.load(self.inputs.config)
        outputs = run_group(list(self.inputs.roi_tables), self.inputs.bids_dir,
                            self.inputs.output_dir, config)
        self._results["long_table"] = outputs["long_table"]
        self._results["models"] = outputs["models"]
        (Path(runtime.cwd) / "outputs.json").write_text(json.dumps(outputs, indent=2))
        return runtime
