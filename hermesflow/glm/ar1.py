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
* nilearn labels voxels by ``str(rho)`` and compares the string array once per label, both in
  the fit and again in every contrast; here the voxels of a bin are found once
  (``np.unique``) and every step after it is a matrix product over a bin's voxels;
* the data stay float32 ``(time, voxel)`` inside the mask, regrouped once by bin; float64
  copies are made one block of voxels (1 MB) at a time (nilearn converts all of ``Y`` to
  float64 at once, in OLS and again per label), so the peak memory is about twice the masked
  series.

On the bench session (41x50x43x120 at 4 mm, 29k voxels in the mask, ~75 bins), given the
same design and data, this fit and its two contrasts take a tenth of the time of
``FirstLevelModel.fit`` and ``compute_contrast`` (0.3 s against 2.5-3 s on a loaded machine;
nilearn's t->z, kept, is a tenth of ours); the GLM's peak memory above imports fell from 4.5 to 1.5 times the float32 BOLD (with
:mod:`hermesflow.glm.bold`).  The numbers are nilearn's to rounding: the bin of a voxel whose
``rho * bins`` lies within a few ulp of an integer could in principle differ (nilearn's 1x1
``solve`` against a division); ``tests/test_glm_ar1.py`` compares every map with
``FirstLevelModel``'s and the binned coefficients with ``_yule_walker``'s exactly.
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


def _block_size(n_volumes: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_volumes, 1))


def _blocks(n_voxels: int, n_volumes: int, start: int = 0):
    step = _block_size(n_volumes)
    for first in range(start, n_voxels, step):
        yield slice(first, min(first + step, n_voxels))


def _whiten(values: np.ndarray, rho: float) -> np.ndarray:
    """``ARModel.whiten`` of order 1: ``v_t - rho v_{t-1}`` from the second row on (float64).

    One float64 array is made, not nilearn's three; ``(-rho v) + v'`` rounds exactly as
    ``v' - rho v`` does.  ``rho = 0`` (OLS) leaves the values as they are.
    """
    values = np.asarray(values, np.float64)
    if rho == 0:
        return values
    whitened = np.empty_like(values)
    whitened[0] = values[0]
    np.multiply(values[:-1], -rho, out=whitened[1:])
    whitened[1:] += values[1:]
    return whitened


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
    n, n_voxels = data.shape
    design = np.asarray(design, np.float64)
    calc_beta = spl.pinv(design)
    # nilearn's Yule-Walker subtracts the grand mean g of all residuals before the lag-0 and
    # lag-1 sums.  One pass keeps, per voxel, the sums that make the centred ones once g is
    # known: sum (r - g)^2 = S2 - 2 g S + n g^2 and sum (r_t - g)(r_t+1 - g) =
    # L - g (S - r_n + S - r_1) + (n - 1) g^2.  With an intercept in the design S is ~0 and
    # g tiny, so the corrections add no rounding that could move a coefficient across a bin.
    squares, sums, lagged, first, last = (np.empty(n_voxels) for _ in range(5))
    for block in _blocks(n_voxels, n):
        values = np.asarray(data[:, block], np.float64)
        residuals = values - design @ (calc_beta @ values)
        squares[block] = np.einsum("tv,tv->v", residuals, residuals)
        sums[block] = residuals.sum(axis=0)
        lagged[block] = np.einsum("tv,tv->v", residuals[:-1], residuals[1:])
        first[block], last[block] = residuals[0], residuals[-1]
    g = float(sums.sum()) / (n * n_voxels)
    r0 = (squares - 2.0 * g * sums + n * g * g) / (n * n)
    r1 = (lagged - g * (2.0 * sums - first - last) + (n - 1) * g * g) / ((n - 1) * n)
    rho = r1 / r0
    return (rho * bins).astype(int) * 1.0 / bins


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


def fit_glm(data: np.ndarray, design: np.ndarray, noise_model: str = "ar1",
            bins: int = BINS) -> Ar1Fit:
    """Fit every voxel of ``data`` (``(n_volumes, n_voxels)``) on ``design``, as nilearn's
    ``run_glm`` does with ``noise_model`` ``"ar1"`` or ``"ols"``."""
    if noise_model not in ("ar1", "ols"):
        raise ValueError(f"noise_model {noise_model!r}: hermesflow fits 'ar1' or 'ols'")
    design = np.asarray(design, np.float64)
    n, n_columns = design.shape
    if noise_model == "ols":
        rho, label = np.zeros(1), np.zeros(data.shape[1], int)
    else:
        rho, label = np.unique(ar1_coefficients(data, design, bins), return_inverse=True)
    # The voxels of each bin side by side: one gather here, contiguous blocks below.
    order = np.argsort(label, kind="stable")
    grouped = np.take(data, order, axis=1)
    bounds = np.searchsorted(label[order], np.arange(len(rho) + 1))
    theta = np.empty((n_columns, data.shape[1]))
    dispersion = np.empty(data.shape[1])
    cov = np.empty((len(rho), n_columns, n_columns))
    for k, value in enumerate(rho):
        # OLS is ARModel with rho = 0 (whitening is then the identity).
        whitened_design = _whiten(design, value)
        calc_beta = spl.pinv(whitened_design, check_finite=False)
        cov[k] = calc_beta @ calc_beta.T
        for block in _blocks(bounds[k + 1], n, start=bounds[k]):
            whitened = _whiten(grouped[:, block], value)
            beta = calc_beta @ whitened
            residuals = whitened - whitened_design @ beta
            theta[:, block] = beta
            dispersion[block] = np.sum(residuals ** 2, 0) / (n - n_columns)
    del grouped
    # Back to the mask's order.
    theta[:, order], dispersion[order] = theta.copy(), dispersion.copy()
    eps = np.abs(design).sum() * np.finfo(np.float64).eps
    return Ar1Fit(theta, dispersion, label, rho, cov,
                  float(n - np.linalg.matrix_rank(design, eps)))


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
