"""nilearn's AR(1) first-level fit, vectorised over the voxels that share an AR coefficient.

The model is nilearn's own (``nilearn.glm.first_level.run_glm`` with ``noise_model="ar1"``,
``bins=100``, nilearn 0.14), step by step:

1. OLS of every voxel on the design ``X`` (``regression.OLSModel``: ``beta = pinv(X) @ Y``).
2. The lag-1 Yule-Walker coefficient of each voxel's OLS residuals (``_yule_walker``): the
   residuals minus their grand mean (one scalar over all voxels and volumes), ``r0 = sum y_t^2
   / n^2``, ``r1 = sum y_t y_{t+1} / (n (n - 1))``, ``rho = r1 / r0``.
3. ``rho`` truncated towards zero to a multiple of 1 / bins (``int(rho * bins) / bins``).
4. For each distinct binned ``rho``: ``regression.ARModel``, i.e. ``X`` and ``Y`` whitened by
   ``w_t = v_t - rho v_{t-1}`` (the first row left as it is), OLS on the whitened data,
   ``dispersion = sum(whitened residuals^2) / (n - columns)``, ``cov = pinv(wX) pinv(wX)'``.
5. A t contrast ``c``: effect ``c @ theta``, variance ``c cov c' dispersion``
   (``contrasts.compute_contrast``), degrees of freedom ``n - rank(X)``; t, p and z come from
   nilearn's :class:`~nilearn.glm.contrasts.Contrast` itself.

What differs is only how the work is laid out, which is where the time went:

* nilearn solves a 1x1 Toeplitz system per voxel through ``scipy.linalg.toeplitz`` in a Python
  loop (step 2); here ``rho`` is one division over all voxels;
* nilearn whitens and refits the data once per bin (step 4), after labelling voxels by
  ``str(rho)`` and comparing the string array once per label.  Here the data are read once:
  one pass over blocks of voxels keeps, beside the OLS residuals' sums for ``rho``, the
  per-voxel sums from which any AR(1) refit follows (``X'y``, the neighbours' ``X'y``,
  ``y'y``, the lag-1 ``y'y``: :class:`_Sums`), so step 4 is arithmetic on ``(columns,
  voxels)`` arrays and one ``columns x columns`` matrix per bin, with no whitened copy of the
  data and no regrouping of it;
* the data stay float32 ``(time, voxel)`` inside the mask; float64 copies are made one block
  of voxels (1 MB) at a time (nilearn converts all of ``Y`` to float64 at once, in OLS and
  again per label), so the peak memory is about the masked series.

On the bench session (41x50x43x120 at 4 mm, 29k voxels in the mask, ~75 bins), given the
same design and data, the fit takes 22 ms (one BLAS thread), against 37 ms for the former
regrouped refit here and 2.5-3 s for ``FirstLevelModel.fit`` and ``compute_contrast``.  The
numbers are nilearn's to rounding: t and z within 1e-10 of ``run_glm`` + ``compute_contrast``
on that session.  ``rho`` comes from the explicit OLS residuals, as nilearn's does, so that
rounding cannot move a voxel to another bin (only a ``rho * bins`` within a few ulp of an
integer could, nilearn's 1x1 ``solve`` against a division); ``tests/test_glm_ar1.py``
compares every map with ``FirstLevelModel``'s, the binned coefficients with
``_yule_walker``'s exactly, and a rank-deficient design's fit with ``run_glm``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as spl
from nilearn.glm.contrasts import Contrast, expression_to_contrast_vector

from hermesflow.glm.bold import unmask

# nilearn's default number of AR(1) bins (FirstLevelModel.fit(bins=100)).
BINS = 100
# float64 elements per block of voxels: 1 MB temporaries, reused from the allocator (fresh
# multi-MB arrays cost more in page faults than the arithmetic on them), whatever the run length.
_BLOCK_ELEMENTS = 1 << 17
# Residual sum of squares, as a share of the whitened data's, at or below which a voxel is
# fitted exactly: rounding leaves 1e-13 or less; BOLD's noise (sd 0.1-5 % of the signal)
# leaves 1e-6 or more.
_EXACT_FIT = 1e-10


def _block_size(n_volumes: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_volumes, 1))


def _blocks(n_voxels: int, n_volumes: int):
    step = _block_size(n_volumes)
    for first in range(0, n_voxels, step):
        yield slice(first, min(first + step, n_voxels))


@dataclass
class _Sums:
    """What one pass over the data keeps per voxel: enough to refit it at any AR(1) ``rho``.

    With ``w`` the data whitened at ``rho`` and ``wX`` the design (``w_0 = y_0``, ``w_t = y_t
    - rho y_{t-1}``), ``wX' w = cross - rho near + rho^2 (cross - x_{n-1} y_{n-1})`` and ``w'w
    = squares - 2 rho lagged + rho^2 (squares - y_{n-1}^2)``, where ``cross = X'y``, ``near =
    sum_t (x_{t-1} + x_{t+1}) y_t`` (the neighbours that exist), ``squares = y'y`` and
    ``lagged = sum_t y_t y_{t-1}``.
    """

    rho: np.ndarray        # (n_voxels,) binned AR(1) coefficient of the OLS residuals
    cross: np.ndarray      # (n_columns, n_voxels)
    near: np.ndarray       # (n_columns, n_voxels)
    squares: np.ndarray    # (n_voxels,)
    lagged: np.ndarray     # (n_voxels,)
    last: np.ndarray       # (n_voxels,) y_{n-1}


def _neighbours(design: np.ndarray) -> np.ndarray:
    """Each row replaced by the sum of the rows before and after it (those that exist), so
    that ``_neighbours(X)' y = sum_t (x_{t-1} + x_{t+1}) y_t``."""
    neighbours = np.zeros_like(design)
    neighbours[:-1] += design[1:]
    neighbours[1:] += design[:-1]
    return neighbours


def _at_rho(plain, near, last, rho):
    """A sum over the data whitened at ``rho``, from the plain sums (see :class:`_Sums`):
    ``plain (1 + rho^2) - rho near - rho^2 last``, where ``last`` is the plain sum's term of
    the last volume (``x_{n-1} y_{n-1}``, ``y_{n-1}^2``)."""
    return plain * (1.0 + rho * rho) - near * rho - last * (rho * rho)


def _one_pass(data: np.ndarray, design: np.ndarray, bins: int | None = BINS) -> _Sums:
    """The per-voxel sums of :class:`_Sums`, read from ``data`` once, block by block;
    ``bins=None`` (OLS): ``rho`` is 0 and ``near`` is not computed."""
    n, n_voxels = data.shape
    n_columns = design.shape[1]
    # One matrix product per block gives the OLS fit and both cross products (OLS: X'y only).
    stacked = (np.vstack([spl.pinv(design), design.T, _neighbours(design).T]) if bins
               else design.T)
    cross, near = np.empty((n_columns, n_voxels)), np.empty((n_columns, n_voxels))
    squares, lagged, last = (np.empty(n_voxels) for _ in range(3))
    # nilearn's Yule-Walker subtracts the grand mean g of all residuals before the lag-0 and
    # lag-1 sums.  One pass keeps, per voxel, the sums that make the centred ones once g is
    # known: sum (r - g)^2 = S2 - 2 g S + n g^2 and sum (r_t - g)(r_t+1 - g) =
    # L - g (S - r_n + S - r_1) + (n - 1) g^2.  With an intercept in the design S is ~0 and
    # g tiny, so the corrections add no rounding that could move a coefficient across a bin.
    r_squares, r_sums, r_lagged, r_first, r_last = (np.empty(n_voxels) for _ in range(5))
    for block in _blocks(n_voxels, n):
        values = np.asarray(data[:, block], np.float64)
        products = stacked @ values
        squares[block] = np.einsum("tv,tv->v", values, values)
        if not bins:
            cross[:, block] = products
            continue
        cross[:, block] = products[n_columns:2 * n_columns]
        near[:, block] = products[2 * n_columns:]
        lagged[block] = np.einsum("tv,tv->v", values[:-1], values[1:])
        last[block] = values[-1]
        # The OLS residuals as nilearn computes them (pinv(X) y), for the coefficients.
        residuals = values - design @ products[:n_columns]
        r_squares[block] = np.einsum("tv,tv->v", residuals, residuals)
        r_sums[block] = residuals.sum(axis=0)
        r_lagged[block] = np.einsum("tv,tv->v", residuals[:-1], residuals[1:])
        r_first[block], r_last[block] = residuals[0], residuals[-1]
    if not bins:
        return _Sums(np.zeros(n_voxels), cross, near, squares, lagged, last)
    g = float(r_sums.sum()) / (n * n_voxels)
    r0 = (r_squares - 2.0 * g * r_sums + n * g * g) / (n * n)
    r1 = (r_lagged - g * (2.0 * r_sums - r_first - r_last) + (n - 1) * g * g) / ((n - 1) * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = r1 / r0 * bins
    # Truncated towards zero (nilearn's int()); |r1 / r0| <= n / (n - 1), so only a voxel
    # without residuals (0 / 0, a constant series) needs a bin chosen for it: 0.
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), -bins, bins)
    rho = scaled.astype(int) * 1.0 / bins
    return _Sums(rho, cross, near, squares, lagged, last)


def ar1_coefficients(data: np.ndarray, design: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Binned lag-1 autocorrelation of each voxel's OLS residuals, as nilearn bins it.

    Parameters
    ----------
    data
        ``(n_volumes, n_voxels)``, any float dtype (float32 is not copied whole).
    design
        ``(n_volumes, n_columns)`` design matrix.
    bins
        Coefficients are truncated to multiples of ``1 / bins``.
    """
    return _one_pass(data, np.asarray(design, np.float64), bins).rho


def _whitened_design(design: np.ndarray, rho: float) -> np.ndarray:
    """``ARModel.whiten`` of order 1 of the design: ``x_t - rho x_{t-1}`` from row 2 on."""
    whitened = design.copy()
    whitened[1:] -= rho * design[:-1]
    return whitened


@dataclass
class Ar1Fit:
    """The per-voxel results nilearn keeps with ``minimize_memory=True``, grouped by bin.

    Attributes
    ----------
    theta : ndarray, (n_columns, n_voxels)
        Parameter estimates (of the whitened model for AR(1)).
    dispersion : ndarray, (n_voxels,)
        Residual variance of the whitened model.
    label : ndarray of int, (n_voxels,)
        Index into ``rho`` and ``cov`` of each voxel's AR bin.
    rho : ndarray, (n_labels,)
        The binned AR(1) coefficients (0 alone for OLS).
    cov : ndarray, (n_labels, n_columns, n_columns)
        ``pinv(wX) pinv(wX)'`` of each bin.
    df_residuals : float
        ``n_volumes - rank(X)``, the degrees of freedom of every t.
    """

    theta: np.ndarray
    dispersion: np.ndarray
    label: np.ndarray
    rho: np.ndarray
    cov: np.ndarray
    df_residuals: float

    def contrast(self, vector: np.ndarray) -> Contrast:
        """nilearn's t :class:`~nilearn.glm.contrasts.Contrast` of ``vector`` (one row)."""
        vector = np.asarray(vector, np.float64).ravel()
        effect = vector @ self.theta
        # c cov c' per bin, then sqrt and square as nilearn's Tcontrast does.
        per_bin = np.array([vector @ (cov @ vector) for cov in self.cov])
        variance = np.sqrt(per_bin[self.label] * self.dispersion) ** 2
        return Contrast(effect=effect, variance=variance, dim=1, dof=self.df_residuals,
                        stat_type="t")


def _tail_probabilities(contrast: Contrast) -> None:
    """Give a t contrast its ``p`` and ``1 - p`` from one Student-t tail evaluation.

    nilearn's ``Contrast.z_score`` evaluates ``t.sf`` and ``t.cdf`` over every voxel (the
    incomplete beta function twice, the GLM's dearest step after the fit) and then takes z
    from whichever of the two is the small tail.  ``scipy.stats.t.sf(t)`` is
    ``special.stdtr(dof, -t)``, so the small tail ``stdtr(dof, -|t|)`` is exactly the value
    nilearn takes z from; the other is one minus it (within 1e-16).  nilearn's own
    ``z_score`` then runs on these.
    """
    from scipy.special import stdtr

    stat = contrast.stat()
    small = stdtr(np.minimum(contrast.dof, contrast.dofmax), -np.abs(stat))
    positive = stat > 0
    contrast.p_value_ = np.where(positive, small, 1.0 - small)
    contrast.one_minus_pvalue_ = np.where(positive, 1.0 - small, small)


def _bins(rho: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct binned coefficients, ascending, and each voxel's index into them
    (``np.unique(rho, return_inverse=True)`` by counting the ``2 bins + 1`` possible bins)."""
    codes = np.rint(rho * bins).astype(np.intp) + bins
    present = np.flatnonzero(np.bincount(codes, minlength=2 * bins + 1))
    index = np.zeros(2 * bins + 1, np.int16)
    index[present] = np.arange(len(present))
    # The same floats as _one_pass made: an integer times 1.0 over bins.
    return (present - bins) * 1.0 / bins, index[codes]


def _covariances(design: np.ndarray, rho: np.ndarray, full_rank: bool) -> np.ndarray:
    """``pinv(wX) pinv(wX)'`` of the design whitened at each ``rho``: ``(len(rho), p, p)``.

    A full-rank design's is the inverse of ``wX' wX`` (the same matrix, ~1e-10 from nilearn's
    SVD on the trial's designs), all bins at once from the design's own sums (as for the data
    in :class:`_Sums`); a rank-deficient one goes through nilearn's SVD pseudo-inverse bin by
    bin, whose cut-off decides what is estimable.
    """
    if not full_rank:
        covs = []
        for value in rho:
            calc_beta = spl.pinv(_whitened_design(design, value), check_finite=False)
            covs.append(calc_beta @ calc_beta.T)
        return np.array(covs)
    return np.linalg.inv(_at_rho(design.T @ design, _neighbours(design).T @ design,
                                 np.outer(design[-1], design[-1]), rho[:, None, None]))


def fit_glm(data: np.ndarray, design: np.ndarray, noise_model: str = "ar1",
            bins: int = BINS) -> Ar1Fit:
    """Fit every voxel of ``data`` (``(n_volumes, n_voxels)``) on ``design``, as nilearn's
    ``run_glm`` does with ``noise_model`` ``"ar1"`` or ``"ols"``."""
    if noise_model not in ("ar1", "ols"):
        raise ValueError(f"noise_model {noise_model!r}: hermesflow fits 'ar1' or 'ols'")
    design = np.asarray(design, np.float64)
    n, n_columns = design.shape
    # OLS is ARModel with rho = 0 (whitening is the identity).
    sums = _one_pass(data, design, bins if noise_model == "ar1" else None)
    rho, label = _bins(sums.rho, bins)
    if noise_model == "ols":
        xy, yy = sums.cross, sums.squares
    else:  # per voxel, the whitened model's X'y and y'y at its own rho (see _Sums)
        xy = _at_rho(sums.cross, sums.near, np.outer(design[-1], sums.last), sums.rho)
        yy = _at_rho(sums.squares, 2.0 * sums.lagged, sums.last ** 2, sums.rho)
    del sums
    # theta = pinv(wX) w = pinv(wX) pinv(wX)' (wX' w): the bin's covariance times X'y, the
    # same for a rank-deficient design (pinv(A) pinv(A)' A' = pinv(A)).
    rank = np.linalg.matrix_rank(design, np.abs(design).sum() * np.finfo(np.float64).eps)
    cov = _covariances(design, rho, full_rank=rank == n_columns)
    theta = np.empty_like(xy)
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(len(rho) + 1))
    for k in range(len(rho)):
        voxels = order[bounds[k]:bounds[k + 1]]
        theta[:, voxels] = cov[k] @ xy[:, voxels]
    # Residual sum of squares of a least-squares fit: w'w - theta' wX'w.
    residual = yy - np.einsum("cv,cv->v", theta, xy)
    # A series the design fits to rounding (a constant voxel at the mask's edge) has no
    # residual variance to test an effect against.  nilearn divides its rounding by a floor
    # (|z| of 0.4 to 3 on a constant series); here it has no effect: effect, variance, t and
    # z are 0.
    exact = residual <= _EXACT_FIT * yy
    theta[:, exact] = 0.0
    dispersion = np.where(exact, 0.0, residual) / (n - n_columns)
    return Ar1Fit(theta, dispersion, label, rho, cov, float(n - rank))


_OUTPUTS = ("z_score", "stat", "p_value", "effect_size", "effect_variance")


class RunModel:
    """One fitted run, queried like nilearn's ``FirstLevelModel`` (``compute_contrast``).

    Parameters
    ----------
    fit
        The voxels' results (:func:`fit_glm`).
    design
        The run's design matrix (kept volumes only), column names as nilearn's.
    inside
        Boolean 3D mask of the fitted voxels (their order is the mask's F order).
    affine
        Of the output images.
    """

    def __init__(self, fit: Ar1Fit, design: pd.DataFrame, inside: np.ndarray,
                 affine: np.ndarray):
        self.fit = fit
        self.design = design
        self.inside = inside
        self.affine = affine

    @property
    def design_matrices_(self) -> list[pd.DataFrame]:
        """nilearn's attribute: the design of each run (one here)."""
        return [self.design]

    def compute_contrast(self, contrast_def: str | np.ndarray, output_type: str = "z_score"):
        """Maps of a t contrast (an expression of the design's columns or a vector).

        ``output_type`` is one of nilearn's (``z_score``, ``stat``, ``p_value``,
        ``effect_size``, ``effect_variance``) or ``all`` for a dict of every one.
        """
        if output_type != "all" and output_type not in _OUTPUTS:
            raise ValueError(f"output_type {output_type!r}: one of {', '.join(_OUTPUTS)}, all")
        vector = (expression_to_contrast_vector(contrast_def, self.design.columns.tolist())
                  if isinstance(contrast_def, str) else contrast_def)
        contrast = self.fit.contrast(vector)
        names = _OUTPUTS if output_type == "all" else (output_type,)
        if "z_score" in names or "p_value" in names:
            _tail_probabilities(contrast)
        maps = {}
        for name in names:
            # The z score computed the p values already (nilearn's Contrast keeps them).
            values = (contrast.p_value_ if name == "p_value" and contrast.p_value_ is not None
                      else getattr(contrast, name)())
            maps[name] = unmask(values, self.inside, self.affine)
        return maps if output_type == "all" else maps[output_type]
