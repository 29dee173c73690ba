"""The (RE)ML criterion of a linear mixed model in lme4's parametrisation, from per-group sums.

The model is ``y = X b + Z u + e`` with ``u_i ~ N(0, sigma^2 L L')`` per group (participant)
and ``e ~ N(0, sigma^2 I)``; ``L`` is the lower-triangular *relative* Cholesky factor whose
entries, column by column, are lme4's ``theta``.  With ``V0 = I + Z L L' Z'`` (so that
``V = sigma^2 V0``) the deviance (minus twice the log-likelihood) is, as in lme4
(Bates et al. 2015, J Stat Softw 67(1), eqs. 34 and 41) and lmerTest's ``devfun_vp``::

    ML:   log|V0| + n log(2 pi sigma^2) + r' V0^-1 r / sigma^2
    REML: ML + log|X' V0^-1 X| - p log(2 pi sigma^2)

where ``r = y - X b(theta)`` and ``b(theta)`` is the GLS estimate.  Everything is computed from
per-group sums (``Z_i'Z_i``, ``Z_i'X_i``, ``Z_i'y_i``) with the Woodbury identity
``V0^-1 = I - Z L M^-1 L' Z'``, ``M_i = I + L' Z_i'Z_i L``, and the determinant lemma
``log|V0| = sum_i log|M_i|``, so one evaluation costs a few small batched solves whatever the
number of observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

LOG_2PI = float(np.log(2 * np.pi))


@dataclass
class GlsAtTheta:
    """GLS quantities of one ``theta``: ``X'V0^-1 X``, the estimate and the weighted RSS."""

    xtvx: np.ndarray
    beta: np.ndarray
    rss: float
    logdet_v0: float
    logdet_xtvx: float


class MixedCriterion:
    """Deviance, profiled deviance and fixed-effect covariance of one mixed model.

    Parameters
    ----------
    y : ndarray (n,)
    x : ndarray (n, p)
    z : ndarray (n, q)
    groups : ndarray (n,) of int
        Group index of each observation (any integer labels).
    reml : bool
        REML (default) or ML criterion.
    """

    def __init__(self, y: np.ndarray, x: np.ndarray, z: np.ndarray, groups: np.ndarray, *,
                 reml: bool = True):
        y, x, z = np.asarray(y, float), np.asarray(x, float), np.asarray(z, float)
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        m = int(codes.max()) + 1
        self.n, self.p = x.shape
        self.q = z.shape[1]
        self.reml = reml
        self.xtx, self.xty, self.yty = x.T @ x, x.T @ y, float(y @ y)
        # per-group cross-products, summed with one scatter-add each
        self.ztz = np.zeros((m, self.q, self.q))
        np.add.at(self.ztz, codes, z[:, :, None] * z[:, None, :])
        self.ztx = np.zeros((m, self.q, self.p))
        np.add.at(self.ztx, codes, z[:, :, None] * x[:, None, :])
        self.zty = np.zeros((m, self.q))
        np.add.at(self.zty, codes, z * y[:, None])
        self._tril = np.tril_indices(self.q)
        # theta is ordered column by column as in lme4 (L11, L21, L22 for q = 2)
        order = np.lexsort((self._tril[0], self._tril[1]))
        self._tril = (self._tril[0][order], self._tril[1][order])

    @property
    def n_theta(self) -> int:
        return self.q * (self.q + 1) // 2

    def lower_bounds(self) -> list[tuple[float | None, float | None]]:
        """lme4's bounds: diagonal entries of ``L`` are non-negative, the others free."""
        return [(0.0, None) if i == j else (None, None) for i, j in zip(*self._tril,
                                                                       strict=True)]

    def factor(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.q, self.q))
        lam[self._tril] = theta
        return lam

    def theta_from_cov(self, cov_re: np.ndarray, scale: float) -> np.ndarray:
        """``theta`` of a random-effects covariance on the data scale and a residual variance."""
        rel = np.atleast_2d(cov_re) / scale
        try:
            lam = np.linalg.cholesky(rel)
        except np.linalg.LinAlgError:
            # singular (boundary) covariance: the factor of its PSD square root's QR
            w, v = np.linalg.eigh((rel + rel.T) / 2)
            root = v * np.sqrt(np.clip(w, 0, None))
            r = np.linalg.qr(root.T, mode="r")
            lam = r.T * np.sign(np.where(np.diag(r) == 0, 1, np.diag(r)))[None, :]
        return lam[self._tril]

    def gls(self, theta: np.ndarray) -> GlsAtTheta:
        """``X'V0^-1X``, ``b(theta)``, ``r'V0^-1r`` and the two log-determinants."""
        lam = self.factor(theta)
        a = np.einsum("ji,gjk,kl->gil", lam, self.ztz, lam)   # L' Z_i'Z_i L
        mm = a + np.eye(self.q)[None]
        ux = np.einsum("ji,gjk->gik", lam, self.ztx)           # L' Z_i'X_i
        uy = np.einsum("ji,gj->gi", lam, self.zty)             # L' Z_i'y_i
        chol = np.linalg.cholesky(mm)
        wx = np.linalg.solve(chol, ux)
        wy = np.linalg.solve(chol, uy[..., None])[..., 0]
        xtvx = self.xtx - np.einsum("gki,gkj->ij", wx, wx)
        xtvy = self.xty - np.einsum("gki,gk->i", wx, wy)
        ytvy = self.yty - float(np.einsum("gk,gk->", wy, wy))
        cx = np.linalg.cholesky(xtvx)
        beta = np.linalg.solve(cx.T, np.linalg.solve(cx, xtvy))
        rss = max(ytvy - float(xtvy @ beta), np.finfo(float).tiny)
        logdet_v0 = 2 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
        return GlsAtTheta(xtvx, beta, rss, logdet_v0, 2 * float(np.log(np.diag(cx)).sum()))

    def _dof(self) -> int:
        return self.n - self.p if self.reml else self.n

    def sigma2(self, theta: np.ndarray) -> float:
        """Residual variance that maximises the criterion at ``theta``: rss / (n - p) (REML)."""
        return self.gls(theta).rss / self._dof()

    def deviance(self, varpar: np.ndarray) -> float:
        """Deviance at ``varpar = (theta..., sigma)`` (lmerTest's parametrisation)."""
        theta, sigma = np.asarray(varpar[:-1], float), float(varpar[-1])
        g = self.gls(theta)
        s2 = sigma * sigma
        dev = g.logdet_v0 + self.n * (LOG_2PI + np.log(s2)) + g.rss / s2
        if self.reml:
            dev += g.logdet_xtvx - self.p * (LOG_2PI + np.log(s2))
        return float(dev)

    def profiled_deviance(self, theta: np.ndarray) -> float:
        """Deviance with ``sigma^2`` at its optimum for ``theta`` (the function lme4 minimises)."""
        g = self.gls(np.asarray(theta, float))
        dof = self._dof()
        dev = g.logdet_v0 + dof * (1 + LOG_2PI + np.log(g.rss / dof))
        if self.reml:
            dev += g.logdet_xtvx
        return float(dev)

    def cov_beta(self, varpar: np.ndarray) -> np.ndarray:
        """``Var(b) = (X'V^-1X)^-1 = sigma^2 (X'V0^-1X)^-1`` at ``varpar = (theta..., sigma)``."""
        g = self.gls(np.asarray(varpar[:-1], float))
        return float(varpar[-1]) ** 2 * np.linalg.inv(g.xtvx)

    def optimise(self, theta0: np.ndarray) -> np.ndarray:
        """Minimise the profiled deviance from ``theta0`` within lme4's bounds.

        statsmodels stops on its own tolerances and in its own parametrisation; the
        Satterthwaite degrees of freedom need the Hessian at the optimum itself (there the
        gradient vanishes and the result does not depend on the parametrisation), so the
        estimate is polished here, from several starts, keeping the best.
        """
        bounds = self.lower_bounds()
        lower = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
        starts = [np.maximum(np.asarray(theta0, float), lower), np.where(lower == 0, 1.0, 0.0)]
        best_x, best_f = None, np.inf
        for start in starts:
            if not np.all(np.isfinite(start)):
                continue
            res = minimize(self.profiled_deviance, start, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
            if res.fun < best_f:
                best_x, best_f = res.x, float(res.fun)
        if best_x is None:
            raise np.linalg.LinAlgError("no finite starting value for the variance parameters")
        return np.asarray(best_x, float)
