"""The group model against R: lme4's REML fit with lmerTest's Satterthwaite tests.

The reference numbers in ``tests/data/lmer/`` were written by ``tests/data/lmer/fit.R`` (R,
lme4 and lmerTest versions in ``versions.txt`` there); R is not needed to run these tests.
Three tables: a complete balanced trial (12 participants 8:4 x 3 sessions) and one with 22 % of
the sessions missing (24 participants, 56 of 72 sessions), both ``value ~ arm * time +
(1 | participant)`` with sessions as levels; and one with continuous time and a correlated
random slope, ``value ~ arm * months + (1 + months | participant)`` (20 participants, 4 sessions,
15 % of follow-ups missing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hermesflow.config import GroupConfig
from hermesflow.group import fit_group_models
from hermesflow.group.design import build_design
from hermesflow.group.mixed import fit_mixed
from hermesflow.group.models import JOINT_TERM
from hermesflow.group.reml import MixedCriterion
from hermesflow.group.satterthwaite import fai_cornelius_ddf, hessian

DATA = Path(__file__).parent / "data" / "lmer"
CASES = ("balanced", "missing", "slope")
#: lme4's coefficient names -> hermesflow's
TERMS = {"(Intercept)": "Intercept", "armmsc": "arm", "timeses-06": "time[ses-06]",
         "timeses-24": "time[ses-24]", "armmsc:timeses-06": "arm:time[ses-06]",
         "armmsc:timeses-24": "arm:time[ses-24]", "months": "time", "armmsc:months": "arm:time"}
#: case -> (time coding, random slope)
MODELS = {"balanced": ("categorical", False), "missing": ("categorical", False),
          "slope": ("linear", True)}


def _table(case: str) -> pd.DataFrame:
    table = pd.read_csv(DATA / f"{case}.tsv", sep="\t")
    return table.assign(outcome="y", treated=np.where(table["arm"] == "msc", "yes", "no"))


def _ours(case: str) -> pd.DataFrame:
    time, slope = MODELS[case]
    spec = GroupConfig(analysis_sets=["itt"], n_permutations=0, time=time, random_slope=slope)
    table = fit_group_models(_table(case), spec).set_index("term")
    assert table["converged"].all() and (table["fallback"] == "").all()
    return table


def _r(case: str, what: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{case}_{what}.tsv", sep="\t")


@pytest.mark.parametrize("case", CASES)
def test_fixed_effects_match_lmer(case):
    ours = _ours(case)
    ref = _r(case, "fixef").assign(term=lambda f: f["term"].map(TERMS)).set_index("term")
    assert ref.index.notna().all()
    for term, row in ref.iterrows():
        assert ours.loc[term, "estimate"] == pytest.approx(row["estimate"], abs=1e-4), term
        assert ours.loc[term, "se"] == pytest.approx(row["se"], rel=1e-4, abs=1e-4), term
        assert ours.loc[term, "df"] == pytest.approx(row["df"], rel=1e-3), term
        assert ours.loc[term, "statistic"] == pytest.approx(row["statistic"], rel=1e-3), term
        assert ours.loc[term, "p_wald"] == pytest.approx(row["p"], rel=1e-3), term
        assert ours.loc[term, "test"] == "t"


@pytest.mark.parametrize("case", CASES)
def test_joint_arm_time_f_test_matches_lmertest_anova(case):
    ref = _r(case, "anova").set_index("term").loc[
        "arm:months" if case == "slope" else "arm:time"]
    joint = _ours(case).loc[JOINT_TERM]
    assert joint["test"] == "F"
    assert joint["df"] == ref["num_df"] == (1 if case == "slope" else 2)
    assert joint["statistic"] == pytest.approx(ref["f"], rel=1e-3)
    assert joint["df_denominator"] == pytest.approx(ref["den_df"], rel=1e-3)
    assert joint["p_wald"] == pytest.approx(ref["p"], rel=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_variance_components_and_criterion_match_lmer(case):
    ref = _r(case, "varcomp").set_index("name")["value"]
    time, slope = MODELS[case]
    data = build_design(_table(case), "y", "itt", time=time, random_slope=slope)
    fit = fit_mixed(data.y, data.full_design(), data.z, data.subject)
    assert fit.scale == pytest.approx(ref["sigma2"], rel=1e-4)
    theta = ref[ref.index.str.startswith("theta")].to_numpy()
    # theta2 of the slope case (the factor's off-diagonal) is ~1e-3: compare absolutely
    np.testing.assert_allclose(fit.theta, theta, rtol=1e-4, atol=1e-5)
    q = data.z.shape[1]
    lam = np.zeros((q, q))
    cells = [(row, col) for col in range(q) for row in range(col, q)]
    for value, (i, j) in zip(theta, cells, strict=True):
        lam[i, j] = value   # lme4 fills the lower triangle column by column
    np.testing.assert_allclose(fit.cov_re, ref["sigma2"] * lam @ lam.T, rtol=1e-4, atol=1e-5)
    # lme4 stops a little short of the optimum; ours is at least as good
    assert -2 * fit.llf == pytest.approx(ref["reml_criterion"], rel=1e-8)
    assert -2 * fit.llf <= ref["reml_criterion"] + 1e-9


def test_missing_sessions_make_df_fractional_and_unequal():
    """Unlike the balanced table (every within term on 20 df, the ANOVA error df
    (12 - 2)(3 - 1)), missing sessions give each term its own, non-integer df."""
    balanced, missing = _ours("balanced"), _ours("missing")
    within = ["time[ses-06]", "time[ses-24]", "arm:time[ses-06]", "arm:time[ses-24]"]
    np.testing.assert_allclose(balanced.loc[within, "df"], 20, rtol=1e-6)
    df = missing.loc[within, "df"].to_numpy()
    assert np.ptp(df) > 1 and np.all(np.abs(df - np.round(df)) > 0.01)


def test_deviance_is_consistent_with_its_profile_and_hessian_is_accurate():
    """The (theta, sigma) deviance at sigma^2 = rss / (n - p) equals the profiled one; the
    numerical Hessian of a quadratic is exact to rounding."""
    data = build_design(_table("missing"), "y", "itt")
    crit = MixedCriterion(data.y, data.full_design(), data.z, data.subject)
    theta = np.array([0.4])
    sigma = np.sqrt(crit.sigma2(theta))
    assert crit.deviance(np.array([0.4, sigma])) == pytest.approx(
        crit.profiled_deviance(theta), rel=1e-12)
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(hessian(lambda v: v @ a @ v, np.array([0.3, 2.0])), 2 * a,
                               rtol=1e-6)


def test_fai_cornelius_rule():
    assert fai_cornelius_ddf(np.array([7.5])) == 7.5
    assert fai_cornelius_ddf(np.array([10.0, 10.0])) == 10.0
    assert fai_cornelius_ddf(np.array([1.5, 30.0])) == 2.0
    # E = 10/8 + 30/28; 2E / (E - 2)
    e = 10 / 8 + 30 / 28
    assert fai_cornelius_ddf(np.array([10.0, 30.0])) == pytest.approx(2 * e / (e - 2))
