"""End to end on a trial without treatment effect: the arm x time intervals hold zero.

(A file of its own so that ``pytest -n --dist loadfile`` processes the two trials in parallel.)
"""

from __future__ import annotations

ARM_TIME = ["arm:time[ses-06]", "arm:time[ses-24]"]


def test_no_effect_gives_intervals_around_zero(null_trial):
    models = null_trial.group_table("mixedlm")
    for outcome in ("mi4p_ipsi_psc", "mi4a_ipsi_psc"):
        for analysis_set in ("itt", "as_treated"):
            rows = models[(models["outcome"] == outcome)
                          & (models["analysis_set"] == analysis_set)].set_index("term")
            for term in ARM_TIME:
                low, high = rows.loc[term, ["ci_low", "ci_high"]]
                assert low <= 0 <= high, f"{outcome} {analysis_set} {term}: [{low}, {high}]"
                assert high - low < 1.0, "intervals are informative, not arbitrarily wide"
