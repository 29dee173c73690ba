"""From the tidy long table to the numbers one mixed model needs.

One model is one outcome in one analysis set.  :func:`build_design` checks that outcome's rows
(text values, no variance, covariates missing, subjects seen once), codes time, the arm and the
covariates, and returns a :class:`ModelData` holding the response, the fixed-effects design
split into the columns that do not depend on the arm labels and those that do, and the
random-effects design.  The split is what lets :mod:`hermesflow.group.randomisation` reuse
everything label-free across relabellings.

Term names follow the simulator's ground truth: ``Intercept``, ``arm``, ``time[ses-06]`` ...,
``arm:time[ses-06]`` ... for categorical time (reference: the first session by months) and
``time``, ``arm:time`` for continuous time; covariates keep their column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hermesflow.errors import HermesflowError, InputError

#: Covariate name meaning "the outcome's own value at the first session".
BASELINE = "baseline"
#: Analysis set -> participant column holding the label and the value coded 1.
ANALYSIS_SETS = {"itt": "arm", "as_treated": "treated"}
TIME_CODINGS = ("categorical", "linear", "log")
#: Text that BIDS tables use for "missing" and that is therefore not bad input.
_MISSING_TEXT = {"", "n/a", "na", "nan", "none", "null"}
#: The values of ``treated`` (BIDS participants.tsv levels).
TREATED_VALUES = ("yes", "no")
#: Participant columns that record how the trial randomised, used by the relabellings.
BLOCK_COLUMN, STRATUM_COLUMN = "block", "stratum"


class ModelInputError(HermesflowError):
    """One outcome's data cannot be modelled; the message goes into the table's warnings."""


@dataclass
class ModelData:
    """Everything label-free about one model, plus the observed labels.

    Attributes
    ----------
    y : ndarray (n_obs,)
        Response.
    x_fixed : ndarray (n_obs, p0)
        Columns that do not involve the arm: intercept, time, covariates.
    x_arm_basis : ndarray (n_obs, k)
        The arm columns divided by the subject's label: ``[1, time...]``; the arm terms of a
        labelling ``a`` are ``a[subject] * x_arm_basis``.
    z : ndarray (n_obs, q)
        Random-effects design (intercept, optionally time).
    subject : ndarray (n_obs,) of int
        Index into ``subjects`` for each observation.
    subjects : list of str
        Participant ids, in the order labels are given.
    labels : ndarray (n_subjects,) of float
        Observed 0/1 labels of the analysis set.
    """

    outcome: str
    analysis_set: str
    y: np.ndarray
    x_fixed: np.ndarray
    fixed_names: list[str]
    x_arm_basis: np.ndarray
    arm_names: list[str]
    z: np.ndarray
    subject: np.ndarray
    subjects: list[str]
    labels: np.ndarray
    time_coding: str
    random_slope: bool
    formula: str
    notes: list[str] = field(default_factory=list)

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def n_observations(self) -> int:
        return len(self.y)

    @property
    def term_names(self) -> list[str]:
        """Names of the full model's columns, in the order of :meth:`full_design`."""
        base = self.fixed_names
        n_time = len(self.arm_names) - 1
        # Intercept, arm, time..., arm:time..., covariates
        return [base[0], self.arm_names[0], *base[1:1 + n_time], *self.arm_names[1:],
                *base[1 + n_time:]]

    def full_design(self, labels: np.ndarray | None = None) -> np.ndarray:
        """The full model's fixed-effects design for ``labels`` (default: the observed ones)."""
        labels = self.labels if labels is None else labels
        arm_cols = labels[self.subject][:, None] * self.x_arm_basis
        n_time = arm_cols.shape[1] - 1
        return np.column_stack([
            self.x_fixed[:, :1], arm_cols[:, :1], self.x_fixed[:, 1:1 + n_time],
            arm_cols[:, 1:], self.x_fixed[:, 1 + n_time:],
        ])


def participant_table(long_table: pd.DataFrame) -> pd.DataFrame:
    """One row per participant with the participant-level columns (first non-missing value)."""
    level = [c for c in long_table.columns
             if c not in {"session_id", "months", "outcome", "value"}]
    table = long_table[level].groupby("participant_id", sort=True).first()
    return table


def session_order(long_table: pd.DataFrame) -> list[str]:
    """Session ids ordered by their median ``months`` (then by name)."""
    months = pd.to_numeric(long_table["months"], errors="coerce")
    med = months.groupby(long_table["session_id"].astype(str)).median()
    return sorted(med.index, key=lambda s: (med[s], s))


def code_labels(values: pd.Series, analysis_set: str, control_arm: str = "control",
                treatment_arm: str | None = None) -> pd.Series:
    """0/1 labels of an analysis set: ITT ``arm`` (treatment 1, control 0), as-treated
    ``treated`` (yes 1, no 0).

    Missing values stay NaN.  With ``treatment_arm`` given, an ITT value that is neither arm
    is an error (:func:`validate_design_columns` reports it with its row first); without it
    every value other than ``control_arm`` counts as treatment.
    """
    text = values.astype("string").str.strip().str.lower()
    if analysis_set == "itt":
        coded = (text != control_arm.lower()).astype(float)
        known = {control_arm.lower(), (treatment_arm or "").lower()}
    elif analysis_set == "as_treated":
        coded = (text == "yes").astype(float)
        known = set(TREATED_VALUES)
    else:
        raise ModelInputError(f"unknown analysis set {analysis_set!r}; use one of "
                              f"{', '.join(ANALYSIS_SETS)}")
    coded[values.isna()] = np.nan
    unknown = sorted(set(text[values.notna()]) - known)
    if unknown and (analysis_set == "as_treated" or treatment_arm is not None):
        raise ModelInputError(f"{ANALYSIS_SETS[analysis_set]!r} value(s) "
                              f"{', '.join(map(repr, unknown))} are not "
                              f"{' or '.join(map(repr, sorted(known)))}")
    return coded


def validate_design_columns(
    participants: pd.DataFrame,
    *,
    control_arm: str,
    treatment_arm: str,
    strata: list[str] | tuple[str, ...] = (),
    source: str = "participants.tsv",
) -> None:
    """Check the randomisation columns of the participant table before any model is fitted.

    ``arm`` must be ``treatment_arm`` or ``control_arm`` (or missing), ``treated`` yes or no
    (or missing); the stratification columns (configured ``strata`` and ``stratum``) and
    ``block`` must have a value for every participant with an arm, since a participant
    without one would otherwise form a stratum of their own.

    Raises
    ------
    InputError
        Naming the first offending row (participant) and ``source``.
    """
    table = participants.reset_index() if "participant_id" not in participants.columns \
        else participants
    allowed = {"arm": {control_arm.lower(), treatment_arm.lower()},
               "treated": set(TREATED_VALUES)}
    for column, values in allowed.items():
        if column not in table.columns:
            continue
        text = table[column].astype("string").str.strip().str.lower()
        bad = table[table[column].notna() & ~text.isin(values)]
        if len(bad):
            row = bad.iloc[0]
            raise InputError(source, f"participant {row['participant_id']}: {column} "
                             f"{row[column]!r} is not {' or '.join(sorted(values))}",
                             "fix the row, or set control_arm / treatment_arm in [group]"
                             if column == "arm" else "write yes or no")
    design = [c for c in dict.fromkeys([*strata, STRATUM_COLUMN, BLOCK_COLUMN])
              if c in table.columns]
    randomised = table["arm"].notna() if "arm" in table.columns else \
        pd.Series(True, index=table.index)
    for column in design:
        gap = table[randomised & table[column].isna()]
        if len(gap):
            raise InputError(source, f"participant {gap['participant_id'].iloc[0]}: "
                             f"{column} is missing", f"record the participant's {column} "
                             "(a missing value is not a stratum)")


def coerce_values(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Numbers from the ``value`` column; BIDS missing markers become NaN, other text is bad."""
    numeric = pd.to_numeric(values, errors="coerce")
    text = values[numeric.isna() & values.notna()].astype(str).str.strip()
    bad = text[~text.str.lower().isin(_MISSING_TEXT)]
    return numeric.astype(float), sorted(set(bad))


def build_design(
    long_table: pd.DataFrame,
    outcome: str,
    analysis_set: str,
    *,
    time: str = "categorical",
    covariates: list[str] | tuple[str, ...] = (),
    random_slope: bool = False,
    control_arm: str = "control",
    treatment_arm: str | None = None,
    sessions: list[str] | None = None,
) -> ModelData:
    """Check one outcome's rows and build its model matrices.

    Parameters
    ----------
    long_table : DataFrame
        The group long table (see :mod:`hermesflow.group`).
    outcome : str
        Value of the ``outcome`` column to model.
    analysis_set : {'itt', 'as_treated'}
        Which label column is "arm": ``arm`` (msc=1, control=0) or ``treated`` (yes=1).
    time : {'categorical', 'linear', 'log'}
        Sessions as levels (reference: first session), months, or log(months).
    covariates : list of str
        Participant or session columns, or ``'baseline'`` for the outcome's value at the first
        session (the response then keeps only the later sessions).
    random_slope : bool
        Random slope on time per participant (continuous time only).
    control_arm, treatment_arm : str
        The ``arm`` values coded 0 and 1 in the ITT set (no ``treatment_arm``: every value
        but the control one is treatment).
    sessions : list of str, optional
        Session order; default from :func:`session_order` on ``long_table``.

    Raises
    ------
    ModelInputError
        When the outcome cannot be modelled; the message says why.
    """
    if time not in TIME_CODINGS:
        raise ModelInputError(f"time coding {time!r} unknown; use one of {', '.join(TIME_CODINGS)}")
    label_column = ANALYSIS_SETS.get(analysis_set)
    if label_column is None:
        raise ModelInputError(f"unknown analysis set {analysis_set!r}; use one of "
                              f"{', '.join(ANALYSIS_SETS)}")
    if label_column not in long_table.columns:
        raise ModelInputError(f"column {label_column!r} missing from the long table")
    sessions = session_order(long_table) if sessions is None else sessions
    notes: list[str] = []

    rows = long_table[long_table["outcome"] == outcome].copy()
    if rows.empty:
        raise ModelInputError(f"no rows for outcome {outcome!r}")
    values, bad = coerce_values(rows["value"])
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3])
        raise ModelInputError(f"non-numeric values in {outcome!r} ({shown}); fix the source "
                              "table or mark missing values as n/a")
    rows["value"] = values
    rows["session_id"] = rows["session_id"].astype(str)
    rows["months"] = pd.to_numeric(rows["months"], errors="coerce")
    rows["label"] = code_labels(rows[label_column], analysis_set, control_arm, treatment_arm)
    n_missing = int(rows["value"].isna().sum())
    if n_missing:
        notes.append(f"{n_missing} missing value(s) dropped")
    rows = rows[rows["value"].notna()]

    covariates = list(covariates)
    if BASELINE in covariates:
        rows, n_no_base = _add_baseline(rows, sessions[0])
        if n_no_base:
            notes.append(f"{n_no_base} participant(s) without a baseline value dropped")
        sessions = sessions[1:]

    cov_frames, cov_names = [], []
    for name in covariates:
        if name == BASELINE:
            cov_frames.append(rows[[BASELINE]].astype(float))
            cov_names.append(BASELINE)
            continue
        if name not in rows.columns or rows[name].isna().all():
            # e.g. lesion_volume_ml when no lesion masks were measured: fit without it
            notes.append(f"covariate {name!r} not in the long table; left out of the model")
            continue
        frame = _code_covariate(rows[name], name)
        cov_frames.append(frame)
        cov_names.extend(frame.columns)
    if cov_frames:
        cov = pd.concat(cov_frames, axis=1)
        incomplete = cov.isna().any(axis=1)
        if incomplete.any():
            notes.append(f"{int(incomplete.sum())} observation(s) with missing covariates dropped")
            rows, cov = rows[~incomplete], cov[~incomplete]
    else:
        cov = pd.DataFrame(index=rows.index)

    if rows["label"].isna().any():
        n_unlab = rows.loc[rows["label"].isna(), "participant_id"].nunique()
        notes.append(f"{n_unlab} participant(s) without a {label_column!r} label dropped")
        keep = rows["label"].notna()
        rows, cov = rows[keep], cov[keep]
    rows = rows[rows["session_id"].isin(sessions)]
    cov = cov.loc[rows.index]
    if rows.empty:
        raise ModelInputError(f"no usable observations for {outcome!r}")
    if rows["label"].nunique() < 2:
        raise ModelInputError(f"only one {label_column!r} group has data for {outcome!r}")
    if not np.nanstd(rows["value"].to_numpy()) > 0:
        raise ModelInputError(f"{outcome!r} has no variance (every value is "
                              f"{rows['value'].iloc[0]:g}); nothing to model")

    per_subject = rows.groupby("participant_id")["session_id"].nunique()
    single = per_subject[per_subject < 2]
    if len(single):
        shown = ", ".join(single.index[:3])
        notes.append(f"{len(single)} participant(s) with one session only ({shown}); they "
                     "inform the intercept, not the change")
    if rows.duplicated(["participant_id", "session_id"]).any():
        raise ModelInputError(f"duplicate participant x session rows for {outcome!r}")

    subjects = sorted(rows["participant_id"].unique())
    subject = pd.Categorical(rows["participant_id"], categories=subjects).codes.astype(int)
    labels = rows.groupby("participant_id")["label"].first().reindex(subjects).to_numpy(float)

    time_cols, time_names = _code_time(rows, time, sessions)
    n = len(rows)
    x_fixed = np.column_stack([np.ones(n), time_cols, cov.to_numpy(float)])
    fixed_names = ["Intercept", *time_names, *cov_names]
    x_arm_basis = np.column_stack([np.ones(n), time_cols])
    arm_names = ["arm", *(f"arm:{t}" for t in time_names)]
    if random_slope and time == "categorical":
        notes.append("random slope needs continuous time; fitted a random intercept only")
        random_slope = False
    z = np.column_stack([np.ones(n), time_cols]) if random_slope else np.ones((n, 1))

    for j, name in enumerate(fixed_names):
        if j and np.ptp(x_fixed[:, j]) == 0:
            raise ModelInputError(f"term {name!r} is constant for {outcome!r}; "
                                  "drop it or check the sessions")
    rhs = " + ".join(["arm * time", *cov_names])
    re = "(1 + time | participant)" if random_slope else "(1 | participant)"
    return ModelData(
        outcome=outcome, analysis_set=analysis_set, y=rows["value"].to_numpy(float),
        x_fixed=x_fixed, fixed_names=fixed_names, x_arm_basis=x_arm_basis,
        arm_names=arm_names, z=z, subject=subject, subjects=subjects, labels=labels,
        time_coding=time, random_slope=random_slope,
        formula=f"value ~ {rhs} + {re}", notes=notes,
    )


def _code_time(rows: pd.DataFrame, time: str, sessions: list[str]) -> tuple[np.ndarray, list[str]]:
    if time == "categorical":
        levels = sessions[1:]
        cols = np.column_stack([(rows["session_id"] == s).to_numpy(float) for s in levels]) \
            if levels else np.empty((len(rows), 0))
        return cols, [f"time[{s}]" for s in levels]
    months = rows["months"].to_numpy(float)
    if np.isnan(months).any():
        raise ModelInputError("continuous time needs 'months' for every session")
    if time == "log":
        if (months <= 0).any():
            raise ModelInputError("log time needs months > 0; use time = 'linear'")
        months = np.log(months)
    return months[:, None], ["time"]


def _code_covariate(column: pd.Series, name: str) -> pd.DataFrame:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().sum() == column.notna().sum():
        return pd.DataFrame({name: numeric.astype(float)}, index=column.index)
    levels = sorted(column.dropna().astype(str).unique())
    out = {}
    for level in levels[1:]:
        coded = (column.astype("string") == level).astype(float)
        coded[column.isna()] = np.nan
        out[f"{name}[{level}]"] = coded
    return pd.DataFrame(out, index=column.index)


def _add_baseline(rows: pd.DataFrame, first_session: str) -> tuple[pd.DataFrame, int]:
    base = rows.loc[rows["session_id"] == first_session].set_index("participant_id")["value"]
    rows = rows.assign(**{BASELINE: rows["participant_id"].map(base)})
    rows = rows[rows["session_id"] != first_session]
    missing = rows[BASELINE].isna()
    n_no_base = int(rows.loc[missing, "participant_id"].nunique())
    return rows[~missing], n_no_base
