"""The ``isis-hermes`` design preset: its trial, its adverse events, its power command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hermesflow.cli.power import main as power_main
from hermesflow.errors import ConfigError
from hermesflow.simulation.adverse_events import EARLY_DAYS
from hermesflow.simulation.designs import ISIS_HERMES, effect_for_p, get_design
from hermesflow.simulation.roi_table import simulate_roi_trial
from hermesflow.simulation.trial import SimulationSpec, _adverse_events


def test_preset_simulation_spec_is_the_published_trial():
    spec = get_design("isis-hermes").simulation_spec(seed=3)
    assert spec.participants == 31
    assert spec.sessions == (1, 6, 24)
    assert spec.treated_fraction == pytest.approx(0.8)
    assert spec.ae_rate_treated == pytest.approx(1.0)      # 16 events / 16 treated
    assert spec.ae_rate_control == pytest.approx(1.6)      # 24 events / 15 controls
    assert spec.ae_early_fraction == pytest.approx(0.55)   # (10 + 12) / (16 + 24)
    assert spec.seed == 3
    # the truth's effect in residual SDs is the preset's mean MI effect
    mi = np.mean([ISIS_HERMES.effects["mi4a_ipsi_psc"], ISIS_HERMES.effects["mi4p_ipsi_psc"]])
    assert spec.effect_size / spec.session_sd == pytest.approx(mi, abs=1e-3)
    with pytest.raises(ConfigError, match="isis-hermes"):
        get_design("isis")


def test_default_spec_keeps_the_simulators_own_adverse_events():
    spec = SimulationSpec()
    keep = np.ones(3, bool)
    old = _adverse_events("sub-01", True, (1, 6, 24), keep, np.random.default_rng(5))
    new = _adverse_events("sub-01", True, (1, 6, 24), keep, np.random.default_rng(5), spec)
    assert old == new and len(old) > 0


def _counts(n_trials: int, n_treated: int = 16, n_control: int = 15) -> np.ndarray:
    """Mean events (treated <=180 d, treated all, control <=180 d, control all) per trial."""
    spec = ISIS_HERMES.simulation_spec()
    keep = np.ones(3, bool)
    totals = np.zeros(4)
    for trial in range(n_trials):
        rng = np.random.default_rng([11, trial])
        for i in range(n_treated + n_control):
            treated = i < n_treated
            days = [e["day"] for e in _adverse_events(f"sub-{i}", treated, spec.sessions,
                                                      keep, rng, spec)]
            offset = 0 if treated else 2
            totals[offset] += sum(d <= EARLY_DAYS for d in days)
            totals[offset + 1] += len(days)
    return totals / n_trials


def test_preset_adverse_events_at_the_published_counts():
    # 16 treated and 15 controls as published; 400 trials: SE of a mean count <= 0.25
    mean = _counts(400)
    expected = np.array([16 * 0.55, 16.0, 15 * 1.6 * 0.55, 24.0])
    assert mean == pytest.approx(expected, abs=0.8)
    published = np.array([10, 16, 12, 24])
    # one early share for both groups (0.55) where the paper has 0.63 and 0.50
    assert np.all(np.abs(mean - published) / published < 0.15)
    assert mean[2] > mean[0] and mean[3] > mean[1]


def test_preset_adverse_events_end_at_the_last_visit_kept():
    spec = ISIS_HERMES.simulation_spec(ae_rate_treated=30.0)
    keep = np.array([True, True, False])
    days = [e["day"] for e in _adverse_events("sub-01", True, spec.sessions, keep,
                                              np.random.default_rng(0), spec)]
    assert days and max(days) <= int(6 * 30.4)


def test_preset_roi_trial_allocates_and_treats_as_published():
    scenario = ISIS_HERMES.scenario()
    allocated, treated = [], []
    for seed in range(300):
        table = simulate_roi_trial(
            scenario.n_participants, allocation=scenario.allocation,
            months=scenario.months, block_size=scenario.block_size,
            non_adherence=scenario.non_adherence, seed=seed)
        people = table.drop_duplicates("participant_id")
        allocated.append((people["arm"] == "msc").sum())
        treated.append((people["treated"] == "yes").sum())
    # 10 full blocks of 3 give 20 : 10; the 31st participant is msc with probability 2/3
    assert set(allocated) <= {20, 21}
    assert np.mean(allocated) == pytest.approx(20 + 2 / 3, abs=0.1)
    assert np.mean(treated) == pytest.approx(0.8 * (20 + 2 / 3), abs=0.3)


def test_effect_in_roi_table_follows_treatment_not_randomisation():
    table = simulate_roi_trial(600, effect={"simulated": 3.0}, outcomes=["simulated"],
                               non_adherence=0.5, time_effect=0.0, sd_intercept=0.0,
                               sd_noise=0.1, profile="log", seed=1)
    last = table[table["session_id"] == "ses-24"]
    untreated_msc = last[(last["arm"] == "msc") & (last["treated"] == "no")]["value"]
    treated = last[last["treated"] == "yes"]["value"]
    assert untreated_msc.mean() == pytest.approx(0.0, abs=0.05)
    assert treated.mean() == pytest.approx(3.0, abs=0.05)
    middle = table[(table["session_id"] == "ses-06") & (table["treated"] == "yes")]["value"]
    assert middle.mean() == pytest.approx(3.0 * np.log(6) / np.log(24), abs=0.05)


def test_effect_for_p_interpolates_in_log_p():
    effects, median_p = [1.0, 2.0, 3.0], [0.1, 0.01, 0.001]
    assert effect_for_p(effects, median_p, 0.01) == pytest.approx(2.0)
    assert effect_for_p(effects, median_p, np.sqrt(0.1 * 0.01)) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="outside"):
        effect_for_p(effects, median_p, 0.5)


def test_power_cli_design_writes_both_sets_and_published_p(tmp_path, capsys):
    code = power_main([str(tmp_path), "--design", "isis-hermes", "--n-trials", "3",
                       "--n-permutations", "0"])
    assert code == 0
    table = pd.read_csv(tmp_path / "power.tsv", sep="\t")
    joint = table[table["term"] == "arm:time (joint)"]
    assert set(joint["analysis_set"]) == {"itt", "as_treated"}
    assert set(joint["outcome"]) == set(ISIS_HERMES.effects)
    published = joint.set_index(["outcome", "analysis_set"])["published_p"]
    assert published["mi4p_ipsi_psc", "as_treated"] == pytest.approx(0.002)
    effect = joint.set_index(["outcome", "analysis_set"])["effect"]
    assert effect["nihss_motor", "itt"] == pytest.approx(ISIS_HERMES.effects["nihss_motor"])
    assert (table["time_coding"] == "categorical").all()
    assert (table["n_participants"] == 31).all() and (table["block_size"] == 3).all()
    assert {"median_p_wald", "median_p_z", "rate_z"} <= set(table.columns)
    assert (tmp_path / "power.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "published_p" in out and "time categorical" in out


def test_simulate_cli_design_builds_the_preset(tmp_path, monkeypatch):
    from hermesflow.cli import run

    seen = {}

    def fake(out, spec, n_procs=1):
        seen["spec"], seen["n_procs"] = spec, n_procs
        return out

    monkeypatch.setattr("hermesflow.simulation.trial.simulate_trial", fake)
    assert run._simulate([str(tmp_path / "t"), "--design", "isis-hermes", "--seed", "4",
                          "--voxel-size", "8"]) == 0
    spec = seen["spec"]
    assert (spec.participants, spec.sessions, spec.seed, spec.voxel_size) == (
        31, (1, 6, 24), 4, 8.0)
    assert spec.ae_rate_control == pytest.approx(1.6)
    # without --design the simulator's own defaults, and no adverse-event rates recorded
    assert seen["n_procs"] == 1
    assert run._simulate([str(tmp_path / "u"), "--participants", "5", "--nprocs", "2"]) == 0
    assert seen["n_procs"] == 2
    plain = seen["spec"]
    assert (plain.participants, plain.treated_fraction, plain.effect_size) == (5, 0.9, 0.5)
    assert plain.ae_rate_treated is None
