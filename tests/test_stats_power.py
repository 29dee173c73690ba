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
