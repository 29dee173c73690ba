"""The registries: a measure or a map registered in one place reaches every output.

A small simulated trial (6 patients x 3 sessions, 6 mm voxels) goes through the pure stage
functions: GLM -> ROI measures -> session sink -> long table -> models -> group report.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.config import GroupConfig
from hermesflow.derivatives.reports import group_report
from hermesflow.derivatives.sink import sink_session
from hermesflow.derivatives.writing import write_json
from hermesflow.errors import InputError, RegistryError
from hermesflow.glm.maps import (
    STAT_MAPS,
    FittedContrast,
    derivative_maps,
    roi_maps,
    stat_map,
    unregister_stat_map,
)
from hermesflow.glm.model import fit_session_glm
from hermesflow.group.long_table import (
    build_long_table,
    default_outcomes,
    read_measure_roles,
    report_outcomes,
)
from hermesflow.group.models import fit_group_models
from hermesflow.interfaces.bids import SessionSink
from hermesflow.interfaces.glm import SessionGLM
from hermesflow.preproc.gather import gather_session
from hermesflow.roi.measures import (
    MEASURES,
    Voxels,
    extract_roi_measures,
    roi_measure,
    roi_table_sidecar,
    unregister_measure,
)
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

TASK, SPACE = "passivewrist", "MNI152NLin2009cAsym"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
             "framewise_displacement"]
BUILT_IN = ["n_voxels", "effect", "psc", "peak_t", "n_active", "n_voxels_atlas", "frac_lesioned",
            "destroyed", "mean_t", "frac_active", "psc_weighted", "li"]
MODELLED = ["effect", "psc", "peak_t", "n_active", "li"]
NEW = ["mi4a_contra_share_active", "mi4a_ipsi_share_active", "mi4p_contra_share_active",
       "mi4p_ipsi_share_active"]


@dataclass
class Session:
    subject: str
    session: str
    inputs: dict
    maps: dict


@pytest.fixture(scope="module")
def small_trial(tmp_path_factory) -> tuple[Path, list[Session]]:
    """A simulated trial whose sessions' GLMs are fitted once (with the built-in maps)."""
    root = tmp_path_factory.mktemp("registry")
    bids = simulate_trial(root / "bids", SimulationSpec(
        participants=6, voxel_size=6.0, n_blocks=5, treated_fraction=1.0, effect_size=0.8,
        seed=21))
    fmriprep = bids / "derivatives" / "fmriprep"
    sessions = []
    for ses_dir in sorted(bids.glob("sub-*/ses-*")):
        subject, session = ses_dir.parent.name[4:], ses_dir.name[4:]
        inputs = gather_session(str(bids), str(fmriprep), subject, session, TASK, SPACE)
        maps = fit_session_glm(inputs["bold"], inputs["mask"], inputs["confounds"],
                               inputs["events"], inputs["t_r"], root / f"glm_{subject}_{session}",
                               confound_columns=CONFOUNDS)
        sessions.append(Session(subject, session, inputs, maps))
    return bids, sessions


@pytest.fixture
def share_active():
    """A measure registered by the test only: the fraction of the ROI's voxels that are active."""

    @roi_measure("share_active", per="hemisphere", model=True, report=True)
    def fraction(voxels: Voxels) -> float:
        """Fraction of the ROI's voxels that are active."""
        return voxels.active.mean() if voxels.n_voxels else np.nan

    yield "share_active"
    unregister_measure("share_active")


def test_built_in_registries():
    assert list(MEASURES) == BUILT_IN, "no test leaves a measure behind"
    assert [m.name for m in MEASURES.values() if m.model] == MODELLED
    assert [m.name for m in MEASURES.values() if m.report] == ["psc", "li"]
    assert list(STAT_MAPS) == ["effect", "variance", "t", "z", "baseline", "psc"]
    assert [n for n, s in STAT_MAPS.items() if s.derivative] == [
        "effect", "variance", "t", "z", "psc"]
    assert [n for n, s in STAT_MAPS.items() if s.roi] == ["effect", "t", "z", "psc"]
    with pytest.raises(RegistryError, match="already registered"):
        roi_measure("psc")(lambda voxels: 0.0)
    with pytest.raises(RegistryError, match="letters and digits"):
        stat_map("abs_t")
    with pytest.raises(RegistryError, match="per='voxel'"):
        roi_measure("x", per="voxel")


def test_new_measure_reaches_roi_long_and_model_tables_and_report(small_trial, share_active,
                                                                  tmp_path):
    bids, sessions = small_trial
    out = tmp_path / "out"
    roi_tables = []
    for s in sessions:
        table = extract_roi_measures(roi_maps(s.maps), s.maps["mask"], s.inputs["lesion_side"],
                                     lesion_mask=s.inputs["lesion_mask"])
        # The new measure follows the built-in ones in each hemisphere; li stays last.
        hemi_rows = table[table["roi"] == "mi4p"]
        assert list(hemi_rows["measure"]) == [*BUILT_IN[:-1], "share_active"] * 2 + ["li"]
        values = table.set_index(["roi", "hemi", "measure"])["value"]
        for roi in ("mi4a", "mi4p"):
            for hemi in ("ipsi", "contra"):
                expected = values[roi, hemi, "n_active"] / values[roi, hemi, "n_voxels"]
                assert values[roi, hemi, "share_active"] == pytest.approx(expected, abs=1e-12)
                # The built-in frac_active is the same number.
                assert values[roi, hemi, "frac_active"] == pytest.approx(expected, abs=1e-12)
        folder = tmp_path / f"roi_{s.subject}_{s.session}"
        folder.mkdir()
        table.to_csv(folder / "roi.tsv", sep="\t", index=False)
        write_json(folder / "roi.json", roi_table_sidecar())
        written = sink_session(str(out), s.subject, s.session, TASK, SPACE, "juelich",
                               derivative_maps(s.maps), str(folder / "roi.tsv"),
                               roi_sidecar=str(folder / "roi.json"))
        roi_tables.append(written["roi_table"])
    # Active voxels are found in the ipsilesional MI-4p, where the simulator puts activity.
    measured = pd.concat(pd.read_csv(t, sep="\t") for t in roi_tables)
    ipsi = measured.query("roi == 'mi4p' and hemi == 'ipsi' and measure == 'share_active'")
    assert len(ipsi) == len(sessions) == 18
    assert ipsi["value"].between(0, 1).all() and ipsi["value"].mean() > 0.1

    # The group stage knows the measure only from the ROI tables' sidecars.
    roles = read_measure_roles(roi_tables)
    assert roles["share_active"] == {"Description": "Fraction of the ROI's voxels that are active",
                                    "Per": "hemisphere", "Model": True, "Report": True}
    spec = GroupConfig(n_permutations=0, analysis_sets=["itt"])
    long = build_long_table(roi_tables, bids, spec.clinical_scores)
    new_rows = long[long["outcome"].isin(NEW)]
    assert len(new_rows) == 4 * 18
    merged = new_rows[new_rows["outcome"] == "mi4p_ipsi_share_active"].merge(
        ipsi.assign(participant_id=ipsi["participant_id"].astype(str)),
        on=["participant_id", "session_id"])
    assert np.allclose(merged["value_x"], merged["value_y"])
    outcomes = default_outcomes(long, spec, roles)
    assert set(NEW) <= set(outcomes)
    assert not any(o.endswith("n_voxels") for o in outcomes), "n_voxels is not modelled"
    assert outcomes[-len(spec.clinical_scores):] == spec.clinical_scores
    assert len(outcomes) == 4 * 5 + 2 + len(spec.clinical_scores)
    models = fit_group_models(long, dataclasses.replace(spec, outcomes=outcomes))
    rows = models[models["outcome"] == "mi4p_ipsi_share_active"].set_index("term")
    assert rows.loc["Intercept", "n_subjects"] == 6
    assert rows.loc["Intercept", "n_observations"] == 18
    assert np.isfinite(rows.loc["arm:time[ses-24]", "estimate"])

    shown = report_outcomes(long, roles)
    assert shown.figures == ["mi4a_ipsi_psc", "mi4a_ipsi_share_active", "mi4p_ipsi_psc",
                             "mi4p_ipsi_share_active", "nihss_motor", "fm_motor"]
    assert set(NEW) <= set(shown.table) and "mi4p_ipsi_effect" not in shown.table
    page = group_report(tmp_path / "report.html", long=long, models=models,
                        figure_outcomes=shown.figures, table_outcomes=shown.table).read_text()
    # One trajectory per figure outcome (other figures, such as a forest plot, aside).
    alts = re.findall(r'<img alt="(?:trajectory )?([^"]+)"', page)
    assert [a for a in alts if a in shown.figures] == shown.figures
    assert "mi4p_ipsi_effect" not in alts


def test_outcomes_follow_the_roles(tmp_path):
    """Outcome names are parsed against the roles, longest measure names first."""
    long = pd.DataFrame({"outcome": ["hand_knob_ipsi_peak_li", "hand_knob_li", "mi4p_ipsi_psc",
                                     "mi4p_ipsi_n_voxels", "fm_motor", "other"]})
    roles = {"li": {"Per": "bilateral", "Model": True, "Report": False},
             "peak_li": {"Per": "hemisphere", "Model": False, "Report": True},
             "psc": {"Per": "hemisphere", "Model": True, "Report": True},
             "n_voxels": {"Per": "hemisphere", "Model": False, "Report": False}}
    spec = GroupConfig(clinical_scores=["fm_motor"])
    assert default_outcomes(long, spec, roles) == ["hand_knob_li", "mi4p_ipsi_psc", "fm_motor"]
    shown = report_outcomes(long, roles)
    assert shown.table == ["hand_knob_ipsi_peak_li", "mi4p_ipsi_psc", "fm_motor", "other"]
    assert shown.figures == ["hand_knob_ipsi_peak_li", "mi4p_ipsi_psc", "fm_motor"]
    assert report_outcomes(long, roles, ["fm_motor"]).table[-1] == "fm_motor"
    with pytest.raises(InputError, match=r"t\.json: missing or without 'Measures'"):
        read_measure_roles([str(tmp_path / "t.tsv")])


def test_new_stat_map_is_computed_and_written_by_the_sink(small_trial, tmp_path):
    _, sessions = small_trial
    s = sessions[0]

    @stat_map("se")
    def standard_error(fit: FittedContrast) -> nib.Nifti1Image:
        """Standard error of the contrast."""
        variance = np.asarray(fit.map("variance").dataobj, dtype=np.float64)
        return nib.Nifti1Image(np.sqrt(variance).astype(np.float32), fit.map("effect").affine)

    try:
        glm = SessionGLM(bold=s.inputs["bold"], mask=s.inputs["mask"],
                         confounds=s.inputs["confounds"], events=s.inputs["events"],
                         t_r=s.inputs["t_r"], confound_columns=CONFOUNDS)
        assert glm.inputs.stat_maps[-1] == "se", "a new map changes the GLM node's hash"
        (tmp_path / "glm").mkdir()
        result = glm.run(cwd=str(tmp_path / "glm")).outputs
        assert list(result.derivative_maps) == ["effect", "variance", "t", "z", "psc", "se"]
        assert list(result.roi_maps) == ["effect", "t", "z", "psc"]
        roi_table = tmp_path / "roi.tsv"
        pd.DataFrame({"roi": ["mi4p"], "hemi": ["ipsi"], "side": ["L"], "measure": ["psc"],
                      "value": [1.0]}).to_csv(roi_table, sep="\t", index=False)
        (tmp_path / "sink").mkdir()
        SessionSink(output_dir=str(tmp_path / "out"), subject=s.subject, session=s.session,
                    task=TASK, space=SPACE, atlas="juelich", maps=result.derivative_maps,
                    roi_table=str(roi_table)).run(cwd=str(tmp_path / "sink"))
    finally:
        unregister_stat_map("se")
    func = tmp_path / "out" / f"sub-{s.subject}" / f"ses-{s.session}" / "func"
    prefix = f"sub-{s.subject}_ses-{s.session}_task-{TASK}_space-{SPACE}_contrast-move"
    assert sorted(p.name for p in func.glob("*_statmap.nii.gz")) == sorted(
        f"{prefix}_stat-{stat}_statmap.nii.gz" for stat in ("effect", "variance", "t", "z",
                                                             "psc", "se"))
    se = np.asarray(nib.load(func / f"{prefix}_stat-se_statmap.nii.gz").dataobj)
    variance = np.asarray(nib.load(func / f"{prefix}_stat-variance_statmap.nii.gz").dataobj)
    inside = np.asarray(nib.load(s.maps["mask"]).dataobj) > 0
    assert np.allclose(se[inside] ** 2, variance[inside], rtol=1e-5)
    assert variance[inside].min() > 0
    # The same GLM maps as without the new one.
    effect = np.asarray(nib.load(func / f"{prefix}_stat-effect_statmap.nii.gz").dataobj)
    assert np.array_equal(effect, np.asarray(nib.load(s.maps["effect"]).dataobj))
    assert "se" not in STAT_MAPS
