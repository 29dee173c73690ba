"""Power of a design preset's primary outcomes, both analysis sets, beside the published p.

:func:`design_power` simulates the preset's trials at the ROI-table level
(:mod:`hermesflow.simulation.designs`), fits every primary outcome in the intention-to-treat
and the as-treated set with the pipeline's own :func:`~hermesflow.group.fit_group_models`, and
reports per outcome x analysis set x arm term the rejection rates (Wald with the configured
small-sample df, normal-theory Wald, randomisation) and the median p-values, with the published
p of the outcome beside them.  With a grid of effects every outcome is simulated at each effect
(its sign kept): that is the search the preset's effects were chosen from.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hermesflow.derivatives.writing import write_figure
from hermesflow.group.models import JOINT_TERM
from hermesflow.simulation.designs import TrialDesign
from hermesflow.simulation.power import default_spec, rejection_rates, simulate_trials

ANALYSIS_SETS = ("itt", "as_treated")


def design_spec(design: TrialDesign, **overrides: Any) -> Any:
    """A GroupConfig fitting the preset's primary outcomes in both analysis sets."""
    values = dict(outcomes=list(design.effects), analysis_sets=list(ANALYSIS_SETS),
                  time=design.time_coding, primary=list(design.effects))
    values.update(overrides)
    return default_spec(**values)


def design_power(
    design: TrialDesign,
    spec: Any,
    *,
    effects: Sequence[float] | None = None,
    n_trials: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Rejection rates and median p-values of the preset's outcomes.

    Parameters
    ----------
    design : TrialDesign
        The preset.
    spec : GroupConfig
        The fitted model (:func:`design_spec`); its ``time`` is reported as ``time_coding``.
    effects : sequence of float, optional
        A grid of effects (residual SDs) at which every outcome is simulated; default: the
        preset's own effects, one point.
    n_trials : int
        Trials per point.
    alpha : float
        Level of the rejection rates.
    seed : int
        Seed of the first point; every point uses the same seed (common random numbers make
        the curve smoother than independent draws would).

    Returns
    -------
    DataFrame
        One row per effect point x outcome x analysis set x arm term: ``effect``,
        ``rate_wald``, ``rate_z``, ``rate_randomisation`` (with SEs), ``median_p_wald``,
        ``median_p_z``, ``median_p_randomisation``, ``published_p`` (the publication's
        as-treated p), the design's trial parameters and the model's ``time_coding``.
    """
    points = [design.effects] if effects is None else [design.scaled(e) for e in effects]
    frames = []
    for point in points:
        start = _time.perf_counter()
        scenario = design.scenario(point)
        trials = simulate_trials(scenario, n_trials, spec, seed=seed)
        rates = rejection_rates(trials, alpha)
        rates.insert(0, "effect", rates["outcome"].map(point).astype(float))
        rates["seconds"] = _time.perf_counter() - start
        frames.append(rates)
    table = pd.concat(frames, ignore_index=True)
    table["published_p"] = table["outcome"].map(design.published_p)
    table["design"] = design.name
    table["n_participants"] = design.n_participants
    table["allocation"] = ":".join(str(a) for a in design.allocation)
    table["block_size"] = design.block_size
    table["months"] = ",".join(f"{m:g}" for m in design.months)
    table["treated_fraction"] = design.treated_fraction
    table["profile"] = design.profile
    table["time_coding"] = spec.time
    table["ddf"] = getattr(spec, "ddf", "satterthwaite")
    table["n_permutations"] = spec.n_permutations
    table["alpha"] = alpha
    return table


def published_comparison(table: pd.DataFrame, term: str = JOINT_TERM) -> pd.DataFrame:
    """Median simulated p of ``term`` per outcome and analysis set beside the published p."""
    rows = table[table["term"] == term]
    wide = rows.pivot_table(index=["effect", "outcome"], columns="analysis_set",
                            values=["median_p_wald", "rate_wald"], sort=False)
    wide.columns = [f"{value}_{aset}" for value, aset in wide.columns]
    wide = wide.reset_index()
    wide.insert(2, "published_p", wide["outcome"].map(
        rows.drop_duplicates("outcome").set_index("outcome")["published_p"]))
    return wide


def plot_design_power(table: pd.DataFrame, path: str | Path, *, alpha: float = 0.05,
                      term: str = JOINT_TERM) -> Path:
    """Power of the joint arm x time test per outcome, ITT and as treated, as PNG.

    One effect per outcome (the preset): grouped bars, Wald filled and randomisation hatched.
    A grid of effects: power curves, as treated solid and ITT dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["term"] == term]
    outcomes = list(dict.fromkeys(rows["outcome"]))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if rows.groupby("outcome")["effect"].nunique().max() == 1:
        width = 0.2
        x = np.arange(len(outcomes))
        for i, (aset, kind) in enumerate([(a, k) for a in ANALYSIS_SETS
                                          for k in ("wald", "randomisation")]):
            sub = rows[rows["analysis_set"] == aset].set_index("outcome").reindex(outcomes)
            ax.bar(x + (i - 1.5) * width, sub[f"rate_{kind}"], width,
                   color="C0" if aset == "as_treated" else "C1",
                   hatch="//" if kind == "randomisation" else None,
                   edgecolor="white", label=f"{aset} {kind}")
        labels = [f"{o}\nd={rows[rows['outcome'] == o]['effect'].iloc[0]:+.2f}"
                  for o in outcomes]
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlabel("primary outcome (effect in residual SDs)")
    else:
        for i, outcome in enumerate(outcomes):
            for aset, style in (("as_treated", "-o"), ("itt", "--s")):
                sub = rows[(rows["outcome"] == outcome) & (rows["analysis_set"] == aset)]
                ax.plot(sub["effect"].abs(), sub["rate_wald"], style, color=f"C{i}",
                        label=f"{outcome} {aset}")
        ax.set_xlabel("|effect| on the 1-month to last-visit change (residual SDs)")
    ax.axhline(alpha, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"power of '{term}' at alpha {alpha:g}")
    design = rows["design"].iloc[0] if "design" in rows else ""
    ax.set_title(f"{design}: n={int(rows['n_participants'].iloc[0])}, "
                 f"{int(rows['n_trials'].iloc[0])} trials, time {rows['time_coding'].iloc[0]}",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    write_figure(Path(path), fig, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["design_power", "design_spec", "plot_design_power", "published_comparison"]
