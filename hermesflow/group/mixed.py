"""statsmodels MixedLM fits with recorded fallbacks, and the Wald tables that come out of them.

A fit tries the optimisers in :data:`OPTIMISERS` one at a time (not statsmodels' silent list),
then, for a random-slope model, the random-intercept model.  Every warning statsmodels raises is
kept, and the fallback that produced the reported fit is named, so the model table never hides
how an estimate was obtained.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps
from statsmodels.regression.mixed_linear_model import MixedLM

OPTIMISERS = ("bfgs", "lbfgs", "cg", "powell", "nm")


@dataclass
class MixedFit:
    """The parts of a MixedLM fit the group tables use.

    ``cov_re`` and ``scale`` are on the data's scale (not divided by the residual variance).
    """

    fe_params: np.ndarray
    cov_fe: np.ndarray
    cov_re: np.ndarray
    scale: float
    converged: bool
    fallback: str
    random_slope: bool
    warnings: list[str] = field(default_factory=list)
    llf: float = np.nan


def fit_mixed(
    y: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    groups: np.ndarray,
    *,
    reml: bool = True,
    maxiter: int | None = None,
) -> MixedFit:
    """Fit ``y = x b + z u + e`` with one random-effects block per group, trying fallbacks.

    Parameters
    ----------
    y, x, z, groups : ndarray
        Response, fixed and random designs, group (participant) index per observation.
    reml : bool
        REML (default) or ML.
    maxiter : int, optional
        Iteration cap passed to the optimiser (statsmodels' default when None).

    Returns
    -------
    MixedFit
        The first converged fit; when none converges, the last attempt with
        ``converged=False``.
    """
    attempts = [(z, opt) for opt in OPTIMISERS]
    if z.shape[1] > 1:
        attempts += [(z[:, :1], opt) for opt in OPTIMISERS]
    kept: list[str] = []
    last: MixedFit | None = None
    for i, (z_try, optimiser) in enumerate(attempts):
        fallback = _fallback_name(i, optimiser, z_try.shape[1] < z.shape[1])
        fit = _fit_once(y, x, z_try, groups, reml=reml, optimiser=optimiser, maxiter=maxiter,
                        fallback=fallback)
        kept.extend(w for w in fit.warnings if w not in kept)
        last = fit
        if fit.converged:
            break
    assert last is not None
    # A converged fit reports its own warnings (the fallback column says earlier attempts
    # failed); a failure reports everything that went wrong on the way.
    if not last.converged:
        last.warnings = kept
        last.warnings.append(f"did not converge after {len(attempts)} attempts "
                             f"({', '.join(OPTIMISERS)}"
                             f"{'; random slope dropped' if z.shape[1] > 1 else ''})")
    return last


def _fallback_name(i: int, optimiser: str, slope_dropped: bool) -> str:
    if i == 0:
        return ""
    parts = []
    if slope_dropped:
        parts.append("random slope dropped")
    if optimiser != OPTIMISERS[0]:
        parts.append(f"optimiser {optimiser}")
    return "; ".join(parts)


def _fit_once(y, x, z, groups, *, reml, optimiser, maxiter, fallback) -> MixedFit:
    kwargs = {} if maxiter is None else {"maxiter": maxiter}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = MixedLM(y, x, groups, exog_re=z)
            result = model.fit(reml=reml, method=[optimiser], **kwargs)
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as err:
            k = x.shape[1]
            return MixedFit(np.full(k, np.nan), np.full((k, k), np.nan),
                            np.full((z.shape[1],) * 2, np.nan), np.nan, False, fallback,
                            z.shape[1] > 1, [f"{optimiser}: {type(err).__name__}: {err}"])
    messages = []
    for w in caught:
        text = str(w.message).strip()
        if text.startswith("Retrying MixedLM") or text in messages:
            continue
        messages.append(text)
    k = x.shape[1]
    cov_fe = np.asarray(result.cov_params())[:k, :k]
    fe = np.asarray(result.fe_params, float)
    converged = bool(result.converged and np.all(np.isfinite(fe))
                     and np.all(np.isfinite(np.diag(cov_fe))) and np.all(np.diag(cov_fe) > 0))
    return MixedFit(
        fe_params=fe, cov_fe=cov_fe, cov_re=np.atleast_2d(np.asarray(result.cov_re, float)),
        scale=float(result.scale), converged=converged, fallback=fallback,
        random_slope=z.shape[1] > 1, warnings=messages, llf=float(result.llf),
    )


def wald_rows(fit: MixedFit, names: list[str], *, alpha: float = 0.05) -> list[dict]:
    """One row per fixed effect: estimate, SE, normal-theory CI, z and two-sided Wald p."""
    se = np.sqrt(np.clip(np.diag(fit.cov_fe), 0, None))
    q = sps.norm.ppf(1 - alpha / 2)
    rows = []
    for name, est, s in zip(names, fit.fe_params, se, strict=True):
        z = est / s if s > 0 else np.nan
        rows.append({
            "term": name, "estimate": est, "se": s, "ci_low": est - q * s,
            "ci_high": est + q * s, "statistic": z, "df": np.nan, "test": "z",
            "p_wald": 2 * sps.norm.sf(abs(z)) if np.isfinite(z) else np.nan,
        })
    return rows


def joint_wald(fit: MixedFit, names: list[str], terms: list[str]) -> dict:
    """Wald chi-square test that every term in ``terms`` is zero."""
    idx = [names.index(t) for t in terms]
    b = fit.fe_params[idx]
    v = fit.cov_fe[np.ix_(idx, idx)]
    try:
        chi2 = float(b @ np.linalg.solve(v, b))
    except np.linalg.LinAlgError:
        chi2 = np.nan
    return {
        "term": "arm:time (joint)", "estimate": np.nan, "se": np.nan, "ci_low": np.nan,
        "ci_high": np.nan, "statistic": chi2, "df": float(len(idx)), "test": "chi2",
        "p_wald": float(sps.chi2.sf(chi2, len(idx))) if np.isfinite(chi2) else np.nan,
    }
