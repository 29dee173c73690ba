"""The trial's pre-specified primary family, adjusted for multiplicity; the rest labelled.

The ISIS-HERMES publication named four primary outcomes: motor NIHSS, Fugl-Meyer motor, and
the activity of ipsilesional MI-4a and MI-4p, analysed as treated.  Each outcome's primary
hypothesis is its joint arm x time test.  Within each analysis set the family's p-values are
adjusted with Holm's step-down procedure (strong control of the family-wise error rate under
any dependence; Holm 1979) or, on request, Hochberg's step-up procedure (valid under positive
dependence; Hochberg 1988), both from ``statsmodels.stats.multitest``.  Every other row is
secondary: reported unadjusted and labelled so.

Outcomes whose values are not continuous are flagged: the modified Rankin scale is ordinal and
the active-voxel counts are counts; both are modelled as Gaussian (a linear mixed model on
their values), which the ``outcome_type`` column and a warning say.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

PRIMARY_DEFAULT = ("nihss_motor", "fm_motor", "mi4a_ipsi_psc", "mi4p_ipsi_psc")
METHODS = {"holm": "holm", "hochberg": "simes-hochberg"}
ORDINAL_DEFAULT = ("mrs",)
_COUNT = re.compile(r"(?:^|_)n_(?:active|voxels)$")


def outcome_type(outcome: str, ordinal: tuple[str, ...] | list[str] = ORDINAL_DEFAULT) -> str:
    """``continuous``, ``ordinal`` or ``count``."""
    if outcome in ordinal:
        return "ordinal"
    return "count" if _COUNT.search(outcome) else "continuous"


def annotate(models: pd.DataFrame, spec: Any, joint_term: str) -> pd.DataFrame:
    """Add ``family``, ``p_adjusted``, ``adjustment`` and ``outcome_type`` to a model table."""
    table = models.copy()
    primary = list(getattr(spec, "primary", PRIMARY_DEFAULT))
    method = getattr(spec, "multiplicity", "holm")
    ordinal = list(getattr(spec, "ordinal_outcomes", ORDINAL_DEFAULT))
    table["outcome_type"] = [outcome_type(str(o), ordinal) for o in table["outcome"]]
    flagged = table["outcome_type"] != "continuous"
    note = "modelled as Gaussian: " + table.loc[flagged, "outcome_type"] + " outcome"
    table.loc[flagged, "warnings"] = [
        f"{w}; {n}" if isinstance(w, str) and w else n
        for w, n in zip(table.loc[flagged, "warnings"], note, strict=True)]
    table["family"] = "secondary (unadjusted)"
    table["p_adjusted"] = np.nan
    table["adjustment"] = ""
    in_family = table["outcome"].isin(primary) & (table["term"] == joint_term)
    for _, rows in table[in_family].groupby("analysis_set"):
        p = rows["p_wald"].to_numpy(float)
        ok = np.isfinite(p)
        adjusted = np.full(len(p), np.nan)
        if ok.any():
            adjusted[ok] = multipletests(p[ok], method=METHODS[method])[1]
        table.loc[rows.index, "p_adjusted"] = adjusted
        table.loc[rows.index, "adjustment"] = f"{method} over {int(ok.sum())} primary outcomes"
    table.loc[table["outcome"].isin(primary), "family"] = "primary"
    return table
