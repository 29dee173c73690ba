"""Safety and feasibility tables."""

from __future__ import annotations

import pandas as pd
import pytest

from hermesflow.errors import InputError
from hermesflow.group import safety_tables
from hermesflow.group.safety import wilson_interval


def _participants() -> pd.DataFrame:
    return pd.DataFrame({
        "participant_id": [f"sub-{i:02d}" for i in range(1, 10)],
        "arm": ["msc"] * 6 + ["control"] * 3,
        "treated": ["yes"] * 5 + ["no"] + ["no"] * 3,
    })


def _events(by: str = "day") -> pd.DataFrame:
    table = pd.DataFrame({
        "participant_id": ["sub-01", "sub-01", "sub-02", "sub-06", "sub-07", "sub-07"],
        "event": ["fever", "headache", "fever", "fall", "fall", "seizure"],
        "serious": ["no", "no", "yes", "no", "no", "yes"],
    })
    if by == "day":
        table["day"] = [1, 3, 20, 100, 400, 800]
    else:
        table["session_id"] = ["ses-01", "ses-01", "ses-06", "ses-06", "ses-24", "ses-24"]
    return table


def test_counts_by_window_as_treated_and_itt():
    tables = safety_tables(_events("day"), _participants())
    w = tables["by_window"].set_index(["analysis_set", "group", "window", "severity"])
    # as treated: sub-01, sub-02 treated; sub-06 (msc, not treated) and sub-07 not treated
    assert w.loc[("as_treated", "treated", "day 0-7", "any"), "n_events"] == 2
    assert w.loc[("as_treated", "treated", "day 0-7", "any"), "n_participants"] == 1
    assert w.loc[("as_treated", "treated", "all", "any"), "n_at_risk"] == 5
    assert w.loc[("as_treated", "treated", "all", "any"), "percent"] == pytest.approx(40.0)
    assert w.loc[("as_treated", "treated", "all", "serious"), "n_events"] == 1
    assert w.loc[("as_treated", "not treated", "all", "any"), "n_events"] == 3
    assert w.loc[("as_treated", "not treated", "day >730", "serious"), "n_events"] == 1
    # by randomised arm sub-06 counts with msc
    assert w.loc[("itt", "msc", "all", "any"), "n_events"] == 4
    assert w.loc[("itt", "msc", "all", "any"), "n_participants"] == 3
    assert w.loc[("itt", "control", "day 366-730", "any"), "n_events"] == 1
    windows = list(tables["by_window"]["window"].unique())
    assert windows == ["day 0-7", "day 8-30", "day 31-180", "day 181-365", "day 366-730",
                       "day >730", "all"]


def test_session_windows_and_event_table():
    tables = safety_tables(_events("session"), _participants())
    w = tables["by_window"]
    assert list(w["window"].unique()) == ["ses-01", "ses-06", "ses-24", "all"]
    e = tables["by_event"].set_index(["analysis_set", "group", "event"])
    assert e.loc[("itt", "msc", "fever"), "n_events"] == 2
    assert e.loc[("itt", "msc", "fever"), "n_serious"] == 1
    assert e.loc[("itt", "control", "seizure"), "n_participants"] == 1


def test_feasibility_and_wilson():
    f = safety_tables(_events(), _participants())["feasibility"].set_index("arm")
    assert f.loc["msc", "n_randomised"] == 6 and f.loc["msc", "n_treated"] == 5
    assert f.loc["msc", "proportion_treated"] == pytest.approx(5 / 6)
    assert f.loc["control", "n_treated"] == 0
    assert f.loc["all", "n_randomised"] == 9
    # Wilson interval for 5/6 by the closed form: (0.4365, 0.9699)
    low, high = wilson_interval(5, 6)
    assert (low, high) == pytest.approx((0.43649, 0.96992), abs=1e-4)
    assert (f.loc["msc", "ci_low"], f.loc["msc", "ci_high"]) == pytest.approx((low, high))


def test_no_events_gives_zero_rows():
    empty = pd.DataFrame(columns=["participant_id", "day", "event", "serious"])
    tables = safety_tables(empty, _participants())
    assert tables["by_window"]["n_events"].sum() == 0
    assert tables["by_event"].empty


@pytest.mark.parametrize("change,match", [
    ({"serious": ["maybe"] + ["no"] * 5}, "serious"),
    ({"participant_id": ["sub-99"] + ["sub-01"] * 5}, "sub-99"),
])
def test_bad_event_tables_raise(change, match):
    events = _events().assign(**change)
    with pytest.raises(InputError, match=match):
        safety_tables(events, _participants())
