"""Power simulation and the ``hermesflow power`` command."""

from __future__ import annotations

import pandas as pd
import pytest

from hermesflow.cli.power import main
from hermesflow.simulation.power import Scenario, default_spec, power_table, rejection_rates


def test_rejection_rates_count_p_at_or_below_alpha():
    trials = pd.DataFrame({
        "trial": [0, 1, 2, 3], "term": ["arm:time"] * 4,
        "p_wald": [0.01, 0.05, 0.2, 0.9], "p_randomisation": [0.02, 0.06, 0.3, float("nan")],
        "converged": [True, True, True, False],
    })
    rates = rejection_rates(trials, 0.05).set_index("term")
    assert rates.loc["arm:time", "rate_wald"] == pytest.approx(0.5)
    assert rates.loc["arm:time", "rate_randomisation"] == pytest.approx(1 / 3)
    assert rates.loc["arm:time", "share_converged"] == pytest.approx(0.75)


def test_power_grows_with_effect():
    spec = default_spec(n_permutations=99, time="linear")
    table = power_table([0.0, 3.0], Scenario(n_participants=24), spec, n_trials=15, seed=1,
                        terms=["arm:time"])
    rates = table.set_index("effect")
    assert rates.loc[3.0, "rate_wald"] > 0.8 and rates.loc[3.0, "rate_randomisation"] > 0.8
    assert rates.loc[0.0, "rate_wald"] < 0.4


def test_power_cli_writes_table_and_plot(tmp_path):
    code = main([str(tmp_path), "--participants", "12", "--effects", "0", "2",
                 "--n-trials", "4", "--n-permutations", "49", "--time", "linear"])
    assert code == 0
    table = pd.read_csv(tmp_path / "power.tsv", sep="\t")
    assert set(table["term"]) == {"arm", "arm:time", "arm:time (joint)"}
    assert sorted(table["effect"].unique()) == [0.0, 2.0]
    assert (table["n_trials"] == 4).all()
    assert (tmp_path / "power.png").stat().st_size > 1000


def test_power_cli_rejects_bad_allocation(tmp_path, capsys):
    assert main([str(tmp_path), "--allocation", "two:one", "--n-trials", "1"]) == 2
    assert "--allocation" in capsys.readouterr().err


def test_ci_coverage_counts_intervals_holding_the_truth():
    from hermesflow.simulation.power import ci_coverage

    scenario = Scenario(effect=2.0, months=(1.0, 6.0, 24.0))
    # truth of arm:time[ses-24] is 2.0, of arm:time[ses-06] 2 * 5/23 (linear profile)
    trials = pd.DataFrame({
        "term": ["arm:time[ses-24]"] * 4 + ["arm:time[ses-06]"] * 2 + ["arm"],
        "estimate": [2.0, 2.5, 1.0, 2.1, 0.4, 1.4, 0.0],
        "se": [0.1, 0.2, 0.4, 0.1, 0.1, 0.1, 0.1],
        "ci_low": [1.9, 1.9, 0.0, 2.05, 0.3, 1.3, -1.0],
        "ci_high": [2.1, 3.1, 1.99, 2.2, 0.5, 1.5, 1.0],
        "df": [20.0] * 7,
    })
    table = ci_coverage(trials, scenario).set_index("term")
    assert "arm" not in table.index
    assert table.loc["arm:time[ses-24]", "coverage"] == pytest.approx(0.5)
    assert table.loc["arm:time[ses-24]", "true_value"] == pytest.approx(2.0)
    # z intervals: |2.5-2| <= 1.96*0.2 false; |1-2| <= 0.78 false; |2.1-2| <= 0.196 true
    assert table.loc["arm:time[ses-24]", "coverage_z"] == pytest.approx(0.5)
    assert table.loc["arm:time[ses-06]", "true_value"] == pytest.approx(2 * 5 / 23)
    assert table.loc["arm:time[ses-06]", "coverage"] == pytest.approx(0.5)


def test_simulated_trials_carry_normal_theory_p_beside_satterthwaite():
    from hermesflow.simulation.power import simulate_trials

    spec = default_spec(n_permutations=0, analysis_sets=["itt", "as_treated"])
    trials = simulate_trials(Scenario(n_participants=9, effect=1.0, non_adherence=0.3),
                             3, spec, seed=4)
    assert set(trials["analysis_set"]) == {"itt", "as_treated"}
    single = trials[trials["term"] != "arm:time (joint)"]
    # t on finite df has heavier tails than z: the small-sample p is always the larger
    assert (single["p_z"] < single["p_wald"]).all()
    assert (single["df"] < 30).all()
    joint = trials[trials["term"] == "arm:time (joint)"]
    assert (joint["p_z"] < joint["p_wald"]).all()
