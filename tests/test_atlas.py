"""The Juelich MI-4a/4p maps: found offline, on the right side, disjoint, on any grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.errors import InputError
from hermesflow.roi.atlases import atlas_label, load_atlas, roi_masks


def _grid(voxel: float) -> nib.Nifti1Image:
    shape = tuple(int(n) for n in np.ceil(np.array([180, 216, 180]) / voxel))
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    return nib.Nifti1Image(np.zeros(shape, np.uint8), affine)


@pytest.mark.parametrize("voxel", [2.0, 4.0])
def test_juelich_motor_rois(voxel):
    target = _grid(voxel)
    masks = roi_masks(load_atlas("juelich"), target, threshold=25)
    assert set(masks) == {("mi4a", "L"), ("mi4a", "R"), ("mi4p", "L"), ("mi4p", "R")}
    for (roi, side), mask in masks.items():
        xyz = nib.affines.apply_affine(target.affine, np.argwhere(mask))
        centre = xyz.mean(axis=0)
        assert (centre[0] < 0) == (side == "L"), (roi, side, centre)
        # Precentral gyrus: y about -25 mm, 4a above 4p (4p sits in the depth of the sulcus).
        assert -40 < centre[1] < -10
        volume_ml = mask.sum() * voxel**3 / 1000
        assert 3 < volume_ml < 30, (roi, side, volume_ml)
    assert not (masks[("mi4a", "L")] & masks[("mi4p", "L")]).any()
    z_4a = nib.affines.apply_affine(target.affine, np.argwhere(masks[("mi4a", "L")]))[:, 2]
    z_4p = nib.affines.apply_affine(target.affine, np.argwhere(masks[("mi4p", "L")]))[:, 2]
    assert z_4a.mean() > z_4p.mean()


def test_higher_threshold_gives_smaller_rois():
    target = _grid(4.0)
    atlas = load_atlas("juelich")
    loose, strict = roi_masks(atlas, target, 10), roi_masks(atlas, target, 50)
    for key in loose:
        assert strict[key].sum() < loose[key].sum()
        assert not (strict[key] & ~loose[key]).any()


def test_custom_dseg_atlas(tmp_path):
    target = _grid(4.0)
    labels = np.zeros(target.shape, np.int16)
    labels[5:8, 20:25, 30:34] = 1
    labels[30:33, 20:25, 30:34] = 2
    path = tmp_path / "atlas-hand_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, target.affine), path)
    pd.DataFrame({"index": [1, 2], "roi": ["hand", "hand"], "hemi": ["L", "R"]}).to_csv(
        tmp_path / "atlas-hand_dseg.tsv", sep="\t", index=False)
    atlas = load_atlas(str(path))
    assert atlas.kind == "dseg" and atlas.name == atlas_label(str(path)) == "atlashanddseg"
    masks = roi_masks(atlas, target)
    assert masks[("hand", "L")].sum() == 3 * 5 * 4
    assert (masks[("hand", "R")] == (labels == 2)).all()


def test_custom_atlas_without_label_table(tmp_path):
    path = tmp_path / "mine.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    with pytest.raises(InputError, match="mine.nii.gz: atlas has no label table -- write mine.tsv"):
        load_atlas(str(path))


# --- Atlas sources, regions and measures on small synthetic volumes --------------------------

def _small_grid() -> np.ndarray:
    """2 mm voxels, x from -8 (i=0) to +6 mm (i=7): i <= 3 is left, i >= 4 right."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-8, 0, 0]
    return affine


def _save(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, _small_grid() if affine is None else affine), path)
    return str(path)


def _table(path, **columns):
    pd.DataFrame(columns).to_csv(path, sep="\t", index=False)


def _measure_fixture(tmp_path):
    """Label atlas (hand and foot, both sides), GLM maps and a lesion, with known values."""
    shape = (8, 4, 4)
    labels = np.zeros(shape, np.int16)
    labels[1:3, 0:2, 0] = 1   # hand_L: 4 voxels
    labels[5:7, 0:2, 0] = 2   # hand_R: 4 voxels, one outside the brain
    labels[1:3, 2:4, 2] = 3   # foot_L: 4 voxels, all in the lesion
    labels[5:7, 2:4, 2] = 4   # foot_R
    atlas = _save(tmp_path / "limbs.nii.gz", labels)
    _table(tmp_path / "limbs.tsv", index=[1, 2, 3, 4],
           name=["hand_L", "hand_R", "Left foot", "foot rh"])
    psc, t, z = (np.zeros(shape, np.float32) for _ in range(3))
    # hand_L voxels (1,0) (1,1) (2,0) (2,1): psc 1, 2, 3, 4; t = 2 psc; z 1, 2, 3.5, 5.
    for (i, j), value, zval in zip([(1, 0), (1, 1), (2, 0), (2, 1)], [1, 2, 3, 4],
                                   [1, 2, 3.5, 5], strict=True):
        psc[i, j, 0], t[i, j, 0], z[i, j, 0] = value, 2 * value, zval
    # hand_R: psc 0.5, t 1; z 4 at (5,0) (5,1) (6,1), 0 at (6,0); (6,1) is outside the brain.
    psc[5:7, 0:2, 0], t[5:7, 0:2, 0] = 0.5, 1.0
    z[5, 0, 0] = z[5, 1, 0] = z[6, 1, 0] = 4.0
    psc[5:7, 2:4, 2], t[5:7, 2:4, 2] = 1.0, 3.0
    psc[1:3, 2:4, 2], z[1:3, 2:4, 2] = 9.0, 9.0  # foot_L: only lesioned voxels
    brain = np.ones(shape, np.uint8)
    brain[6, 1, 0] = 0
    lesion = np.zeros(shape, np.uint8)
    lesion[2, 1, 0] = 1          # the hand_L voxel with psc 4
    lesion[0:4, 2:4, 1:4] = 1    # the whole of foot_L
    maps = {name: _save(tmp_path / f"{name}.nii.gz", data)
            for name, data in {"effect": 10 * psc, "psc": psc, "t": t, "z": z}.items()}
    return (atlas, maps, _save(tmp_path / "brain.nii.gz", brain),
            _save(tmp_path / "lesion.nii.gz", lesion))


def test_each_measure_by_hand(tmp_path):
    from hermesflow.roi.measures import extract_roi_measures

    atlas, maps, brain, lesion = _measure_fixture(tmp_path)
    table = extract_roi_measures(maps, brain, "L", lesion_mask=lesion, atlas=atlas)
    v = table.set_index(["roi", "hemi", "measure"])["value"]
    # hand, ipsilesional (left): the psc-4 voxel is lesioned; 3 voxels remain.
    expected = {"n_voxels": 3, "n_voxels_atlas": 4, "frac_lesioned": 0.25, "destroyed": 0,
                "effect": 20.0, "psc": 2.0, "psc_weighted": 2.0, "mean_t": 4.0, "peak_t": 6.0,
                "n_active": 1, "frac_active": 1 / 3}
    for measure, value in expected.items():
        assert v["hand", "ipsi", measure] == pytest.approx(value), measure
    # hand, contralesional (right): 3 voxels in the brain, 2 of them with z 4 > 3.1.
    expected = {"n_voxels": 3, "n_voxels_atlas": 3, "frac_lesioned": 0.0, "destroyed": 0,
                "psc": 0.5, "mean_t": 1.0, "peak_t": 1.0, "n_active": 2, "frac_active": 2 / 3}
    for measure, value in expected.items():
        assert v["hand", "contra", measure] == pytest.approx(value), measure
    assert v["hand", "bilateral", "li"] == pytest.approx((1 - 2) / (1 + 2))
    # foot, ipsilesional: wholly inside the lesion -> flagged; its 9s never leak in.
    assert v["foot", "ipsi", "destroyed"] == 1
    assert v["foot", "ipsi", "n_voxels"] == 0 and v["foot", "ipsi", "n_voxels_atlas"] == 4
    assert v["foot", "ipsi", "frac_lesioned"] == 1.0 and v["foot", "ipsi", "n_active"] == 0
    for measure in ("effect", "psc", "mean_t", "peak_t", "frac_active", "psc_weighted"):
        assert np.isnan(v["foot", "ipsi", measure]), measure
    assert v["foot", "contra", "destroyed"] == 0 and v["foot", "contra", "psc"] == 1.0
    assert np.isnan(v["foot", "bilateral", "li"]), "no active voxel on either side"


def test_probability_weighted_mean_and_percent_or_fraction(tmp_path):
    from hermesflow.roi.measures import extract_roi_measures

    _, maps, brain, _ = _measure_fixture(tmp_path)
    prob = np.zeros((8, 4, 4, 2), np.float32)
    prob[1, 0, 0, 0], prob[2, 0, 0, 0], prob[3, 0, 0, 0] = 0.8, 0.4, 0.2  # blob_L
    prob[5, 0, 0, 1], prob[5, 1, 0, 1] = 0.5, 1.0                         # blob_R
    masks = {}
    for scale, name in ((1.0, "frac"), (100.0, "pct")):
        image = _save(tmp_path / f"tpl-MNI152NLin2009cAsym_res-02_atlas-{name}_probseg.nii.gz",
                      prob * scale)
        # TemplateFlow's table: no res- entity, index 1..N for the N volumes.
        _table(tmp_path / f"tpl-MNI152NLin2009cAsym_atlas-{name}_dseg.tsv", index=[1, 2],
               name=["blob_L", "blob_R"], color=["#ff0000", "#00ff00"])
        atlas = load_atlas(image, space="MNI152NLin2009cAsym:res-2")
        assert atlas_label(image) == name and atlas.values == ("0-1" if scale == 1 else "percent")
        masks[name] = roi_masks(atlas, nib.load(brain))
        table = extract_roi_measures(maps, brain, "R", atlas=atlas)
        v = table.set_index(["roi", "hemi", "measure"])["value"]
        # Left blob: 0.2 < 25 % is out; psc 1 (p 0.8) and 3 (p 0.4) -> (0.8 + 1.2) / 1.2.
        assert v["blob", "contra", "n_voxels"] == 2
        assert v["blob", "contra", "psc"] == pytest.approx(2.0)
        assert v["blob", "contra", "psc_weighted"] == pytest.approx((0.8 * 1 + 0.4 * 3) / 1.2)
        assert v["blob", "ipsi", "psc_weighted"] == pytest.approx(0.5)
    for key in masks["frac"]:
        assert (masks["frac"][key] == masks["pct"][key]).all() and masks["frac"][key].any()


def test_sides_from_names_columns_centroids_and_midline(tmp_path):
    from hermesflow.roi.atlases.regions import parse_name

    assert parse_name("GM_Primary_motor_cortex_BA4a_L") == ("gm_primary_motor_cortex_ba4a", "L")
    assert parse_name("Left-Hippocampus") == ("hippocampus", "L")
    assert parse_name("ctx-rh-precentral") == ("ctx_precentral", "R")
    assert parse_name("7Networks_LH_Vis_1") == ("roi_7networks_vis_1", "L")
    assert parse_name("Left to right fibres") == ("left_to_right_fibres", None)
    labels = np.zeros((8, 4, 4), np.int16)
    labels[0:2, 0, 0] = 1      # knob: left only -> centroid
    labels[2:6, 3, 3] = 2      # sma: two voxels each side of x = 0 -> split at the midline
    labels[6, 2, 2] = 3        # cue: right, by its table's hemisphere column
    image = _save(tmp_path / "parts.nii.gz", labels)
    _table(tmp_path / "parts.tsv", index=[1, 2, 3], name=["knob", "sma", "cue"],
           hemisphere=["", "", "R"])
    atlas = load_atlas(image)
    assert {(r.roi, r.side, r.side_from) for r in atlas.regions} == {
        ("knob", "L", "centroid"), ("sma", "L", "midline"), ("sma", "R", "midline"),
        ("cue", "R", "table")}
    masks = roi_masks(atlas, nib.load(image))
    assert masks[("sma", "L")].sum() == 2 and masks[("sma", "R")].sum() == 1  # x = 0 is neither
    assert atlas_label(image) == "parts" and atlas.templates == ()


def test_rois_choose_regions_by_name_or_pattern(tmp_path):
    atlas, *_ = _measure_fixture(tmp_path)
    assert {r.key for r in load_atlas(atlas, ["hand"]).regions} == {("hand", "L"), ("hand", "R")}
    assert {r.key for r in load_atlas(atlas, ["^foot", "hand_L"]).regions} == {
        ("foot", "L"), ("foot", "R"), ("hand", "L")}
    juelich = load_atlas("juelich")
    assert juelich.keys == [("mi4a", "L"), ("mi4a", "R"), ("mi4p", "L"), ("mi4p", "R")]
    assert [r.roi for r in load_atlas("juelich", ["BA6"]).regions] == ["gm_premotor_cortex_ba6"] * 2


def test_atlas_lacking_the_roi_lists_what_it_has(tmp_path):
    atlas, *_ = _measure_fixture(tmp_path)
    with pytest.raises(InputError) as err:
        load_atlas(atlas, ["mi4p"])
    assert str(err.value) == (f"{atlas}: no region matches --rois 'mi4p'; the atlas has: "
                              "hand_L, hand_R, Left foot, foot rh -- choose --rois among these "
                              "names (or a regular expression matching them)")


def test_table_not_matching_the_image(tmp_path):
    atlas, *_ = _measure_fixture(tmp_path)
    _table(tmp_path / "limbs.tsv", index=[1, 2, 3, 7], name=["a_L", "a_R", "b_L", "b_R"])
    with pytest.raises(InputError, match=r"limbs.tsv: table does not match the image .*limbs"
                       r".nii.gz: label\(s\) 7 of the table are not in the image; label\(s\) 4 "
                       r"of the image are not in the table -- use the label table"):
        load_atlas(atlas)
    prob = _save(tmp_path / "maps.nii.gz", np.ones((8, 4, 4, 2), np.float32))
    _table(tmp_path / "maps.tsv", index=[0, 2], name=["a_L", "a_R"])
    with pytest.raises(InputError, match="indices 0-2 for 2 volume"):
        load_atlas(prob)


def test_atlas_in_another_template(tmp_path):
    labels = np.zeros((8, 4, 4), np.int16)
    labels[1, 1, 1] = 1
    image = _save(tmp_path / "tpl-MNI152NLin6Asym_atlas-Hand_dseg.nii.gz", labels)
    _table(tmp_path / "tpl-MNI152NLin6Asym_atlas-Hand_dseg.tsv", index=[1], name=["hand_L"])
    with pytest.raises(InputError, match=r"_dseg.nii.gz: atlas is in template MNI152NLin6Asym "
                       r"but the maps are in MNI152NLin2009cAsym -- use the atlas in "
                       r"tpl-MNI152NLin2009cAsym"):
        load_atlas(image, space="MNI152NLin2009cAsym:res-2")
    assert load_atlas(image, space="MNI152NLin6Asym").keys == [("hand", "L")]
    # A custom file's sidecar may say it too.
    custom = _save(tmp_path / "mine.nii.gz", labels)
    _table(tmp_path / "mine.tsv", index=[1], name=["hand_L"])
    (tmp_path / "mine.json").write_text('{"Template": "tpl-MNI152NLin6Asym"}')
    with pytest.raises(InputError, match="atlas is in template MNI152NLin6Asym"):
        load_atlas(custom, space="MNI152NLin2009cAsym")


def test_sources_are_discovered_and_the_digest_follows_the_content(tmp_path):
    from hermesflow.roi.atlases import SOURCES, atlas_digest

    assert list(SOURCES) == ["juelich", "templateflow", "custom"]
    atlas, *_ = _measure_fixture(tmp_path)
    before = atlas_digest(atlas)
    _table(tmp_path / "limbs.tsv", index=[1, 2, 3, 4], name=["hand_L", "hand_R", "toe_L", "toe_R"])
    assert atlas_digest(atlas) != before
    assert {r.roi for r in load_atlas(atlas).regions} == {"hand", "toe"}, "edited file re-read"


def test_cli_refuses_a_bad_atlas_before_running(tmp_path, capsys):
    from hermesflow.cli.run import main

    atlas, *_ = _measure_fixture(tmp_path)
    argv = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--atlas", atlas]
    assert main([*argv, "--rois", "hand", "mi4p"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hermesflow: error: {atlas}: no region matches --rois 'mi4p'; the atlas has: "
                   "hand_L, hand_R, Left foot, foot rh -- choose --rois among these names (or a "
                   "regular expression matching them)"]
    assert main([*argv, "--atlas", str(tmp_path / "x" / "limbs.nii.gz")]) == 2
    assert "two atlases have the same label (limbs, limbs)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing was run or written"


@pytest.mark.parametrize("volumes", [[0], [10, 2, 50], [119, 120], [7, 3, 7]])
def test_volumes_streamed_equal_nibabels_read(volumes):
    """A probabilistic atlas's volumes, streamed through ISA-L, are nibabel's to the bit."""
    import dataclasses

    from hermesflow.roi.atlases import open_atlas
    from hermesflow.roi.atlases.loading import _volumes

    atlas = open_atlas("juelich")
    lo, hi = min(volumes), max(volumes) + 1
    expected = np.asarray(atlas.image.dataobj[..., lo:hi], np.float32)[
        ..., [v - lo for v in volumes]]
    got = _volumes(atlas, volumes)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    # An image held in memory (no file to stream) gives the same.
    in_memory = nib.Nifti1Image(np.asarray(atlas.image.dataobj[..., :hi]), atlas.image.affine)
    assert np.array_equal(_volumes(dataclasses.replace(atlas, image=in_memory), volumes),
                          expected)


def test_an_opened_atlas_is_reused_until_its_files_change(tmp_path):
    import os

    from hermesflow.roi.atlases import open_atlas

    target = _grid(4.0)
    labels = np.zeros(target.shape, np.int16)
    labels[5:8, 20:25, 30:34] = 1
    path = tmp_path / "atlas-hand_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, target.affine), path)
    table = tmp_path / "atlas-hand_dseg.tsv"
    table.write_text("index\troi\themi\n1\thand\tL\n")
    first = open_atlas(str(path))
    assert open_atlas(str(path)) is first
    # Edited in place (another name, same size would do as well): opened again.
    table.write_text("index\troi\themi\n1\tfoot\tL\n")
    os.utime(table, ns=(0, os.stat(table).st_mtime_ns + 10**9))
    again = open_atlas(str(path))
    assert again is not first
    assert [region.roi for region in again.regions] == ["foot"]
    # Removed: the error of a missing atlas, not the remembered one.
    path.unlink()
    with pytest.raises(InputError):
        open_atlas(str(path))
