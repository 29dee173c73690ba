"""Power and type-I error of the group models by simulation at the long-table level.

Each simulated trial (:func:`hermesflow.simulation.roi_table_roi_trial`) goes through the same
:func:`hermesflow.group.fit_group_models` the pipeline uses, so what is measured is the
pipeline's inference, Wald and randomisation side by side.
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

from hermesflow.derivatives.writing import write_figure
from hermesflow.group.models import JOINT_TERM, fit_group_models
from hermesflow.simulation.roi_table import simulate_roi_trial

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
        Columns ``trial, term, estimate, p_wald, p_randomisation, converged, fallback``.
    """
    seeds = np.random.SeedSequence([seed, n_trials]).spawn(n_trials)
    frames = []
    for trial, trial_seed in enumerate(seeds):
        rng = np.random.default_rng(trial_seed)
        table = simulate_roi_trial(
            scenario.n_participants, allocation=scenario.allocation, months=scenario.months,
            outcomes=[OUTCOME], effect=scenario.effect, time_effect=scenario.time_effect,
            sd_intercept=scenario.sd_intercept, sd_slope=scenario.sd_slope,
            sd_noise=scenario.sd_noise, missing=scenario.missing, seed=rng,
        )
        trial_spec = copy.copy(spec)
        trial_spec.seed = int(rng.integers(2**31))
        model = fit_group_models(table, trial_spec)
        model = model[model["term"].str.startswith("arm")]
        frames.append(model.assign(trial=trial)[
            ["trial", "term", "estimate", "p_wald", "p_randomisation", "converged",
             "fallback"]])
        if progress is not None:
            progress(trial)
    return pd.concat(frames, ignore_index=True)


def rejection_rates(trials: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Share of trials rejecting at ``alpha`` per term, with binomial standard errors."""
    def summary(group: pd.DataFrame) -> pd.Series:
        out = {"n_trials": len(group)}
        for kind in ("wald", "randomisation"):
            p = group[f"p_{kind}"].dropna()
            rate = float((p <= alpha).mean()) if len(p) else np.nan
            out[f"rate_{kind}"] = rate
            out[f"se_{kind}"] = float(np.sqrt(rate * (1 - rate) / max(len(p), 1)))
        out["share_converged"] = float(group["converged"].mean())
        return pd.Series(out)

    rows = [summary(g).rename(term) for term, g in trials.groupby("term", sort=False)]
    return pd.DataFrame(rows).rename_axis("term").reset_index()


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
    for i, term in enumerate(shown):
        group = table[table["term"] == term]
        colour = f"C{i}"
        ax.plot(group["effect"], group["rate_wald"], "-o", color=colour, label=f"{term} Wald")
        ax.plot(group["effect"], group["rate_randomisation"], "--s", color=colour,
                label=f"{term} randomisation")
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


__all__ = ["CALIBRATION_SCENARIOS", "JOINT_TERM", "Scenario", "calibration_study", "default_spec", "plot_power", "power_table",
           "rejection_rates", "simulate_trials"]


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
