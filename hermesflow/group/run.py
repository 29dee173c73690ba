"""The group stage end to end: long table -> models -> safety tables, returned (not written).

:func:`run_group` computes; the group sink (:mod:`hermesflow.derivatives.group_sink`) writes
what it returns into OUTPUT_DIR, and the report is drawn from the written tables afterwards.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hermesflow.bids.layout import read_participants
from hermesflow.config import Config
from hermesflow.group import MODEL_COLUMNS, fit_group_models, safety_tables
from hermesflow.group.long_table import build_long_table, default_outcomes, read_measure_roles
from hermesflow.group.qc import exclude_failed_sessions, session_qc
from hermesflow.group.satterthwaite import inference_description

LONG_SIDECAR = {
    "outcome": {"Description": "ROI measure <roi>_<hemi>_<measure> or clinical score"},
    "value": {"Description": "Value of the outcome at that session"},
    "months": {"Description": "Time since stroke", "Units": "month"},
}


@dataclasses.dataclass(frozen=True)
class GroupTables:
    """What the group stage produces: the tables and their JSON sidecars.

    Attributes
    ----------
    long
        One row per participant x session x outcome.
    models
        One row per outcome x analysis set x term (:data:`~hermesflow.group.MODEL_COLUMNS`).
    safety
        Adverse-event tables by name (``by_window``, ``by_event``); empty without
        ``phenotype/adverse_events.tsv``.
    long_sidecar, models_sidecar
        The JSON sidecars of ``long`` and ``models``.
    session_qc
        One row per session with imaging: its motion QC and whether it was ``excluded``
        from the models (``[qc] exclude``).
    """

    long: pd.DataFrame
    models: pd.DataFrame
    safety: dict[str, pd.DataFrame]
    long_sidecar: dict
    models_sidecar: dict
    session_qc: pd.DataFrame | None = None

    def by_file(self) -> dict[str, pd.DataFrame | dict]:
        """Every table keyed ``<desc>.<ext>`` (``long.tsv``, ``mixedlm.json``, ...).

        Safety tables are keyed ``safety_<name>.tsv``; the sink drops the underscores from
        the BIDS ``desc`` (``desc-safetybywindow``), the report keeps the name.
        """
        files: dict[str, pd.DataFrame | dict] = {
            "long.tsv": self.long, "long.json": self.long_sidecar,
            "mixedlm.tsv": self.models, "mixedlm.json": self.models_sidecar,
        }
        files.update({f"safety_{name}.tsv": table for name, table in self.safety.items()})
        if self.session_qc is not None:
            files["sessionqc.tsv"] = self.session_qc
        return files


def models_sidecar(config: Config) -> dict:
    """The JSON sidecar of the model table: how the models were specified."""
    spec = config.group
    return {
        "Description": "Linear mixed models value ~ arm * time, random intercept per participant "
                       "(statsmodels MixedLM), one per outcome and analysis set.",
        "TimeCoding": spec.time,
        "AnalysisSets": {"itt": "arm as randomised (intention to treat)",
                         "as_treated": "treated yes/no"},
        "Inference": inference_description(spec.ddf),
        "NPermutations": spec.n_permutations,
        "Seed": spec.seed,
        "Columns": MODEL_COLUMNS,
    }


def run_group(roi_tables: list[str], bids_dir: str, config: Config,
              participant_ids: list[str] | None = None) -> GroupTables:
    """Build the long table, fit the models, tabulate safety; write nothing.

    Parameters
    ----------
    roi_tables
        Every session's ROI table (as written in OUTPUT_DIR).
    bids_dir
        The raw dataset: participants and sessions tables, ``phenotype/adverse_events.tsv``.
    config
        The run's configuration (its ``group`` section specifies the models).
    participant_ids
        The randomised participants to analyse (default: all of ``participants.tsv``); their
        clinical scores enter the intention-to-treat models whatever happened to the imaging.

    Returns
    -------
    GroupTables
    """
    spec = config.group
    long = build_long_table(roi_tables, bids_dir, spec.clinical_scores,
                            extra_columns=[*spec.strata, *spec.covariates],
                            participant_ids=participant_ids)
    # Sessions over the motion limits: recorded always, left out of the models on request.
    long, qc = exclude_failed_sessions(long, session_qc(roi_tables), spec.clinical_scores,
                                       config.qc.exclude)
    roles = read_measure_roles(roi_tables)  # from the ROI tables' sidecars
    model_spec = dataclasses.replace(spec, outcomes=default_outcomes(long, spec, roles))
    models = fit_group_models(long, model_spec,
                              source=str(Path(bids_dir) / "participants.tsv"))
    events_path = Path(bids_dir) / "phenotype" / "adverse_events.tsv"
    safety: dict[str, pd.DataFrame] = {}
    if events_path.exists():
        events = pd.read_csv(events_path, sep="\t", dtype={"participant_id": str})
        safety = safety_tables(events, read_participants(bids_dir))
    return GroupTables(long=long, models=models, safety=dict(safety),
                       long_sidecar={**{key: dict(value) for key, value in LONG_SIDECAR.items()},
                                     "Measures": roles},
                       models_sidecar=models_sidecar(config), session_qc=qc)
