"""Randomisation inference: the batched GLS equals direct GLS; relabellings; p-values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hermesflow.config import GroupConfig
from hermesflow.group import fit_group_models
from hermesflow.group.design import build_design
from hermesflow.group.mixed import fit_mixed
from hermesflow.group.models import JOINT_TERM
from hermesflow.group.randomisation import GLSRandomisation, relabellings
from hermesflow.simulation.roi_table import simulate_roi_trial


def _direct_gls(data, labels, cov_re, scale):
    """GLS z and joint chi2 of the arm terms by the textbook formula on the full matrix V."""
    x = data.full_design(labels)
    n = len(data.y)
    v = np.zeros((n, n))
    for i in range(data.n_subjects):
        idx = np.flatnonzero(data.subject == i)
        zi = data.z[idx]
        v[np.ix_(idx, idx)] = zi @ cov_re @ zi.T + scale * np.eye(len(idx))
    vi = np.linalg.inv(v)
    cov = np.linalg.inv(x.T @ vi @ x)
    beta = cov @ x.T @ vi @ data.y
    names = data.term_names
    arm = [names.index(t) for t in data.arm_names]
    inter = arm[1:]
    z = beta[arm] / np.sqrt(np.diag(cov)[arm])
    chi2 = beta[inter] @ np.linalg.solve(cov[np.ix_(inter, inter)], beta[inter])
    return z, chi2


@pytest.mark.parametrize("time,slope", [("categorical", False), ("linear", True)])
def test_batched_gls_equals_direct_gls(time, slope):
    table = simulate_roi_trial(17, missing=0.2, sd_slope=0.8, seed=11)
    data = build_design(table, "mi4p_ipsi_effect", "itt", time=time, covariates=["age"],
                        random_slope=slope)
    null = fit_mixed(data.y, data.x_fixed, data.z, data.subject)
    assert null.converged
    engine = GLSRandomisation(data, null.cov_re, null.scale)
    rng = np.random.default_rng(0)
    labels = np.array([rng.permutation(data.labels) for _ in range(5)])
    z, chi2, ok = engine.statistics(labels)
    assert ok.all()
    for p in range(5):
        z_ref, chi2_ref = _direct_gls(data, labels[p], null.cov_re, null.scale)
        np.testing.assert_allclose(z[p], z_ref, rtol=1e-8)
        assert chi2[p] == pytest.approx(chi2_ref, rel=1e-8)


def test_relabellings_keep_counts_within_strata():
    ids = [f"sub-{i:02d}" for i in range(12)]
    labels = pd.Series([1.0] * 8 + [0.0] * 4, index=ids)
    strata = pd.DataFrame({"lesion_side": ["L"] * 6 + ["R"] * 6}, index=ids)
    perms = relabellings(labels, 500, strata=strata, seed=3, exact=False)
    assert perms.shape == (500, 12) and not perms.attrs["exact"]
    assert (perms.iloc[:, :6].sum(axis=1) == 6).all()   # L stratum: six msc
    assert (perms.iloc[:, 6:].sum(axis=1) == 2).all()   # R stratum: two msc
    again = relabellings(labels, 500, strata=strata, seed=3, exact=False)
    pd.testing.assert_frame_equal(perms, again)
    # the whole distribution is C(6, 6) x C(6, 2) = 15 labellings: enumerated once each
    exact = relabellings(labels, 500, strata=strata)
    assert exact.attrs["exact"] and len(exact.drop_duplicates()) == len(exact) == 15
    assert (exact.iloc[:, 6:].sum(axis=1) == 2).all()
    # without strata, labels move across the whole trial
    free = relabellings(labels, 500, seed=3, exact=False)
    assert (free.sum(axis=1) == 8).all() and (free.iloc[:, :6].sum(axis=1) != 6).any()


def test_randomisation_columns_filled_for_arm_terms_only():
    table = simulate_roi_trial(31, outcomes=["mi4p_ipsi_effect", "fm_motor"], effect=2.5,
                               seed=21)
    spec = GroupConfig(n_permutations=999, analysis_sets=["itt"], strata=["lesion_side"])
    result = fit_group_models(table, spec).set_index(["outcome", "term"])
    model = result.loc["mi4p_ipsi_effect"]
    arm_terms = ["arm", "arm:time[ses-06]", "arm:time[ses-24]", JOINT_TERM]
    assert model.loc[arm_terms, "p_randomisation"].notna().all()
    assert model.loc[["Intercept", "time[ses-06]", "time[ses-24]"], "p_randomisation"] \
        .isna().all()
    assert (model["n_permutations"] == 999).all()
    # a strong effect: the smallest attainable p, 1 / (1 + 999)
    assert model.loc["arm:time[ses-24]", "p_randomisation"] == pytest.approx(0.001)
    p = model.loc["arm", "p_randomisation"]
    assert model.loc["arm", "randomisation_mcse"] == pytest.approx(np.sqrt(p * (1 - p) / 999))
    # same seed, same relabellings: reproducible to the last digit
    again = fit_group_models(table, spec).set_index(["outcome", "term"])
    pd.testing.assert_series_equal(result["p_randomisation"], again["p_randomisation"])


def test_inestimable_relabellings_dropped_and_counted():
    """Only sub-01 (msc) and sub-02 (control) reach ses-24: every relabelling giving both the
    same arm leaves arm:time[ses-24] inestimable.  9 participants allow C(9, n_msc)
    labellings, all enumerated; the dropped ones number C(7, n_msc - 2) + C(7, n_msc)."""
    table = simulate_roi_trial(9, seed=4)
    keep_late = table["participant_id"].isin(["sub-01", "sub-02"])
    table = table[(table["session_id"] != "ses-24") | keep_late].copy()
    table.loc[table["participant_id"] == "sub-01", ["arm", "treated"]] = ["msc", "yes"]
    table.loc[table["participant_id"] == "sub-02", ["arm", "treated"]] = ["control", "no"]
    n_msc = table.groupby("participant_id")["arm"].first().eq("msc").sum()
    spec = GroupConfig(n_permutations=400, analysis_sets=["itt"])
    model = fit_group_models(table, spec).set_index("term")
    expected_dropped = math.comb(7, n_msc - 2) + math.comb(7, n_msc)
    assert (model["n_permutations_dropped"] == expected_dropped).all()
    assert (model["n_permutations"] == math.comb(9, n_msc) - expected_dropped).all()
    assert (model["randomisation"] == "exact").all()
    assert "inestimable and were dropped" in model["warnings"].iloc[0]
    assert 0 < model.loc["arm:time[ses-24]", "p_randomisation"] <= 1


def test_small_trial_enumerates_the_randomisation_distribution():
    """12 participants at 2:1 allow C(12, 4) = 495 labellings: all are used, p is a multiple
    of 1/495 and has no Monte-Carlo error; with exact enumeration off, 2000 draws are used."""
    table = simulate_roi_trial(12, seed=6)
    spec = GroupConfig(n_permutations=2000, analysis_sets=["itt"])
    model = fit_group_models(table, spec).set_index("term")
    row = model.loc["arm:time[ses-24]"]
    assert row["n_permutations"] == 495 and row["randomisation"] == "exact"
    assert row["randomisation_mcse"] == 0
    assert (row["p_randomisation"] * 495) == pytest.approx(round(row["p_randomisation"] * 495))
    spec.randomisation_exact = False
    model = fit_group_models(table, spec).set_index("term")
    assert model.loc["arm:time[ses-24]", "n_permutations"] == 2000
    assert model.loc["arm:time[ses-24]", "randomisation"] == "monte carlo"


def test_null_p_values_roughly_uniform():
    """Under the null, 60 small trials give randomisation p-values spread over (0, 1]."""
    ps = []
    for seed in range(60):
        table = simulate_roi_trial(15, seed=seed)
        spec = GroupConfig(n_permutations=199, analysis_sets=["itt"])
        model = fit_group_models(table, spec).set_index("term")
        ps.append(model.loc["arm:time[ses-24]", "p_randomisation"])
    ps = np.asarray(ps)
    assert 0.3 < ps.mean() < 0.7
    assert (ps < 0.05).sum() <= 9


def test_no_interaction_null_ignores_level_shifts():
    """Under ``randomisation_null='no_interaction'`` adding any constant to every value of a
    participant (here: msc participants shifted by 3 +- 1) leaves the arm x time randomisation
    p-values unchanged to rounding, while the sharp null's ``arm`` p collapses."""
    table = simulate_roi_trial(20, missing=0.15, seed=12)
    rng = np.random.default_rng(0)
    shift = {pid: (3 + rng.normal()) * (arm == "msc") for pid, arm in
             table.groupby("participant_id")["arm"].first().items()}
    shifted = table.assign(value=table["value"] + table["participant_id"].map(shift))
    spec = GroupConfig(n_permutations=999, analysis_sets=["itt"])
    spec.randomisation_null = "no_interaction"
    before = fit_group_models(table, spec).set_index("term")
    after = fit_group_models(shifted, spec).set_index("term")
    terms = ["arm:time[ses-06]", "arm:time[ses-24]", JOINT_TERM]
    np.testing.assert_allclose(after.loc[terms, "p_randomisation"],
                               before.loc[terms, "p_randomisation"], rtol=1e-12)
    assert np.isnan(after.loc["arm", "p_randomisation"])
    assert (after.loc[terms, "randomisation_null"] == "no_interaction").all()
    spec.randomisation_null = "sharp"
    sharp = fit_group_models(shifted, spec).set_index("term")
    assert sharp.loc["arm", "p_randomisation"] < 0.01


def test_no_interaction_statistic_is_within_participant_least_squares():
    table = simulate_roi_trial(14, missing=0.2, seed=13)
    data = build_design(table, "mi4p_ipsi_effect", "itt")
    engine = GLSRandomisation(data, np.zeros((1, 1)), 1.0, null="no_interaction")
    dummies = np.eye(data.n_subjects)[data.subject]
    x0 = np.column_stack([data.x_fixed[:, 1:3], dummies])   # time terms + intercepts
    resid0 = data.y - x0 @ np.linalg.lstsq(x0, data.y, rcond=None)[0]
    sigma2 = resid0 @ resid0 / (len(data.y) - np.linalg.matrix_rank(x0))
    rng = np.random.default_rng(1)
    labels = np.array([rng.permutation(data.labels) for _ in range(4)])
    z, chi2, ok = engine.statistics(labels)
    for p in range(4):
        x = np.column_stack([x0, labels[p][data.subject][:, None] * data.x_fixed[:, 1:3]])
        cov = np.linalg.inv(x.T @ x) * sigma2
        beta = cov @ x.T @ data.y / sigma2
        z_ref = beta[-2:] / np.sqrt(np.diag(cov)[-2:])
        np.testing.assert_allclose(z[p], z_ref, rtol=1e-7)
        assert chi2[p] == pytest.approx(beta[-2:] @ np.linalg.solve(cov[-2:, -2:], beta[-2:]),
                                        rel=1e-7)
