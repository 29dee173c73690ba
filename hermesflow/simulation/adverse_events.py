"""Adverse events at a design preset's rates, for the image-level simulator.

The simulator's own events (:func:`hermesflow.simulation.trial._adverse_events`) are a fixed
1.8 per treated and 1.3 per other participant; a preset (``SimulationSpec.ae_rate_treated``,
``ae_rate_control``, ``ae_early_fraction``) replaces them with Poisson counts per participant
over the whole planned follow-up, a share of them in the first 180 days: the 6-month window of
:data:`hermesflow.group.safety.DAY_WINDOWS`, so the safety table's cumulative counts at 180 and
730 days are the published "at 6 months" and "at 2 years" counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hermesflow.derivatives.writing import write_json, write_tsv

#: Upper edge (days) of the early window: safety.DAY_WINDOWS' 6-month edge.
EARLY_DAYS = 180
#: Days per month, as the simulator converts visit months to days.
DAYS_PER_MONTH = 30.4


def preset_adverse_events(sub: str, treated: bool, sessions: Sequence[int], keep: np.ndarray,
                          rng: np.random.Generator, spec: Any,
                          events: Sequence[tuple[str, bool]]) -> list[dict]:
    """Poisson(rate) events over the planned follow-up, a share in the first 180 days.

    Parameters
    ----------
    sub : str
        Participant id.
    treated : bool
        Whether the participant received cells (the rate is the treated or the control one).
    sessions : sequence of int
        Planned visits (months); the last one ends the follow-up (24 months: day 730).
    keep : ndarray of bool
        Visits the participant attended; events after the last one attended are drawn (so
        the draws do not depend on dropout) but not observed, so not returned.
    rng : Generator
        The participant's stream.
    spec : SimulationSpec
        ``ae_rate_treated``, ``ae_rate_control``, ``ae_early_fraction`` (None: days uniform
        over the follow-up).
    events : sequence of (str, bool)
        Event names and whether each is serious; drawn uniformly.

    Returns
    -------
    list of dict
        Rows ``participant_id, day, event, serious`` of ``phenotype/adverse_events.tsv``.
    """
    rate = spec.ae_rate_treated if treated else (spec.ae_rate_control or 0.0)
    end = max(int(round(sessions[-1] * DAYS_PER_MONTH)), EARLY_DAYS + 1)
    seen = end if keep.all() else int(sessions[int(np.flatnonzero(keep)[-1])] * DAYS_PER_MONTH)
    rows = []
    for _ in range(rng.poisson(rate)):
        event, serious = events[rng.integers(len(events))]
        if spec.ae_early_fraction is None:
            day = int(rng.integers(1, end + 1))
        elif rng.random() < spec.ae_early_fraction:
            day = int(rng.integers(1, EARLY_DAYS + 1))
        else:
            day = int(rng.integers(EARLY_DAYS + 1, end + 1))
        if day <= seen:
            rows.append({"participant_id": sub, "day": day, "event": event,
                         "serious": "yes" if serious else "no"})
    return rows


def write_adverse_events(out: Path, rows: list[dict]) -> None:
    """``phenotype/adverse_events.tsv`` and its sidecar."""
    table = pd.DataFrame(rows, columns=["participant_id", "day", "event", "serious"])
    write_tsv(out / "phenotype" / "adverse_events.tsv", table)
    write_json(out / "phenotype" / "adverse_events.json", {
        "day": {"Description": "Days since randomisation", "Units": "day"},
        "event": {"Description": "Adverse event (free text)"},
        "serious": {"Description": "Serious adverse event", "Levels": {"yes": "serious",
                                                                         "no": "not serious"}},
    })
