"""Satterthwaite degrees of freedom for the fixed effects of a linear mixed model.

This is lmerTest's method (Kuznetsova, Brockhoff & Christensen 2017, J Stat Softw 82(13),
section 3), computed from the same ingredients:

* the variance parameters ``phi = (theta..., sigma)`` (lme4's relative Cholesky factor and the
  residual SD) at the (RE)ML optimum;
* their asymptotic covariance ``A = 2 H^-1``, ``H`` the Hessian of the deviance
  (minus twice the log-likelihood) in ``phi``;
* the Jacobian of ``C(phi) = (X' V(phi)^-1 X)^-1`` in ``phi``.

For one contrast ``c`` (a t test) with ``v = c' C c`` and gradient ``g_k = c' dC/dphi_k c``::

    df = 2 v^2 / (g' A g)

For ``q`` contrasts ``L`` (an F test, lmerTest's ``contestMD``): eigen-decompose
``L C L' = P D P'``, so that the ``q`` rotated contrasts ``P'L`` are independent with variances
``d_m``; each gets its own ``nu_m = 2 d_m^2 / (g_m' A g_m)`` and, with ``E = sum nu_m/(nu_m - 2)``,
the F statistic's denominator df is ``2 E / (E - q)`` (2 when any ``nu_m <= 2``), matching
the first two moments of ``q F`` to those of a scaled F (Fai & Cornelius 1996).

The derivatives are central differences with one Richardson step (lmerTest uses numDeriv's
Richardson extrapolation): error O(h^4), about 1e-9 relative at the steps used here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from hermesflow.group.reml import MixedCriterion

#: What the model table's JSON sidecar says about its p-values and confidence intervals.
INFERENCE_DESCRIPTION = (
    "Fixed-effect standard errors are sqrt(diag((X' V^-1 X)^-1)) at the REML variance "
    "components (as lme4 and SAS PROC MIXED report them). Each term's t test and confidence "
    "interval use Satterthwaite's degrees of freedom (column df), and the joint arm x time "
    "test is an F test with numerator df in column df and Satterthwaite denominator df in "
    "column df_denominator, both computed as lmerTest does (Kuznetsova et al. 2017, J Stat "
    "Softw 82(13)); validated against R lme4/lmerTest."
)
#: The same for ``ddf = 'asymptotic'``: normal and chi-square reference distributions.
ASYMPTOTIC_DESCRIPTION = (
    "Fixed-effect standard errors are sqrt(diag((X' V^-1 X)^-1)) at the REML variance "
    "components. Wald tests and confidence intervals use the normal distribution (z) and the "
    "joint arm x time test a chi-square with df in column df (large-sample; anti-conservative "
    "in small trials)."
)
DDF_METHODS = ("satterthwaite", "asymptotic")


def _step(x: np.ndarray) -> np.ndarray:
    return 1e-4 * np.maximum(np.abs(x), 0.1)


def hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Hessian of ``f`` at ``x``: central differences at ``h`` and ``h/2``, Richardson-combined."""
    x = np.asarray(x, float)

    def at(h: np.ndarray) -> np.ndarray:
        k = len(x)
        out = np.empty((k, k))
        f0 = f(x)
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            out[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                out[i, j] = out[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                         + f(x - ei - ej)) / (4 * h[i] * h[j])
        return out

    h = _step(x) * 10
    return (4 * at(h / 2) - at(h)) / 3


def jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Derivatives of an array-valued ``f`` along each coordinate: shape ``(len(x), *f.shape)``."""
    x = np.asarray(x, float)
    h = _step(x) * 10
    out = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = 1.0

        def diff(step: float, e: np.ndarray = e) -> np.ndarray:
            return (f(x + step * e) - f(x - step * e)) / (2 * step)

        out.append((4 * diff(h[i] / 2) - diff(h[i])) / 3)
    return np.asarray(out)


@dataclass
class Satterthwaite:
    """Everything a Satterthwaite test needs from one fit.

    Attributes
    ----------
    varpar : ndarray
        ``(theta..., sigma)`` at the optimum.
    cov_beta : ndarray (p, p)
        ``C = (X'V^-1X)^-1`` there.
    cov_varpar : ndarray
        ``A = 2 H^-1``, the asymptotic covariance of ``varpar``.
    jac : ndarray (k, p, p)
        ``dC / dvarpar_k``.
    """

    varpar: np.ndarray
    cov_beta: np.ndarray
    cov_varpar: np.ndarray
    jac: np.ndarray

    @classmethod
    def from_criterion(cls, criterion: MixedCriterion, theta: np.ndarray) -> Satterthwaite:
        sigma = float(np.sqrt(criterion.sigma2(theta)))
        varpar = np.append(np.asarray(theta, float), sigma)
        h = hessian(criterion.deviance, varpar)
        cov_varpar = 2 * np.linalg.pinv(h)
        jac = jacobian(criterion.cov_beta, varpar)
        return cls(varpar, criterion.cov_beta(varpar), cov_varpar, jac)

    def df(self, contrast: np.ndarray) -> float:
        """Satterthwaite df of the t test of ``contrast' b``: ``2 v^2 / (g' A g)``."""
        c = np.asarray(contrast, float)
        v = float(c @ self.cov_beta @ c)
        g = np.einsum("i,kij,j->k", c, self.jac, c)
        denom = float(g @ self.cov_varpar @ g)
        return 2 * v * v / denom if denom > 0 else np.inf

    def f_test(self, contrasts: np.ndarray, beta: np.ndarray,
               eps: float = np.sqrt(np.finfo(float).eps)) -> tuple[float, int, float]:
        """F statistic, numerator df and Satterthwaite denominator df of ``L b = 0``.

        Follows lmerTest's ``contestMD``: rank-deficient directions of ``L C L'`` are dropped;
        one remaining direction is a t test (``F = t^2``).
        """
        lmat = np.atleast_2d(np.asarray(contrasts, float))
        d, vecs = np.linalg.eigh(lmat @ self.cov_beta @ lmat.T)
        order = np.argsort(d)[::-1]
        d, vecs = d[order], vecs[:, order]
        keep = d > max(eps * d[0], 0)
        q = int(keep.sum())
        if q == 0:
            return np.nan, 0, np.nan
        rotated = vecs[:, keep].T @ lmat
        t2 = (rotated @ beta) ** 2 / d[keep]
        f_value = float(t2.sum() / q)
        nu = np.array([self.df(row) for row in rotated])
        return f_value, q, fai_cornelius_ddf(nu)


def fai_cornelius_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F built from independent t's with ``nu`` df (lmerTest's rule)."""
    nu = np.asarray(nu, float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    e = float(np.sum(nu / (nu - 2)))
    return 2 * e / (e - len(nu))


def t_quantile(alpha: float, df: float) -> float:
    """Two-sided ``1 - alpha`` quantile of t with ``df`` (normal when df is infinite)."""
    return float(sps.norm.ppf(1 - alpha / 2) if not np.isfinite(df)
                 else sps.t.ppf(1 - alpha / 2, df))


def inference_description(ddf: str = "satterthwaite") -> str:
    """Text for the model table's JSON sidecar (``Inference``) for a ``ddf`` method."""
    if ddf not in DDF_METHODS:
        raise ValueError(f"ddf method {ddf!r} unknown; use one of {', '.join(DDF_METHODS)}")
    return INFERENCE_DESCRIPTION if ddf == "satterthwaite" else ASYMPTOTIC_DESCRIPTION
