"""Safety and feasibility tables from ``phenotype/adverse_events.tsv`` and the participants.

Adverse events are counted per group and follow-up window, both as treated (the usual safety
population: what a participant received) and by randomised arm; feasibility is the share of
participants randomised to each arm who were treated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from hermesflow.errors import InputError

#: Upper edges (days, inclusive) of the follow-up windows used when events carry a ``day``.
DAY_WINDOWS = (7, 30, 180, 365, 730)
ALL = "all"
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def safety_tables(
    adverse_events: pd.DataFrame,
    participants: pd.DataFrame,
    *,
    day_windows: Sequence[int] = DAY_WINDOWS,
    source: str = "phenotype/adverse_events.tsv",
) -> dict[str, pd.DataFrame]:
    """Count adverse events by group and window, and tabulate feasibility.

    Parameters
    ----------
    adverse_events : DataFrame
        ``participant_id``, ``session_id`` or ``day`` (days since treatment/randomisation),
        ``event``, ``serious`` (yes/no).  An empty table means no events.
    participants : DataFrame
        ``participant_id``, ``arm``, ``treated`` (yes/no).
    day_windows : sequence of int
        Upper edges (inclusive) of the day windows; a last open window follows.
    source : str
        Name used in error messages.

    Returns
    -------
    dict of DataFrame
        ``by_window``: analysis_set, group, window, severity ('any' / 'serious'), n_events,
        n_participants (with at least one such event), n_at_risk, percent.
        ``by_event``: analysis_set, group, event, n_events, n_participants, n_serious.
        ``feasibility``: arm, n_randomised, n_treated, n_not_treated, proportion_treated and a
        Wilson 95% interval.

    Raises
    ------
    InputError
        Missing columns, unknown participants, or ``serious`` values other than yes/no.
    """
    people = _check_participants(participants)
    events = _check_events(adverse_events, people, source, day_windows)
    by_window, by_event = [], []
    for analysis_set, column in (("as_treated", "group_treated"), ("itt", "group_arm")):
        groups = people[column]
        merged = events.assign(group=events["participant_id"].map(groups))
        at_risk = groups.value_counts()
        by_window.append(_by_window(merged, at_risk, analysis_set))
        by_event.append(_by_event(merged, at_risk, analysis_set))
    return {
        "by_window": pd.concat(by_window, ignore_index=True),
        "by_event": pd.concat(by_event, ignore_index=True),
        "feasibility": feasibility(people),
    }


def feasibility(participants: pd.DataFrame) -> pd.DataFrame:
    """Treated / randomised per arm (and overall) with a Wilson 95% interval."""
    people = participants if "treated_bool" in participants else _check_participants(
        participants)
    rows = []
    for arm, group in [*people.groupby("arm", sort=True), (ALL, people)]:
        n = len(group)
        k = int(group["treated_bool"].sum())
        low, high = wilson_interval(k, n)
        rows.append({"arm": arm, "n_randomised": n, "n_treated": k, "n_not_treated": n - k,
                     "proportion_treated": k / n if n else np.nan, "ci_low": low,
                     "ci_high": high})
    return pd.DataFrame(rows)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return np.nan, np.nan
    z = sps.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _by_window(events: pd.DataFrame, at_risk: pd.Series, analysis_set: str) -> pd.DataFrame:
    windows = [*events["window"].cat.categories, ALL]
    rows = []
    for group in sorted(at_risk.index):
        in_group = events[events["group"] == group]
        for window in windows:
            in_window = in_group if window == ALL else in_group[in_group["window"] == window]
            for severity, subset in (("any", in_window),
                                     ("serious", in_window[in_window["serious_bool"]])):
                n_people = subset["participant_id"].nunique()
                rows.append({
                    "analysis_set": analysis_set, "group": group, "window": window,
                    "severity": severity, "n_events": len(subset), "n_participants": n_people,
                    "n_at_risk": int(at_risk[group]),
                    "percent": 100 * n_people / at_risk[group],
                })
    return pd.DataFrame(rows)


def _by_event(events: pd.DataFrame, at_risk: pd.Series, analysis_set: str) -> pd.DataFrame:
    rows = []
    for (group, event), subset in events.groupby(["group", "event"], sort=True):
        rows.append({"analysis_set": analysis_set, "group": group, "event": event,
                     "n_events": len(subset),
                     "n_participants": subset["participant_id"].nunique(),
                     "n_serious": int(subset["serious_bool"].sum()),
                     "n_at_risk": int(at_risk[group])})
    columns = ["analysis_set", "group", "event", "n_events", "n_participants", "n_serious",
               "n_at_risk"]
    return pd.DataFrame(rows, columns=columns)


def _yes_no(values: pd.Series, what: str, source: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    bad = sorted(set(text[~text.isin(_YES | _NO)].fillna("n/a")))
    if bad:
        raise InputError(source, f"column {what!r} has values {bad[:3]} (expected yes/no)",
                         f"write yes or no in every row of {what!r}")
    return text.isin(_YES)


def _check_participants(participants: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("participant_id", "arm", "treated") if c not in participants]
    if missing:
        raise InputError("participants.tsv", f"missing column(s) {', '.join(missing)}",
                         "add the randomised arm and the as-treated yes/no column")
    people = participants.drop_duplicates("participant_id").set_index("participant_id")
    people = people.assign(treated_bool=_yes_no(people["treated"], "treated",
                                                "participants.tsv"))
    people["group_treated"] = np.where(people["treated_bool"], "treated", "not treated")
    people["group_arm"] = people["arm"].astype(str)
    return people


def _check_events(events: pd.DataFrame, people: pd.DataFrame, source: str,
                  day_windows: Sequence[int]) -> pd.DataFrame:
    missing = [c for c in ("participant_id", "event", "serious") if c not in events]
    if "session_id" not in events and "day" not in events:
        missing.append("session_id or day")
    if missing:
        raise InputError(source, f"missing column(s) {', '.join(missing)}",
                         "write participant_id, session_id (or day), event, serious")
    unknown = sorted(set(events["participant_id"]) - set(people.index))
    if unknown:
        raise InputError(source, f"participant(s) {unknown[:3]} are not in participants.tsv",
                         "fix the participant_id or add the participant")
    events = events.assign(serious_bool=_yes_no(events["serious"], "serious", source))
    if "day" in events:
        days = pd.to_numeric(events["day"], errors="coerce")
        if days.isna().any():
            raise InputError(source, "column 'day' has non-numeric values",
                             "write the day as a number")
        edges = [-np.inf, *day_windows, np.inf]
        events["window"] = pd.cut(days, edges, labels=window_labels(day_windows), right=True)
    else:
        sessions = events["session_id"].astype(str)
        order = sorted(sessions.unique(), key=_session_key)
        events["window"] = pd.Categorical(sessions, categories=order)
    return events


def _session_key(session: str) -> tuple[float, str]:
    digits = "".join(ch for ch in session.split("-")[-1] if ch.isdigit() or ch == ".")
    try:
        return float(digits), session
    except ValueError:
        return float("inf"), session


def window_labels(day_windows: Sequence[int] = DAY_WINDOWS) -> list[str]:
    """``day 0-7``, ``day 8-30`` ... ``day >730``."""
    labels, low = [], 0
    for high in day_windows:
        labels.append(f"day {low}-{high}")
        low = high + 1
    labels.append(f"day >{day_windows[-1]}")
    return labels
