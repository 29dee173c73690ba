"""Randomisation inference for the arm terms of a longitudinal mixed model, fast.

The null hypothesis
-------------------
The test is of the *sharp* null: the arm has no effect at all, on any participant at any
session, so each participant's outcomes would have been the same under the other label.  Then
the observed labels are one draw from the trial's randomisation (2:1, within strata) and every
re-randomised labelling is equally likely; the p-value is the share of re-randomisations whose
statistic is at least as extreme as the observed one.  The test is exact at any sample size
whatever the outcome's distribution or correlation; it does not need the mixed model to be
right (the model only makes the statistic powerful).  The statistic of a term is its GLS z
(estimate over standard error, two-sided); that of the joint test is the Wald chi-square of the
arm x time terms.  With ``P`` random relabellings ``p = (1 + hits) / (1 + P)`` and its Monte-
Carlo standard error is reported; a small trial's whole randomisation distribution is
enumerated instead (``p = hits / size``, no Monte-Carlo error).  Relabellings that leave an arm
term inestimable are dropped and counted; the test is then exact conditionally on the
relabellings that can be analysed.

Where a baseline difference between arms is plausible (an imbalance at the first session, or
an arm that shifts the level of every session alike) the sharp null is rejected for a reason
other than a different recovery.  The alternative is ``randomisation_null = 'no_interaction'``:
participant intercepts enter the statistic as fixed effects, so the arm x time statistics are
unchanged when any constant is added to all of a participant's values.  The randomisation test
of the arm x time terms is then exact for the composite null "the arm changes nobody's
trajectory" (it may shift levels, by any amount, differently per participant); the ``arm``
main term is not tested under it.  Adjusting for the baseline value (``covariates =
['baseline']``) is the usual model-based alternative.

As-treated sets are not randomised: there the "re-randomisation" is a permutation test that
assumes receipt of treatment was exchangeable; read the ITT randomisation p as the design-based
answer.

How it is fast
--------------
Refitting the mixed model for every relabelling is what makes naive randomisation slow.  Here
the variance components (random-effects covariance and residual variance) are estimated once
under the null model, which has no arm terms and hence does not depend on the labels.  With
them fixed, each relabelling's fit is generalised least squares.  After whitening by the
participants' covariance blocks and projecting out the label-free columns (Frisch-Waugh-Lovell),
the arm columns of a labelling ``a`` are ``sum_i a_i C_i`` for fixed matrices ``C_i``, so the
cross-products each relabelling needs are quadratic forms in ``a`` of precomputed Gram arrays:
a few small matrix products batched over all relabellings at once.  Because the statistic is a
fixed function of the labels given the data, the test stays exact under the sharp null.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from hermesflow.group.design import ModelData

#: A relabelling whose arm cross-product matrix has an eigenvalue below this share of its
#: largest one makes some arm term inestimable and is dropped from the reference set.
ESTIMABLE_TOL = 1e-9
#: Null hypotheses on offer (see the module docstring).
NULLS = ("sharp", "no_interaction")


def relabellings(
    labels: pd.Series,
    n_permutations: int,
    *,
    strata: pd.DataFrame | None = None,
    blocks: pd.Series | None = None,
    seed: int = 0,
    exact: bool = True,
) -> pd.DataFrame:
    """Re-randomise labels as the trial did: permute them within strata, or within blocks.

    Permuting the observed labels keeps the number of each arm per stratum (so a 2:1 trial
    stays 2:1 in every stratum), which is the randomisation distribution of a trial with fixed
    allocation counts.  With ``blocks`` (permuted-block randomisation as recorded in
    participants.tsv) the labels are permuted within each block of each stratum instead, so
    every block keeps its size and its observed allocation (2 msc : 1 control in a block of
    3): the distribution then has ``prod_b C(size_b, treated_b)`` members (12 participants in
    blocks of 3 at 2:1: 3^4 = 81) rather than C(12, 4) = 495.  When that distribution has at
    most ``n_permutations`` members and ``exact`` is true, every member is listed once and
    ``attrs['exact']`` is True: the p-value is then exact, with no Monte-Carlo error.

    Parameters
    ----------
    labels : Series
        0/1 labels indexed by participant id.
    n_permutations : int
        Number of relabellings drawn (with replacement from the randomisation distribution).
    strata : DataFrame, optional
        Participant-level stratification columns, same index as ``labels``.
    blocks : Series, optional
        Randomisation block of each participant (block ids may repeat across strata).
    seed : int
        Seed of the NumPy generator.
    exact : bool
        Enumerate the whole distribution when it is small enough.

    Returns
    -------
    DataFrame
        One row per relabelling, one column per participant.  ``attrs``: ``exact``,
        ``size`` (members of the randomisation distribution), ``scheme`` (in words).
    """
    values = labels.to_numpy(float)
    parts = []
    if strata is not None and strata.shape[1]:
        parts.append(strata.reindex(labels.index).astype("string").fillna("n/a"))
    if blocks is not None:
        parts.append(blocks.reindex(labels.index).astype("string").fillna("n/a").to_frame())
    if parts:
        keys = pd.concat(parts, axis=1).agg("|".join, axis=1)
        groups = pd.factorize(keys)[0]
    else:
        groups = np.zeros(len(values), int)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    size = math.prod(math.comb(len(idx), int(values[idx].sum())) for idx in members)
    if exact and size <= n_permutations:
        out = _enumerate(values, members)
    else:
        rng = np.random.default_rng(seed)
        out = np.empty((n_permutations, len(values)))
        for idx in members:
            out[:, idx] = rng.permuted(np.tile(values[idx], (n_permutations, 1)), axis=1)
    frame = pd.DataFrame(out, columns=labels.index)
    frame.attrs.update(exact=bool(exact and size <= n_permutations), size=size,
                       scheme=_scheme(strata, blocks, len(members)))
    return frame


def _scheme(strata: pd.DataFrame | None, blocks: pd.Series | None, n_groups: int) -> str:
    stratified = strata is not None and strata.shape[1] > 0
    by = f" by {', '.join(map(str, strata.columns))}" if stratified else ""
    if blocks is not None:
        where = f" within strata{by}" if stratified else ""
        return f"permuted blocks{where} ({n_groups} blocks)"
    if stratified:
        return f"permutation within strata{by} ({n_groups} strata)"
    return "permutation of the whole trial"


def _enumerate(values: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    per_stratum = []
    for idx in members:
        k = int(values[idx].sum())
        options = []
        for chosen in itertools.combinations(range(len(idx)), k):
            row = np.zeros(len(idx))
            row[list(chosen)] = 1.0
            options.append(row)
        per_stratum.append(options)
    out = []
    for combo in itertools.product(*per_stratum):
        row = np.empty(len(values))
        for idx, part in zip(members, combo, strict=True):
            row[idx] = part
        out.append(row)
    return np.asarray(out)


@dataclass
class RandomisationResult:
    """Randomisation p-values of the arm terms and the joint arm x time test."""

    terms: list[str]
    p_terms: np.ndarray
    mcse_terms: np.ndarray
    p_joint: float
    mcse_joint: float
    n_valid: int
    n_dropped: int
    observed_z: np.ndarray
    observed_chi2: float


class GLSRandomisation:
    """Arm-term GLS statistics for many labellings with the variance components held fixed.

    Parameters
    ----------
    data : ModelData
        The model's matrices.
    cov_re : ndarray (q, q)
        Random-effects covariance on the data scale (from the null-model fit).
    scale : float
        Residual variance.
    null : {'sharp', 'no_interaction'}
        ``'sharp'``: statistics of every arm term from the model as specified.
        ``'no_interaction'``: participant intercepts enter as fixed effects, so the arm x time
        statistics are unchanged by adding any constant to a participant's values; the test is
        then exact for "the arm does not change anyone's trajectory", whatever it does to their
        level.  Only the arm x time terms are tested, with a random-intercept covariance
        (``cov_re`` and ``scale`` are then ignored: within-participant least squares).
    """

    def __init__(self, data: ModelData, cov_re: np.ndarray, scale: float, *,
                 null: str = "sharp"):
        if null not in NULLS:
            raise ValueError(f"randomisation null {null!r} unknown; use one of {NULLS}")
        self.data = data
        n_s = data.n_subjects
        x0, basis, z = data.x_fixed, data.x_arm_basis, data.z
        self.terms = list(data.arm_names)
        if null == "no_interaction":
            x0 = np.column_stack([x0, np.eye(n_s)[data.subject]])
            basis, self.terms = basis[:, 1:], self.terms[1:]
            if not self.terms:
                raise ValueError("the no_interaction null needs at least two sessions")
            # With participant intercepts fixed, GLS under a random intercept is within-
            # participant least squares; its residual variance is itself unchanged by level
            # shifts, which keeps the statistic (and so the test) invariant to them.
            z, cov_re = z[:, :1], np.zeros((1, 1))
            scale = _residual_variance(data.y, x0)
        # joint test: the arm x time terms (all columns under no_interaction)
        self._joint = slice(1, None) if null == "sharp" else slice(0, None)
        k = basis.shape[1]
        whitened = whiten(np.column_stack([data.y, x0, basis]), z, data.subject, cov_re,
                          scale)
        yw = whitened[:, 0]
        q0 = _orthonormal_basis(whitened[:, 1:1 + x0.shape[1]])
        bw = whitened[:, 1 + x0.shape[1]:]
        y_res = yw - q0 @ (q0.T @ yw)
        # Column (i, j) holds arm-basis column j restricted to participant i's rows.
        spread = np.zeros((len(yw), n_s * k))
        cols = data.subject[:, None] * k + np.arange(k)[None, :]
        np.put_along_axis(spread, cols, bw, axis=1)
        c = spread - q0 @ (q0.T @ spread)
        self._gram = (c.T @ c).reshape(n_s, k, n_s, k)
        self._cross = (c.T @ y_res).reshape(n_s, k)
        self.k = k

    def statistics(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z of each arm term, joint chi-square of the arm x time terms, estimability.

        Parameters
        ----------
        labels : ndarray (P, n_subjects)

        Returns
        -------
        z : ndarray (P, k)
        chi2 : ndarray (P,)
            NaN when there are no arm x time terms.
        estimable : ndarray (P,) of bool
        """
        labels = np.atleast_2d(labels)
        ata = np.einsum("pi,ijml,pm->pjl", labels, self._gram, labels, optimize=True)
        aty = labels @ self._cross
        eig = np.linalg.eigvalsh(ata)
        estimable = eig[:, 0] > ESTIMABLE_TOL * np.maximum(eig[:, -1], np.finfo(float).tiny)
        ata = np.where(estimable[:, None, None], ata, np.eye(self.k))
        inv = np.linalg.inv(ata)
        beta = np.einsum("pjl,pl->pj", inv, aty)
        se = np.sqrt(np.einsum("pjj->pj", inv))
        z = beta / se
        b = beta[:, self._joint]
        if b.shape[1]:
            v = inv[:, self._joint, self._joint]
            chi2 = np.einsum("pj,pj->p", b, np.linalg.solve(v, b[..., None])[..., 0])
        else:
            chi2 = np.full(len(labels), np.nan)
        z[~estimable] = np.nan
        chi2[~estimable] = np.nan
        return z, chi2, estimable

    def test(self, relabelled: np.ndarray, *, exact: bool = False) -> RandomisationResult:
        """Randomisation p-values of the observed labels against ``relabelled`` (P, n_s).

        With ``exact`` the rows are the whole randomisation distribution (which contains the
        observed labelling): p is the share at least as extreme, with no Monte-Carlo error.
        Otherwise they are random draws and p = (1 + hits) / (1 + draws).
        """
        z_obs, chi2_obs, ok = self.statistics(self.data.labels[None, :])
        z_obs, chi2_obs = z_obs[0], float(chi2_obs[0])
        z, chi2, estimable = self.statistics(relabelled)
        z, chi2 = z[estimable], chi2[estimable]
        n_valid = int(estimable.sum())
        if not ok[0] or n_valid == 0:
            nan_k = np.full(self.k, np.nan)
            return RandomisationResult(self.terms, nan_k, nan_k, np.nan, np.nan,
                                       n_valid, int((~estimable).sum()), z_obs, chi2_obs)
        # Ties within floating-point noise count as "at least as extreme".
        tol = 1e-10
        add = 0 if exact else 1
        hits = (np.abs(z) >= np.abs(z_obs) * (1 - tol)).sum(axis=0)
        p_terms = (add + hits) / (add + n_valid)
        if np.isfinite(chi2_obs):
            p_joint = float((add + (chi2 >= chi2_obs * (1 - tol)).sum()) / (add + n_valid))
        else:
            p_joint = np.nan
        mcse_terms = np.zeros(self.k) if exact else mc_error(p_terms, n_valid)
        mcse_joint = 0.0 if exact else float(mc_error(np.asarray(p_joint), n_valid))
        return RandomisationResult(
            terms=self.terms, p_terms=p_terms, mcse_terms=mcse_terms,
            p_joint=p_joint, mcse_joint=mcse_joint,
            n_valid=n_valid, n_dropped=int((~estimable).sum()), observed_z=z_obs,
            observed_chi2=chi2_obs,
        )


def _residual_variance(y: np.ndarray, x: np.ndarray) -> float:
    q = _orthonormal_basis(x)
    resid = y - q @ (q.T @ y)
    dof = max(len(y) - q.shape[1], 1)
    return max(float(resid @ resid) / dof, np.finfo(float).tiny)


def _orthonormal_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``x``, tolerant of collinear columns."""
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    keep = sv > sv[0] * max(x.shape) * np.finfo(float).eps * 10 if len(sv) else sv > 0
    return u[:, keep]


def mc_error(p: np.ndarray, n: int) -> np.ndarray:
    """Monte-Carlo standard error of a randomisation p-value estimated from ``n`` draws."""
    return np.sqrt(p * (1 - p) / max(n, 1))


def whiten(m: np.ndarray, z: np.ndarray, subject: np.ndarray, cov_re: np.ndarray,
           scale: float) -> np.ndarray:
    """Multiply each participant's rows by the inverse Cholesky factor of their covariance.

    ``V_i = Z_i G Z_i' + scale I``; afterwards ordinary least squares on the whitened rows is
    GLS on the original ones.
    """
    out = np.empty_like(m, dtype=float)
    order = np.argsort(subject, kind="stable")
    bounds = np.flatnonzero(np.diff(subject[order])) + 1
    for idx in np.split(order, bounds):
        zi = z[idx]
        v = zi @ cov_re @ zi.T + scale * np.eye(len(idx))
        chol = np.linalg.cholesky(v)
        out[idx] = solve_triangular(chol, m[idx], lower=True)
    return out
