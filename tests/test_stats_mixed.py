"""Mixed models of the group stage: estimates against closed forms, missing data, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from hermesflow.config import GroupConfig
from hermesflow.group import fit_group_models
from hermesflow.group.models import JOINT_TERM, NOT_FITTED
from hermesflow.simulation.roi_table import simulate_roi_trial

SESSIONS = (("ses-01", 1.0), ("ses-06", 6.0), ("ses-24", 24.0))


def _balanced_table() -> pd.DataFrame:
    """9 participants (6 msc, 3 control) x 3 sessions, complete; fixed numbers."""
    rng = np.random.default_rng(42)
    arm = ["msc"] * 6 + ["control"] * 3
    subject_effect = np.array([2.0, -1.5, 0.5, 3.0, -2.5, 1.0, -1.0, 2.5, -0.5])
    rows = []
    for i, a in enumerate(arm):
        for t, (ses, months) in enumerate(SESSIONS):
            value = 10 + t + (0.8 * t if a == "msc" else 0) + subject_effect[i] \
                + rng.normal(0, 0.7)
            rows.append({"participant_id": f"sub-{i + 1:02d}", "session_id": ses,
                         "months": months, "arm": a, "treated": "yes" if a == "msc" else "no",
                         "age": 60 + i, "sex": "F", "lesion_side": "L",
                         "outcome": "fm_motor", "value": round(value, 3)})
    return pd.DataFrame(rows)


def _closed_form(table: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Estimates and SEs of the balanced split-plot design by hand.

    Cell means give the fixed effects (GLS = OLS on a complete balanced design).  REML variance
    components equal the ANOVA ones when positive: sigma2_e = SS(subject x time within arm) /
    ((N - 2)(T - 1)), sigma2_u = (MS(subjects within arm) - sigma2_e) / T.  Within-subject
    contrasts have variance 2 sigma2_e / n per arm; the baseline arm difference has variance
    (sigma2_u + sigma2_e)(1/n1 + 1/n0).
    """
    wide = table.pivot(index="participant_id", columns="session_id", values="value")
    arm = table.groupby("participant_id")["arm"].first().reindex(wide.index) == "msc"
    y = wide.to_numpy()
    n_subj, n_t = y.shape
    g = arm.to_numpy()
    cell = {k: y[g == k].mean(axis=0) for k in (False, True)}
    n = {k: int((g == k).sum()) for k in (False, True)}
    resid_e = 0.0
    ms_s = 0.0
    for k in (False, True):
        yk = y[g == k]
        subj_mean = yk.mean(axis=1, keepdims=True)
        resid_e += ((yk - subj_mean - cell[k][None, :] + cell[k].mean()) ** 2).sum()
        ms_s += n_t * ((subj_mean - cell[k].mean()) ** 2).sum()
    s2e = resid_e / ((n_subj - 2) * (n_t - 1))
    s2u = (ms_s / (n_subj - 2) - s2e) / n_t
    inv_n = 1 / n[False] + 1 / n[True]
    out = {
        "Intercept": (cell[False][0], np.sqrt((s2u + s2e) / n[False])),
        "arm": (cell[True][0] - cell[False][0], np.sqrt((s2u + s2e) * inv_n)),
    }
    for t, (ses, _) in enumerate(SESSIONS[1:], start=1):
        out[f"time[{ses}]"] = (cell[False][t] - cell[False][0], np.sqrt(2 * s2e / n[False]))
        out[f"arm:time[{ses}]"] = (
            (cell[True][t] - cell[True][0]) - (cell[False][t] - cell[False][0]),
            np.sqrt(2 * s2e * inv_n),
        )
    return out


def _model(table: pd.DataFrame, outcome: str, analysis_set: str = "itt") -> pd.DataFrame:
    return table[(table["outcome"] == outcome) & (table["analysis_set"] == analysis_set)] \
        .set_index("term")


def test_balanced_design_matches_closed_form():
    """REML fit on a complete balanced 6:3 x 3-session table equals the hand-derived closed
    form (cell means; ANOVA variance components) to 1e-6 (estimates) and 1e-4 (SEs)."""
    table = _balanced_table()
    expected = _closed_form(table)
    result = fit_group_models(table, GroupConfig(analysis_sets=["itt"], n_permutations=0))
    model = _model(result, "fm_motor")
    assert list(model.index) == ["Intercept", "arm", "time[ses-06]", "time[ses-24]",
                                 "arm:time[ses-06]", "arm:time[ses-24]", JOINT_TERM]
    for term, (estimate, se) in expected.items():
        assert model.loc[term, "estimate"] == pytest.approx(estimate, rel=1e-6, abs=1e-8)
        assert model.loc[term, "se"] == pytest.approx(se, rel=1e-4)
    # the numbers themselves, so a change in the data or the fit shows up here
    assert model.loc["arm:time[ses-24]", "estimate"] == pytest.approx(1.49967, abs=1e-4)
    assert model.loc["arm:time[ses-24]", "se"] == pytest.approx(0.67299, abs=1e-4)
    assert model["converged"].all()
    assert (model["n_subjects"] == 9).all() and (model["n_observations"] == 27).all()
    assert model["p_randomisation"].isna().all()
    joint = model.loc[JOINT_TERM]
    assert joint["df"] == 2 and np.isnan(joint["estimate"])
    assert 0 < joint["p_wald"] < 1


def test_ci_and_wald_p_follow_from_estimate_and_se():
    """``ddf = 'asymptotic'``: normal-theory CI and p (the default is Satterthwaite's t)."""
    table = _balanced_table()
    spec = GroupConfig(analysis_sets=["itt"], ddf="asymptotic")
    model = _model(fit_group_models(table, spec), "fm_motor")
    row = model.loc["arm"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(1.959964 * row["se"], rel=1e-6)
    from scipy.stats import norm
    assert row["p_wald"] == pytest.approx(2 * norm.sf(abs(row["estimate"] / row["se"])))


def test_satterthwaite_ci_and_p_follow_from_t():
    """Default: CI and p from t on the term's Satterthwaite df.  On the complete balanced
    split-plot design the within-participant terms have the ANOVA error df (N - 2)(T - 1) = 14
    and the joint arm x time test is F(2, 14)."""
    from scipy.stats import f, t

    table = _balanced_table()
    model = _model(fit_group_models(table, GroupConfig(analysis_sets=["itt"])), "fm_motor")
    for term in ("time[ses-06]", "arm:time[ses-24]"):
        assert model.loc[term, "df"] == pytest.approx(14, rel=1e-5)
    for term, row in model.drop(index=JOINT_TERM).iterrows():
        assert row["test"] == "t" and row["df"] > 0, term
        q = t.ppf(0.975, row["df"])
        assert row["ci_high"] - row["estimate"] == pytest.approx(q * row["se"], rel=1e-9)
        assert row["p_wald"] == pytest.approx(2 * t.sf(abs(row["statistic"]), row["df"]))
    joint = model.loc[JOINT_TERM]
    assert joint["test"] == "F" and joint["df_denominator"] == pytest.approx(14, rel=1e-5)
    assert joint["p_wald"] == pytest.approx(f.sf(joint["statistic"], 2, 14), rel=1e-4)


def test_missing_sessions_kept_and_match_formula_fit():
    """With dropouts the model uses every observed row; estimates equal statsmodels' formula
    interface on the same rows (an independent build of the design)."""
    table = simulate_roi_trial(20, outcomes=["mi4a_contra_psc"], missing=0.25, seed=5,
                               sd_intercept=1.0, effect=0.5)
    n_obs = len(table)
    assert n_obs < 60
    result = fit_group_models(table, GroupConfig(analysis_sets=["itt"]))
    model = _model(result, "mi4a_contra_psc")
    assert (model["n_observations"] == n_obs).all() and (model["n_subjects"] == 20).all()
    data = table.assign(a=(table["arm"] == "msc").astype(float))
    ref = smf.mixedlm("value ~ a * C(session_id)", data, groups=data["participant_id"]) \
        .fit(reml=True, method=["bfgs"])
    pairs = {"Intercept": "Intercept", "arm": "a",
             "time[ses-24]": "C(session_id)[T.ses-24]",
             "arm:time[ses-24]": "a:C(session_id)[T.ses-24]"}
    # SEs are (X'V^-1X)^-1 at the variance components (lme4's), not statsmodels' joint-
    # Hessian cov_params(); built here from statsmodels' own components and design.
    x = ref.model.exog
    v_inv = np.zeros((n_obs, n_obs))
    groups = data["participant_id"].to_numpy()
    for pid in np.unique(groups):
        idx = np.flatnonzero(groups == pid)
        block = float(ref.cov_re.iloc[0, 0]) + ref.scale * np.eye(len(idx))
        v_inv[np.ix_(idx, idx)] = np.linalg.inv(block)
    gls_se = pd.Series(np.sqrt(np.diag(np.linalg.inv(x.T @ v_inv @ x))),
                       index=ref.model.exog_names)
    for ours, theirs in pairs.items():
        assert model.loc[ours, "estimate"] == pytest.approx(ref.fe_params[theirs], abs=1e-4)
        assert model.loc[ours, "se"] == pytest.approx(gls_se[theirs], rel=1e-3)
        # and within a few per cent of statsmodels' cov_params()
        assert model.loc[ours, "se"] == pytest.approx(ref.bse_fe[theirs], rel=0.03)


def test_continuous_time_terms_and_random_slope():
    table = simulate_roi_trial(24, sd_slope=1.0, seed=2)
    spec = GroupConfig(time="linear", random_slope=True, analysis_sets=["itt"],
                       covariates=["age", "sex"])
    model = _model(fit_group_models(table, spec), "mi4p_ipsi_effect")
    assert list(model.index) == ["Intercept", "arm", "time", "arm:time", "age", "sex[M]",
                                 JOINT_TERM]
    assert "(1 + time | participant)" in model["formula"].iloc[0] \
        or "random slope dropped" in model["fallback"].iloc[0]
    # a single interaction term: the joint chi2 is its z squared
    assert model.loc[JOINT_TERM, "statistic"] == pytest.approx(
        model.loc["arm:time", "statistic"] ** 2, rel=1e-8)


def test_absent_covariate_left_out_with_a_warning():
    table = simulate_roi_trial(15, seed=3).drop(columns=["lesion_volume_ml"])
    spec = GroupConfig(covariates=["lesion_volume_ml", "age"], analysis_sets=["itt"])
    model = _model(fit_group_models(table, spec), "mi4p_ipsi_effect")
    assert "age" in model.index and "lesion_volume_ml" not in model.index
    assert "'lesion_volume_ml' not in the long table" in model["warnings"].iloc[0]


def test_log_time_and_baseline_covariate():
    table = simulate_roi_trial(24, seed=4)
    spec = GroupConfig(time="log", covariates=["baseline"], analysis_sets=["itt"])
    model = _model(fit_group_models(table, spec), "mi4p_ipsi_effect")
    assert list(model.index) == ["Intercept", "arm", "time", "arm:time", "baseline",
                                 JOINT_TERM]
    # the first session becomes the covariate, so two sessions per participant remain
    assert (model["n_observations"] == 48).all()


def _bad_table() -> pd.DataFrame:
    good = simulate_roi_trial(15, outcomes=["mi4p_ipsi_effect", "barthel", "mrs",
                                            "nihss"], seed=8)
    good["value"] = good["value"].astype(object)
    barthel = good["outcome"] == "barthel"
    good.loc[barthel & (good["participant_id"] == "sub-03"), "value"] = "ninety"
    good.loc[good["outcome"] == "mrs", "value"] = 3.0
    nihss = good[good["outcome"] == "nihss"]
    drop = nihss.index[(nihss["participant_id"] == "sub-04") & (nihss["session_id"] != "ses-01")]
    return good.drop(index=drop)


def test_bad_input_rows_and_other_models_still_run():
    result = fit_group_models(_bad_table(), GroupConfig(analysis_sets=["itt", "as_treated"]))
    for analysis_set in ("itt", "as_treated"):
        barthel = _model(result, "barthel", analysis_set)
        assert list(barthel.index) == [NOT_FITTED]
        assert "non-numeric" in barthel["warnings"].iloc[0] and "'ninety'" in \
            barthel["warnings"].iloc[0]
        mrs = _model(result, "mrs", analysis_set)
        assert list(mrs.index) == [NOT_FITTED] and "no variance" in mrs["warnings"].iloc[0]
        nihss = _model(result, "nihss", analysis_set)
        assert nihss["converged"].all()
        assert "one session only (sub-04)" in nihss["warnings"].iloc[0]
        good = _model(result, "mi4p_ipsi_effect", analysis_set)
        assert good["converged"].all() and len(good) == 7


def test_non_convergence_is_reported():
    table = simulate_roi_trial(15, seed=1)
    spec = GroupConfig(analysis_sets=["itt"])
    spec.max_iter = 1
    model = _model(fit_group_models(table, spec), "mi4p_ipsi_effect")
    assert not model["converged"].any()
    assert "did not converge" in model["warnings"].iloc[0]
    assert model["fallback"].iloc[0] != ""


def test_missing_column_raises_input_error():
    from hermesflow.errors import InputError

    with pytest.raises(InputError, match="value"):
        fit_group_models(pd.DataFrame({"participant_id": [], "session_id": [], "months": [],
                                       "outcome": []}), GroupConfig())
