"""The pre-specified primary family (Holm / Hochberg), outcome types, intention to treat."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hermesflow.config import GroupConfig
from hermesflow.group.long_table import build_long_table
from hermesflow.group.models import JOINT_TERM, fit_group_models
from hermesflow.group.multiplicity import annotate, outcome_type

PRIMARY = ["nihss_motor", "fm_motor", "mi4a_ipsi_psc", "mi4p_ipsi_psc"]


def _table(p_values: dict[str, float]) -> pd.DataFrame:
    rows = []
    for analysis_set in ("itt", "as_treated"):
        for outcome, p in p_values.items():
            rows.append({"outcome": outcome, "analysis_set": analysis_set, "term": JOINT_TERM,
                         "p_wald": p, "warnings": ""})
            rows.append({"outcome": outcome, "analysis_set": analysis_set, "term": "arm",
                         "p_wald": 0.5, "warnings": ""})
    return pd.DataFrame(rows)


def test_holm_by_hand():
    p = {"nihss_motor": 0.01, "fm_motor": 0.04, "mi4a_ipsi_psc": 0.03, "mi4p_ipsi_psc": 0.005,
         "barthel": 0.001}
    table = annotate(_table(p), GroupConfig(), JOINT_TERM)
    got = table[(table["analysis_set"] == "as_treated") & (table["term"] == JOINT_TERM)]
    got = got.set_index("outcome")["p_adjusted"]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1, running maximum.
    assert got["mi4p_ipsi_psc"] == pytest.approx(0.02)
    assert got["nihss_motor"] == pytest.approx(0.03)
    assert got["mi4a_ipsi_psc"] == pytest.approx(0.06)
    assert got["fm_motor"] == pytest.approx(0.06)
    assert np.isnan(got["barthel"])  # secondary: unadjusted, labelled
    assert set(table.loc[table["outcome"] == "barthel", "family"]) == {"secondary (unadjusted)"}
    assert set(table.loc[table["outcome"].isin(PRIMARY), "family"]) == {"primary"}
    assert table["p_adjusted"][table["term"] == "arm"].isna().all()


def test_hochberg_by_hand():
    p = {"nihss_motor": 0.04, "fm_motor": 0.045, "mi4a_ipsi_psc": 0.03, "mi4p_ipsi_psc": 0.02}
    spec = replace(GroupConfig(), multiplicity="hochberg")
    table = annotate(_table(p), spec, JOINT_TERM)
    got = table[(table["analysis_set"] == "itt") & (table["term"] == JOINT_TERM)]
    # Hochberg step-up: the largest p (0.045) is below alpha, so every hypothesis is rejected
    # at 0.05 and all adjusted values equal 0.045; Holm would give 0.08 for the smallest.
    assert got["p_adjusted"].to_numpy() == pytest.approx([0.045] * 4)
    assert got["adjustment"].iloc[0] == "hochberg over 4 primary outcomes"


@pytest.mark.parametrize("outcome, kind", [
    ("mrs", "ordinal"), ("mi4a_ipsi_n_active", "count"), ("mi4a_ipsi_n_voxels", "count"),
    ("mi4a_ipsi_psc", "continuous"), ("fm_motor", "continuous"),
])
def test_outcome_types(outcome, kind):
    assert outcome_type(outcome) == kind


def test_a_participant_without_imaging_counts_in_itt(effect_trial):
    """Intention to treat: clinical scores of every randomised participant, scanned or not."""
    tables = sorted(str(p) for p in effect_trial.out.glob(
        "sub-*/ses-*/func/*_atlas-juelich_contrast-move_roimeasures.tsv"))
    scanned = [t for t in tables if "/sub-01/" not in t]  # sub-01's imaging all failed
    long = build_long_table(scanned, effect_trial.bids, list(GroupConfig().clinical_scores))
    spec = replace(GroupConfig(), outcomes=["fm_motor", "mi4a_ipsi_psc"], n_permutations=0,
                   analysis_sets=["itt"])
    models = fit_group_models(long, spec).set_index(["outcome", "term"])
    n = effect_trial.spec.participants
    sessions = pd.concat(pd.read_csv(p, sep="\t") for p in effect_trial.bids.glob(
        "sub-*/sub-*_sessions.tsv"))
    assert models.loc[("fm_motor", "Intercept"), "n_subjects"] == n
    assert models.loc[("fm_motor", "Intercept"), "n_observations"] == len(sessions)
    assert models.loc[("mi4a_ipsi_psc", "Intercept"), "n_subjects"] == n - 1
    mrs_rows = fit_group_models(long, replace(spec, outcomes=["mrs"]))
    assert mrs_rows["outcome_type"].eq("ordinal").any()
    assert mrs_rows.loc[mrs_rows["outcome"] == "mrs", "warnings"].str.contains(
        "modelled as Gaussian: ordinal outcome").all()
