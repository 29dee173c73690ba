"""statsmodels MixedLM fits with recorded fallbacks, and the tests that come out of them.

A fit tries the optimisers in :data:`OPTIMISERS` one at a time (not statsmodels' silent list),
then, for a random-slope model, the random-intercept model.  Every warning statsmodels raises is
kept, and the fallback that produced the reported fit is named, so the model table never hides
how an estimate was obtained.

A converged fit is then finished as lme4 would report it: the variance parameters are polished
to the optimum of the (RE)ML criterion (:mod:`hermesflow.group.reml`), the fixed effects are
the GLS estimate there and their covariance is ``(X' V^-1 X)^-1`` at those components.
statsmodels' ``cov_params()`` comes from the joint Hessian of fixed and variance parameters and
differs from that by up to a few per cent when sessions are missing.  t and F tests then use
Satterthwaite degrees of freedom (:mod:`hermesflow.group.satterthwaite`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps
from statsmodels.regression.mixed_linear_model import MixedLM

from hermesflow.group.reml import MixedCriterion
from hermesflow.group.satterthwaite import DDF_METHODS, Satterthwaite, t_quantile

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
    criterion: MixedCriterion | None = field(default=None, repr=False)
    theta: np.ndarray | None = None
    _satterthwaite: Satterthwaite | None = field(default=None, repr=False)

    def satterthwaite(self) -> Satterthwaite | None:
        """The Satterthwaite machinery of this fit (computed once; None when not polished)."""
        if self._satterthwaite is None and self.criterion is not None and self.theta is not None:
            self._satterthwaite = Satterthwaite.from_criterion(self.criterion, self.theta)
        return self._satterthwaite


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
    fit = MixedFit(
        fe_params=fe, cov_fe=cov_fe, cov_re=np.atleast_2d(np.asarray(result.cov_re, float)),
        scale=float(result.scale), converged=converged, fallback=fallback,
        random_slope=z.shape[1] > 1, warnings=messages, llf=float(result.llf),
    )
    if converged:
        _polish(fit, MixedCriterion(y, x, z, groups, reml=reml))
    return fit


def _polish(fit: MixedFit, criterion: MixedCriterion) -> None:
    """Move ``fit`` to the criterion's optimum; GLS estimates and (X'V^-1X)^-1 there."""
    try:
        theta = criterion.optimise(criterion.theta_from_cov(fit.cov_re, fit.scale))
        gls = criterion.gls(theta)
        sigma2 = gls.rss / (criterion.n - criterion.p if criterion.reml else criterion.n)
        cov_fe = sigma2 * np.linalg.inv(gls.xtvx)
    except (np.linalg.LinAlgError, ValueError) as err:
        fit.warnings.append(f"variance components not polished ({type(err).__name__}: {err}); "
                            "statsmodels' estimates and covariance reported")
        return
    lam = criterion.factor(theta)
    fit.fe_params, fit.cov_fe, fit.scale = gls.beta, cov_fe, float(sigma2)
    fit.cov_re = sigma2 * lam @ lam.T
    fit.llf = -0.5 * criterion.profiled_deviance(theta)
    fit.criterion, fit.theta = criterion, theta


def wald_rows(fit: MixedFit, names: list[str], *, alpha: float = 0.05,
              ddf: str = "satterthwaite") -> list[dict]:
    """One row per fixed effect: estimate, SE, CI, t (or z) and two-sided Wald p.

    With ``ddf='satterthwaite'`` (and a polished fit) each term's t has Satterthwaite's df and
    CI and p come from that t distribution; with ``'asymptotic'`` (or when the fit was not
    polished) they are normal-theory z.
    """
    _check_ddf(ddf)
    se = np.sqrt(np.clip(np.diag(fit.cov_fe), 0, None))
    satt = fit.satterthwaite() if ddf == "satterthwaite" else None
    rows = []
    for j, (name, est, s) in enumerate(zip(names, fit.fe_params, se, strict=True)):
        stat = est / s if s > 0 else np.nan
        if satt is not None:
            df = satt.df(np.eye(len(names))[j])
            p = 2 * sps.t.sf(abs(stat), df) if np.isfinite(stat) else np.nan
            test = "t"
        else:
            df = np.inf
            p = 2 * sps.norm.sf(abs(stat)) if np.isfinite(stat) else np.nan
            test = "z"
        q = t_quantile(alpha, df)
        rows.append({
            "term": name, "estimate": est, "se": s, "ci_low": est - q * s,
            "ci_high": est + q * s, "statistic": stat,
            "df": df if test == "t" else np.nan, "df_denominator": np.nan, "test": test,
            "p_wald": p,
        })
    return rows


def joint_wald(fit: MixedFit, names: list[str], terms: list[str], *,
               ddf: str = "satterthwaite") -> dict:
    """Joint Wald test that every term in ``terms`` is zero.

    Satterthwaite: ``F = chi2 / q`` on ``q`` and lmerTest's denominator df (``df`` holds the
    numerator df, ``df_denominator`` the denominator one).  Asymptotic: chi-square on ``q``.
    """
    _check_ddf(ddf)
    idx = [names.index(t) for t in terms]
    b = fit.fe_params[idx]
    v = fit.cov_fe[np.ix_(idx, idx)]
    row = {"term": "arm:time (joint)", "estimate": np.nan, "se": np.nan, "ci_low": np.nan,
           "ci_high": np.nan, "df_denominator": np.nan}
    satt = fit.satterthwaite() if ddf == "satterthwaite" else None
    if satt is not None:
        f_value, q, ddf_value = satt.f_test(np.eye(len(names))[idx], fit.fe_params)
        p = float(sps.f.sf(f_value, q, ddf_value)) if np.isfinite(f_value) else np.nan
        return dict(row, statistic=f_value, df=float(q), df_denominator=ddf_value, test="F",
                    p_wald=p)
    try:
        chi2 = float(b @ np.linalg.solve(v, b))
    except np.linalg.LinAlgError:
        chi2 = np.nan
    return dict(row, statistic=chi2, df=float(len(idx)), test="chi2",
                p_wald=float(sps.chi2.sf(chi2, len(idx))) if np.isfinite(chi2) else np.nan)


def _check_ddf(ddf: str) -> None:
    if ddf not in DDF_METHODS:
        raise ValueError(f"ddf method {ddf!r} unknown; use one of {', '.join(DDF_METHODS)}")
