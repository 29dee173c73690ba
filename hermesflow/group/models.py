"""The group stage's answer: one mixed model per outcome x analysis set, as one tidy table."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.group.design import (
    ANALYSIS_SETS,
    BLOCK_COLUMN,
    STRATUM_COLUMN,
    ModelData,
    ModelInputError,
    build_design,
    code_labels,
    participant_table,
    session_order,
    validate_design_columns,
)
from hermesflow.group.mixed import MixedFit, fit_mixed, joint_wald, wald_rows
from hermesflow.group.multiplicity import annotate
from hermesflow.group.randomisation import GLSRandomisation, relabellings

LOGGER = logging.getLogger("hermesflow")

JOINT_TERM = "arm:time (joint)"
NOT_FITTED = "(not fitted)"
REQUIRED_COLUMNS = ("participant_id", "session_id", "months", "outcome", "value")
MODEL_COLUMNS = [
    "outcome", "analysis_set", "term", "estimate", "se", "ci_low", "ci_high", "statistic",
    "df", "df_denominator", "test", "p_wald", "p_randomisation", "randomisation_mcse", "n_permutations",
    "n_permutations_dropped", "randomisation", "randomisation_null", "randomisation_scheme",
    "n_assignments", "n_subjects",
    "n_observations", "converged", "fallback", "warnings", "time_coding", "method", "formula",
    "family", "p_adjusted", "adjustment", "outcome_type",
]


def fit_group_models(long_table: pd.DataFrame, spec: Any, *,
                     source: str = "participants.tsv") -> pd.DataFrame:
    """Fit ``value ~ arm * time (+ covariates)`` per outcome and analysis set.

    Parameters
    ----------
    long_table : DataFrame
        One row per participant x session x outcome with columns ``participant_id``,
        ``session_id``, ``months``, ``arm``, ``treated``, ``outcome``, ``value`` and any
        covariate columns (``age``, ``sex``, ``lesion_side``, ``lesion_volume_ml`` ...).
    spec : GroupConfig
        Model specification: ``outcomes`` (empty: every outcome in the table),
        ``clinical_scores``, ``time``, ``covariates``, ``random_slope``, ``reml``,
        ``analysis_sets``, ``n_permutations``, ``seed``, ``strata``.  Optional attributes read
        with defaults: ``control_arm`` ('control'), ``treatment_arm`` ('msc'), ``alpha``
        (0.05), ``max_iter`` (None), ``ddf`` ('satterthwaite' or 'asymptotic').
    source : str
        Where the participant columns came from, for error messages.

    Returns
    -------
    DataFrame
        The model table (:data:`MODEL_COLUMNS`): one row per fixed effect plus the joint
        arm x time Wald test per model; an outcome that cannot be modelled gets one row with
        ``term = '(not fitted)'`` whose ``warnings`` say why.  ``p_randomisation`` is NaN when
        ``n_permutations`` is 0 and for terms that do not involve the arm.  Optional spec
        attributes for randomisation: ``randomisation_null`` ('sharp' or 'no_interaction', see
        :mod:`hermesflow.group.randomisation`), ``randomisation_exact`` (True: enumerate the
        randomisation distribution when it has at most ``n_permutations`` members).  Columns
        ``block`` and ``stratum`` of the participants, when present, make the relabellings
        permuted blocks (within strata) as recorded.

    Raises
    ------
    InputError
        Only when the table itself is unusable: required columns missing, an ``arm`` that is
        neither configured arm, ``treated`` not yes/no, a missing stratum or block.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in long_table.columns]
    if missing:
        raise InputError(None, f"group long table lacks column(s) {', '.join(missing)}",
                         "rebuild it with the ROI and clinical-score collection step")
    sessions = session_order(long_table)
    participants = participant_table(long_table)
    validate_design_columns(participants, control_arm=_control(spec),
                            treatment_arm=_treatment(spec), strata=list(spec.strata),
                            source=source)
    rows: list[dict] = []
    for analysis_set in spec.analysis_sets:
        relabelled = _relabellings(participants, analysis_set, spec)
        for outcome in model_outcomes(long_table, spec):
            rows.extend(fit_one_model(long_table, outcome, analysis_set, spec,
                                      sessions=sessions, relabelled=relabelled))
    table = annotate(pd.DataFrame(rows).reindex(columns=MODEL_COLUMNS), spec, JOINT_TERM)
    return table.reindex(columns=MODEL_COLUMNS)


def model_outcomes(long_table: pd.DataFrame, spec: Any) -> list[str]:
    """Outcomes to model: the configured ones, else every outcome of the table.

    Configured clinical scores absent from the table are skipped (the default lists all five);
    explicitly configured ``outcomes`` absent from it get a row saying so.
    """
    present = list(dict.fromkeys(long_table["outcome"].astype(str)))
    if spec.outcomes:
        wanted = list(spec.outcomes) + [c for c in spec.clinical_scores
                                        if c in present and c not in spec.outcomes]
    else:
        wanted = present
    skipped = [c for c in spec.clinical_scores if c not in present]
    if skipped:
        LOGGER.info("clinical score(s) not in the long table, not modelled: %s",
                    ", ".join(skipped))
    return wanted


def fit_one_model(
    long_table: pd.DataFrame,
    outcome: str,
    analysis_set: str,
    spec: Any,
    *,
    sessions: list[str] | None = None,
    relabelled: pd.DataFrame | None = None,
) -> list[dict]:
    """Rows of the model table for one outcome in one analysis set; never raises."""
    base = {"outcome": outcome, "analysis_set": analysis_set, "time_coding": spec.time,
            "method": "REML" if spec.reml else "ML"}
    try:
        data = build_design(
            long_table, outcome, analysis_set, time=spec.time, covariates=spec.covariates,
            random_slope=spec.random_slope, control_arm=_control(spec),
            treatment_arm=_treatment(spec), sessions=sessions,
        )
    except ModelInputError as err:
        return [_not_fitted(base, str(err))]
    except Exception as err:  # one outcome must not stop the others
        LOGGER.exception("model %s/%s: design failed unexpectedly", outcome, analysis_set)
        return [_not_fitted(base, f"internal error: {type(err).__name__}: {err}")]
    base.update(formula=data.formula, n_subjects=data.n_subjects,
                n_observations=data.n_observations)
    try:
        return _fit_rows(data, spec, base, relabelled)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as err:
        LOGGER.warning("model %s/%s failed: %s", outcome, analysis_set, err)
        return [_not_fitted(base, f"fit failed: {type(err).__name__}: {err}", data.notes)]
    except Exception as err:  # one outcome must not stop the others
        LOGGER.exception("model %s/%s failed unexpectedly", outcome, analysis_set)
        return [_not_fitted(base, f"internal error: {type(err).__name__}: {err}", data.notes)]


def _fit_rows(data: ModelData, spec: Any, base: dict, relabelled: pd.DataFrame | None):
    names = data.term_names
    maxiter = (getattr(spec, "max_iter", None) or None)
    fit = fit_mixed(data.y, data.full_design(), data.z, data.subject, reml=spec.reml,
                    maxiter=maxiter)
    notes = list(data.notes) + fit.warnings
    if fit.random_slope != data.random_slope:
        notes.append("random slope dropped: the model with it did not converge")
    ddf = getattr(spec, "ddf", "satterthwaite")
    rows = wald_rows(fit, names, alpha=getattr(spec, "alpha", 0.05), ddf=ddf)
    interaction = data.arm_names[1:]
    if interaction:
        rows.append(joint_wald(fit, names, interaction, ddf=ddf))
    for row in rows:
        row.update(base, p_randomisation=np.nan, randomisation_mcse=np.nan,
                   n_permutations=0, n_permutations_dropped=0, randomisation="",
                   randomisation_null="", randomisation_scheme="", n_assignments=np.nan,
                   converged=fit.converged, fallback=fit.fallback)
    if relabelled is not None and len(relabelled):
        notes += _randomise(data, spec, fit, rows, relabelled)
    for row in rows:
        row["warnings"] = "; ".join(notes)
    return rows


def _null_components(data: ModelData, spec: Any, full: MixedFit, null_name: str,
                     notes: list[str]) -> tuple[ModelData, np.ndarray, float] | None:
    """Label-free variance components for the randomisation statistic (None: none usable)."""
    if null_name == "no_interaction":
        # the statistic is within-participant least squares; it needs no components
        return data, np.zeros((1, 1)), 1.0
    null = fit_mixed(data.y, data.x_fixed, data.z, data.subject, reml=spec.reml,
                     maxiter=(getattr(spec, "max_iter", None) or None))
    source = null
    if not null.converged:
        if not full.converged:
            notes.append("randomisation: no converged fit to take variance components from; "
                         "p_randomisation not computed")
            return None
        # Label-dependent components make the test approximate; say so.
        notes.append("randomisation: null model did not converge; variance components of "
                     "the full model used (test no longer exact)")
        source = full
    if source.random_slope != data.random_slope:
        notes.append("randomisation: statistic computed without the random slope")
        data = replace(data, z=data.z[:, :1], random_slope=False)
    return data, source.cov_re, source.scale


def _randomise(data: ModelData, spec: Any, full: MixedFit, rows: list[dict],
               relabelled: pd.DataFrame) -> list[str]:
    """Fill the randomisation columns of ``rows`` in place; return notes."""
    notes: list[str] = []
    null_name = getattr(spec, "randomisation_null", "sharp")
    components = _null_components(data, spec, full, null_name, notes)
    if components is None:
        return notes
    data, cov_re, scale = components
    try:
        engine = GLSRandomisation(data, cov_re, scale, null=null_name)
    except ValueError as err:
        notes.append(f"randomisation: {err}; p_randomisation not computed")
        return notes
    labels = relabelled.reindex(columns=data.subjects).to_numpy(float)
    labels = labels[~np.isnan(labels).any(axis=1)]
    exact = bool(relabelled.attrs.get("exact", False))
    result = engine.test(labels, exact=exact)
    p = dict(zip(result.terms, result.p_terms, strict=True))
    se = dict(zip(result.terms, result.mcse_terms, strict=True))
    for row in rows:
        term = row["term"]
        if term in p:
            row.update(p_randomisation=p[term], randomisation_mcse=se[term])
        elif term == JOINT_TERM:
            row.update(p_randomisation=result.p_joint, randomisation_mcse=result.mcse_joint)
        row.update(n_permutations=result.n_valid, n_permutations_dropped=result.n_dropped,
                   randomisation="exact" if exact else "monte carlo",
                   randomisation_null=null_name,
                   randomisation_scheme=relabelled.attrs.get("scheme", ""),
                   n_assignments=relabelled.attrs.get("size", np.nan))
    size = relabelled.attrs.get("size")
    alpha = getattr(spec, "alpha", 0.05)
    if size and 1 / size > alpha:
        notes.append(f"randomisation: the design allows only {size} assignments, so no "
                     f"p_randomisation can be below 1/{size} = {1 / size:.3g} > alpha {alpha:g}")
    if result.n_dropped:
        notes.append(f"randomisation: {result.n_dropped} relabelling(s) left an arm term "
                     "inestimable and were dropped")
    if not np.all(np.isfinite(result.observed_z)):
        notes.append("randomisation: the observed labelling leaves an arm term inestimable")
    return notes


def _relabellings(participants: pd.DataFrame, analysis_set: str, spec: Any):
    n = int(getattr(spec, "n_permutations", 0) or 0)
    column = ANALYSIS_SETS.get(analysis_set)
    if n <= 0 or column is None or column not in participants.columns:
        return None
    labels = code_labels(participants[column], analysis_set, _control(spec),
                         _treatment(spec)).dropna()
    wanted = list(dict.fromkeys([*spec.strata, STRATUM_COLUMN]))
    strata_cols = [s for s in wanted if s in participants.columns]
    missing = sorted(set(spec.strata) - set(strata_cols))
    if missing:
        LOGGER.warning("strata column(s) not in the long table, ignored: %s", ", ".join(missing))
    strata = participants.loc[labels.index, strata_cols] if strata_cols else None
    blocks = participants.loc[labels.index, BLOCK_COLUMN] \
        if BLOCK_COLUMN in participants.columns else None
    return relabellings(labels, n, strata=strata, blocks=blocks, seed=spec.seed,
                        exact=getattr(spec, "randomisation_exact", True))


def _control(spec: Any) -> str:
    return str(getattr(spec, "control_arm", "control"))


def _treatment(spec: Any) -> str:
    return str(getattr(spec, "treatment_arm", "msc"))


def _not_fitted(base: dict, reason: str, notes: list[str] | None = None) -> dict:
    row = dict(base, term=NOT_FITTED, converged=False, fallback="", n_permutations=0,
               n_permutations_dropped=0)
    row["warnings"] = "; ".join([*(notes or []), reason])
    return row
