"""The group stage end to end: long table -> models -> safety tables -> report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hermesflow.bids.layout import read_participants
from hermesflow.config import Config
from hermesflow.derivatives.naming import group_file
from hermesflow.derivatives.reports import group_report
from hermesflow.derivatives.writing import write_json, write_tsv
from hermesflow.group import MODEL_COLUMNS, fit_group_models, safety_tables
from hermesflow.group.long_table import REPORT_OUTCOMES, build_long_table, default_outcomes
from hermesflow.roi.atlases import atlas_label


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
