"""Randomisation as recorded: validated arm / treated / strata columns, permuted blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from hermesflow.config import GroupConfig
from hermesflow.errors import InputError
from hermesflow.group import fit_group_models
from hermesflow.group.design import build_design
from hermesflow.group.mixed import fit_mixed
from hermesflow.group.randomisation import GLSRandomisation, relabellings
from hermesflow.simulation.roi_table import simulate_roi_trial


def _spec(**options) -> GroupConfig:
    return GroupConfig(analysis_sets=["itt"], **options)


def test_unknown_arm_is_one_line_error_naming_row_and_file():
    table = simulate_roi_trial(9, seed=1)
    table.loc[table["participant_id"] == "sub-03", "arm"] = "placebo"
    with pytest.raises(InputError) as err:
        fit_group_models(table, _spec(), source="/data/participants.tsv")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("/data/participants.tsv: participant sub-03: arm 'placebo'")
    assert "control or msc" in message


def test_configured_arm_labels():
    table = simulate_roi_trial(9, seed=1)
    table["arm"] = table["arm"].map({"msc": "cells", "control": "usual care"})
    with pytest.raises(InputError, match="arm '(cells|usual care)' is not control or msc"):
        fit_group_models(table, _spec())
    model = fit_group_models(table, _spec(treatment_arm="cells", control_arm="usual care"))
    reference = fit_group_models(simulate_roi_trial(9, seed=1), _spec())
    np.testing.assert_allclose(model["estimate"], reference["estimate"], rtol=1e-12)


def test_treated_must_be_yes_or_no():
    table = simulate_roi_trial(9, seed=1)
    table.loc[table["participant_id"] == "sub-05", "treated"] = "partly"
    with pytest.raises(InputError, match="participant sub-05: treated 'partly'.*write yes or no"):
        fit_group_models(table, GroupConfig())


@pytest.mark.parametrize("column", ["lesion_side", "block"])
def test_missing_stratum_or_block_is_an_error_not_a_stratum(column):
    table = simulate_roi_trial(12, block_size=3, seed=2)
    table.loc[table["participant_id"] == "sub-07", column] = np.nan
    with pytest.raises(InputError, match=f"participant sub-07: {column} is missing"):
        fit_group_models(table, _spec(strata=["lesion_side"]))


def test_simulator_records_permuted_blocks():
    table = simulate_roi_trial(14, block_size=6, seed=3)
    people = table.groupby("participant_id")[["arm", "block"]].first()
    assert list(people["block"]) == [1] * 6 + [2] * 6 + [3] * 2
    msc = people["arm"].eq("msc").groupby(people["block"]).sum()
    assert msc[1] == msc[2] == 4   # 2:1 in every complete block


def test_relabellings_permute_within_blocks_of_strata():
    """Block ids repeat across strata: (L, 1) and (R, 1) are different blocks."""
    ids = [f"sub-{i:02d}" for i in range(12)]
    labels = pd.Series([1.0, 1.0, 0.0] * 4, index=ids)
    blocks = pd.Series([1, 1, 1, 2, 2, 2] * 2, index=ids)
    strata = pd.DataFrame({"stratum": ["L"] * 6 + ["R"] * 6}, index=ids)
    perms = relabellings(labels, 1000, strata=strata, blocks=blocks)
    assert perms.attrs["exact"] and perms.attrs["size"] == 81 == len(perms.drop_duplicates())
    assert perms.attrs["scheme"] == "permuted blocks within strata by stratum (4 blocks)"
    for start in range(0, 12, 3):
        assert (perms.iloc[:, start:start + 3].sum(axis=1) == 2).all()
    drawn = relabellings(labels, 50, strata=strata, blocks=blocks, exact=False, seed=1)
    assert drawn.attrs["size"] == 81 and not drawn.attrs["exact"] and len(drawn) == 50
    for start in range(0, 12, 3):
        assert (drawn.iloc[:, start:start + 3].sum(axis=1) == 2).all()


def test_block_randomisation_p_equals_hand_enumeration():
    """12 patients in blocks of 3 at 2:1 allow exactly 3^4 = 81 assignments; the exact
    randomisation p of each arm term is the share of them, listed here by hand, whose GLS |z|
    (variance components of the null model) is at least the observed one."""
    table = simulate_roi_trial(12, block_size=3, effect=1.5, seed=6)
    model = fit_group_models(table, _spec(n_permutations=2000)).set_index("term")
    arm_terms = ["arm", "arm:time[ses-06]", "arm:time[ses-24]"]
    assert (model["n_assignments"] == 81).all() and (model["n_permutations"] == 81).all()
    assert (model["randomisation"] == "exact").all()
    assert (model["randomisation_scheme"] == "permuted blocks (4 blocks)").all()
    assert "assignments" not in model["warnings"].iloc[0]   # 1/81 < 0.05

    data = build_design(table, "mi4p_ipsi_effect", "itt")
    null = fit_mixed(data.y, data.x_fixed, data.z, data.subject)
    engine = GLSRandomisation(data, null.cov_re, null.scale)
    # each block of three: which of its members is the control
    hand = []
    for controls in itertools.product(range(3), repeat=4):
        labels = np.ones(12)
        for block, member in enumerate(controls):
            labels[3 * block + member] = 0.0
        hand.append(labels)
    hand = np.asarray(hand)
    assert len(np.unique(hand, axis=0)) == 81
    assert any((row == data.labels).all() for row in hand)
    z_obs = engine.statistics(data.labels[None, :])[0][0]
    z = engine.statistics(hand)[0]
    expected = (np.abs(z) >= np.abs(z_obs) * (1 - 1e-10)).sum(axis=0) / 81
    np.testing.assert_allclose(model.loc[arm_terms, "p_randomisation"], expected, rtol=1e-12)
    np.testing.assert_array_equal(np.round(expected * 81), [26, 25, 16])
    # the same trial read as complete randomisation: C(12, 4) = 495 assignments
    unblocked = fit_group_models(table.drop(columns="block"), _spec(n_permutations=2000))
    assert (unblocked["n_assignments"].dropna() == 495).all()
    assert (unblocked["randomisation_scheme"].dropna().isin(
        ["permutation of the whole trial", ""])).all()


def test_too_few_assignments_warn():
    """6 patients in blocks of 3: 9 assignments, so p >= 1/9 > alpha; the table says so."""
    table = simulate_roi_trial(6, block_size=3, seed=4)
    model = fit_group_models(table, _spec(n_permutations=500)).set_index("term")
    assert (model["n_assignments"] == 9).all()
    assert "only 9 assignments" in model["warnings"].iloc[0]
    assert model["p_randomisation"].dropna().min() >= 1 / 9 - 1e-12
