"""Calibration of the group model's p-values over null trials (slow: ``pytest -m slow``).

2000 null trials per scenario at n=31 (2:1), sessions at 1, 6 and 24 months, fitted with the
default random-intercept model, categorical time (single term: ``arm:time[ses-24]``, the last
session, and the 2-df joint test) or linear time (``arm:time``; its joint test is the same
test).  Randomisation p from 499 relabellings per trial, so the test's level is exactly
25/500 = 0.05.  Being exact, its rejection rate is binomial(2000, 0.05) / 2000 (SE 0.0049) and
must lie in [0.04, 0.06].  Wald rates are printed beside it; they exceed 0.05 when patients
recover at different rates and only random intercepts are fitted.  About 13 minutes (categorical)
and 7 minutes (linear) on one core.
"""

from __future__ import annotations

import pytest

from hermesflow.group.models import JOINT_TERM
from hermesflow.simulation.power import calibration_study

SINGLE = {"categorical": "arm:time[ses-24]", "linear": "arm:time"}


@pytest.mark.slow
@pytest.mark.parametrize("time", ["categorical", "linear"])
def test_randomisation_type_one_error_within_band(time):
    table = calibration_study(2000, n_permutations=499, time=time, seed=2026)
    table = table[table["term"].isin([SINGLE[time], JOINT_TERM])]
    print()
    print(table[["scenario", "term", "rate_wald", "rate_randomisation", "n_trials"]]
          .to_string(index=False))
    assert len(table) == 8
    assert (table["n_trials"] == 2000).all()
    assert table["rate_randomisation"].between(0.04, 0.06).all()
    # recovering at different rates breaks the random-intercept model's Wald test
    slopes = table[table["scenario"].str.startswith("different rates")
                   & (table["term"] == SINGLE[time])]
    assert (slopes["rate_wald"] > 0.07).all()
