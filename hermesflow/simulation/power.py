"""Power and type-I error of the group models by simulation at the long-table level.

Each simulated trial (:func:`hermesflow.simulation.roi_table.simulate_roi_trial`) goes
through the same :func:`hermesflow.group.fit_group_models` the pipeline uses, so what is
measured is the pipeline's inference, Wald and randomisation side by side.  Beside the Wald p
of the configured small-sample test (Satterthwaite t / F by default) every row carries the
normal-theory Wald p of the same fit (``p_z``: z for a single term, chi-square for the joint
test), so both are judged on the same trials.
"""

from __future__ import annotations

import copy
import dataclasses
import time as _time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from hermesflow.derivatives.writing import write_figure
from hermesflow.group.models import JOINT_TERM, fit_group_models
from hermesflow.simulation.roi_table import simulate_roi_trial, time_share

OUTCOME = "simulated"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Truth of one simulated trial (see :func:`simulate_roi_trial`)."""

    n_participants: int = 31
    allocation: tuple[int, int] = (2, 1)
    months: tuple[float, ...] = (1.0, 6.0, 24.0)
    effect: float = 0.0
    time_effect: float = 1.0
    sd_intercept: float = 1.0
    sd_slope: float = 0.0
    sd_noise: float = 1.0
    missing: float = 0.0
    non_adherence: float = 0.0
    block_size: int | None = None
    profile: str = "linear"
    #: Per-outcome effects ``((outcome, effect), ...)``; when given they replace ``effect``
    #: and the single outcome :data:`OUTCOME` (a design preset's primary outcomes).
    effects: tuple[tuple[str, float], ...] = ()

    @property
    def outcome_effects(self) -> dict[str, float]:
        """The simulated outcomes and their treatment effects."""
        return dict(self.effects) if self.effects else {OUTCOME: self.effect}


def default_spec(**overrides: Any) -> Any:
    """A GroupConfig for simulated trials: ITT only, one outcome."""
    from hermesflow.config import GroupConfig

    spec = GroupConfig(outcomes=[OUTCOME], clinical_scores=[], analysis_sets=["itt"])
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def simulate_trials(
    scenario: Scenario,
    n_trials: int,
    spec: Any,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Simulate ``n_trials`` trials and fit each; one row per trial x arm term.

    Returns
    -------
    DataFrame
        Columns ``trial, outcome, analysis_set, term, estimate, se, ci_low, ci_high, df,
        p_wald, p_z, p_randomisation, converged, fallback``; ``p_z`` is the normal-theory
        Wald p of the same fit.
    """
    seeds = np.random.SeedSequence([seed, n_trials]).spawn(n_trials)
    frames = []
    for trial, trial_seed in enumerate(seeds):
        rng = np.random.default_rng(trial_seed)
        table = simulate_roi_trial(
            scenario.n_participants, allocation=scenario.allocation, months=scenario.months,
            outcomes=list(scenario.outcome_effects), effect=scenario.outcome_effects,
            time_effect=scenario.time_effect,
            sd_intercept=scenario.sd_intercept, sd_slope=scenario.sd_slope,
            sd_noise=scenario.sd_noise, missing=scenario.missing,
            non_adherence=scenario.non_adherence, block_size=scenario.block_size,
            profile=scenario.profile, seed=rng,
        )
        trial_spec = copy.copy(spec)
        trial_spec.seed = int(rng.integers(2**31))
        model = fit_group_models(table, trial_spec)
        model = model[model["term"].str.startswith("arm")]
        frames.append(model.assign(trial=trial, p_z=_p_normal(model))[
            ["trial", "outcome", "analysis_set", "term", "estimate", "se", "ci_low", "ci_high",
             "df", "p_wald", "p_z", "p_randomisation", "converged", "fallback"]])
        if progress is not None:
            progress(trial)
    return pd.concat(frames, ignore_index=True)


def _p_normal(model: pd.DataFrame) -> np.ndarray:
    """Normal-theory Wald p of each row: z for t rows, chi-square (q F on q df) for F rows."""
    stat = model["statistic"].to_numpy(float)
    df = model["df"].to_numpy(float)
    test = model["test"].astype(str).to_numpy()
    p = model["p_wald"].to_numpy(float).copy()
    single = test == "t"
    p[single] = 2 * sps.norm.sf(np.abs(stat[single]))
    joint = test == "F"
    # F = chi2 / q (joint_wald), so the asymptotic chi-square statistic is q F
    p[joint] = sps.chi2.sf(stat[joint] * df[joint], df[joint])
    return p


def rejection_rates(trials: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Share of trials rejecting at ``alpha`` per term, with binomial standard errors.

    Grouped by ``outcome`` and ``analysis_set`` too when the trials carry them; ``p_z``
    (normal-theory Wald) is summarised when present.  The median p-values say what a typical
    trial would have reported.
    """
    kinds = [k for k in ("wald", "randomisation", "z") if f"p_{k}" in trials.columns]

    def summary(group: pd.DataFrame) -> dict:
        out = {"n_trials": len(group)}
        for kind in kinds:
            p = group[f"p_{kind}"].dropna()
            rate = float((p <= alpha).mean()) if len(p) else np.nan
            out[f"rate_{kind}"] = rate
            out[f"se_{kind}"] = float(np.sqrt(rate * (1 - rate) / max(len(p), 1)))
            out[f"median_p_{kind}"] = float(p.median()) if len(p) else np.nan
        out["share_converged"] = float(group["converged"].mean())
        return out

    keys = [k for k in ("outcome", "analysis_set", "term") if k in trials.columns]
    rows = [dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True),
                 **summary(g)) for key, g in trials.groupby(keys, sort=False)]
    return pd.DataFrame(rows)


def ci_coverage(trials: pd.DataFrame, scenario: Scenario, alpha: float = 0.05) -> pd.DataFrame:
    """Share of trials whose CI of each arm x time term holds the true value.

    ``coverage`` is that of the intervals in the trials (the model's configured df,
    ``alpha`` as fitted); ``coverage_z`` that of ``estimate +- z(1 - alpha/2) se``.

    The truth of ``arm:time[ses-X]`` (categorical time) is ``effect * s(X)``, exact for the
    as-treated set and for ITT without non-adherence; the linear-time term ``arm:time`` has no
    single true value under a non-linear ``s`` and is left out.
    """
    months = np.asarray(scenario.months, float)
    share = time_share(months, scenario.profile)
    truth = {f"arm:time[ses-{m:02.0f}]": s for m, s in zip(months[1:], share[1:], strict=True)}
    rows = trials[trials["term"].isin(truth)].copy()
    effects = scenario.outcome_effects
    outcome = rows["outcome"] if "outcome" in rows else pd.Series(OUTCOME, index=rows.index)
    rows["true_value"] = rows["term"].map(truth) * outcome.map(effects).astype(float)
    rows["covered"] = (rows["ci_low"] <= rows["true_value"]) \
        & (rows["true_value"] <= rows["ci_high"])
    # the normal-theory interval of the same fit, for comparison
    half = sps.norm.ppf(1 - alpha / 2) * rows["se"]
    rows["covered_z"] = ((rows["estimate"] - rows["true_value"]).abs() <= half)
    keys = [k for k in ("outcome", "analysis_set", "term") if k in rows.columns]
    table = rows.groupby(keys, sort=False).agg(
        true_value=("true_value", "first"), coverage=("covered", "mean"),
        coverage_z=("covered_z", "mean"), n_trials=("covered", "size"),
        median_df=("df", "median")).reset_index()
    table["se_coverage"] = np.sqrt(table["coverage"] * (1 - table["coverage"])
                                   / table["n_trials"])
    return table


def power_table(
    effects: Sequence[float],
    scenario: Scenario,
    spec: Any,
    *,
    n_trials: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    terms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rejection rates per effect size (effect 0 gives the type-I error)."""
    frames = []
    for effect in effects:
        start = _time.perf_counter()
        trials = simulate_trials(dataclasses.replace(scenario, effect=float(effect)),
                                 n_trials, spec, seed=seed)
        rates = rejection_rates(trials, alpha)
        rates.insert(0, "effect", float(effect))
        rates["seconds"] = _time.perf_counter() - start
        frames.append(rates)
    table = pd.concat(frames, ignore_index=True)
    if terms:
        table = table[table["term"].isin(terms)]
    scen = dataclasses.asdict(scenario)
    for key in ("n_participants", "sd_intercept", "sd_slope", "sd_noise", "missing"):
        table[key] = scen[key]
    table["allocation"] = ":".join(str(a) for a in scenario.allocation)
    table["non_adherence"] = scenario.non_adherence
    table["block_size"] = scenario.block_size or 0
    table["time_coding"] = spec.time
    table["ddf"] = getattr(spec, "ddf", "satterthwaite")
    table["n_permutations"] = spec.n_permutations
    table["alpha"] = alpha
    return table.reset_index(drop=True)


def _plotted_terms(terms: list[str]) -> list[str]:
    # the arm main term is a baseline difference, not the trial's question; with a single
    # arm x time term the joint test is the same test
    interaction = [t for t in terms if t.startswith("arm:") and t != JOINT_TERM]
    shown = [t for t in terms if t != "arm" and not (t == JOINT_TERM and len(interaction) < 2)]
    return shown or terms


def plot_power(table: pd.DataFrame, path: str | Path, *, alpha: float = 0.05) -> Path:
    """Power curves (Wald solid, randomisation dashed) of the arm x time terms, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    shown = _plotted_terms(list(dict.fromkeys(table["term"])))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sets = list(dict.fromkeys(table["analysis_set"])) if "analysis_set" in table else [None]
    lines = [(aset, term) for aset in sets for term in shown]
    for i, (aset, term) in enumerate(lines):
        group = table[table["term"] == term]
        if aset is not None:
            group = group[group["analysis_set"] == aset]
        colour, name = f"C{i}", term if aset is None else f"{aset} {term}"
        ax.plot(group["effect"], group["rate_wald"], "-o", color=colour, label=f"{name} Wald")
        ax.plot(group["effect"], group["rate_randomisation"], "--s", color=colour,
                label=f"{name} randomisation")
    ax.axhline(alpha, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("treatment effect on change to last session")
    ax.set_ylabel(f"rejection rate at alpha {alpha:g}")
    ax.set_ylim(0, 1)
    n = int(table["n_participants"].iloc[0]) if "n_participants" in table else None
    ax.set_title(f"Power by simulation (n={n}, {int(table['n_trials'].iloc[0])} trials/point)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    write_figure(path, fig, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["CALIBRATION_SCENARIOS", "JOINT_TERM", "Scenario", "calibration_study",
           "ci_coverage", "default_spec", "plot_power", "power_table", "rejection_rates",
           "simulate_trials"]


#: The issue's calibration scenarios: patients recover alike (random intercepts only) or at
#: different rates (random slopes in the truth, random-intercept model fitted), each with and
#: without missing follow-up sessions.
CALIBRATION_SCENARIOS = {
    "recover alike": Scenario(sd_slope=0.0, missing=0.0),
    "recover alike, missing": Scenario(sd_slope=0.0, missing=0.15),
    "different rates": Scenario(sd_slope=1.5, missing=0.0),
    "different rates, missing": Scenario(sd_slope=1.5, missing=0.15),
}


def calibration_study(
    n_trials: int = 2000,
    *,
    n_permutations: int = 499,
    time: str = "categorical",
    alpha: float = 0.05,
    seed: int = 0,
    scenarios: dict[str, Scenario] | None = None,
) -> pd.DataFrame:
    """Type-I error of Wald and randomisation p-values over null trials, per scenario.

    The fitted model is the default random-intercept model with the given time coding.
    ``(n_permutations + 1) * alpha`` should be an integer so the randomisation test's level is
    exactly ``alpha`` (499 at 0.05).
    """
    scenarios = CALIBRATION_SCENARIOS if scenarios is None else scenarios
    spec = default_spec(n_permutations=n_permutations, time=time, random_slope=False)
    frames = []
    for i, (name, scenario) in enumerate(scenarios.items()):
        start = _time.perf_counter()
        # a seed per scenario: shared draws would make the scenarios' error rates correlated
        trials = simulate_trials(dataclasses.replace(scenario, effect=0.0), n_trials, spec,
                                 seed=seed * 1000 + i)
        rates = rejection_rates(trials, alpha)
        rates.insert(0, "scenario", name)
        rates.insert(1, "time", time)
        rates["seconds"] = _time.perf_counter() - start
        frames.append(rates)
    return pd.concat(frames, ignore_index=True)
