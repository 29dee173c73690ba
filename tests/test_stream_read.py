"""Streamed reads of 4D series (``derivatives.writing``) against nibabel's whole reads."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from hermesflow.derivatives.writing import mean_volume, stream_volumes


def _scaled_series(path, rng):
    """A scaled int16 series as scanners and fMRIPrep write them."""
    data = rng.normal(1000.0, 50.0, (7, 6, 5, 40)).astype(np.float32)
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    image = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.5, 1.0]), header)
    nib.save(image, path)
    assert nib.load(path).dataobj.slope != 1.0, "the file is scaled"
    return nib.load(path)


@pytest.mark.parametrize("name", ["bold.nii.gz", "bold.nii"])
def test_mean_volume_equals_nibabels_mean_of_the_whole_series(tmp_path, name):
    written = _scaled_series(tmp_path / name, np.random.default_rng(0))
    expected = written.get_fdata(dtype=np.float64).mean(axis=-1)
    mean = mean_volume(tmp_path / name)
    assert mean.shape == expected.shape and mean.get_data_dtype() == np.float32
    np.testing.assert_allclose(mean.get_fdata(), expected, rtol=1e-6)
    assert np.allclose(mean.affine, written.affine)
    raw = np.stack([v.copy() for v in stream_volumes(written, tmp_path / name)], axis=-1)
    assert np.array_equal(raw.reshape(written.shape, order="F"),
                          np.asarray(written.dataobj.get_unscaled()))


def test_a_short_series_stops_with_the_volume_that_is_cut(tmp_path):
    _scaled_series(tmp_path / "bold.nii", np.random.default_rng(1))
    whole = (tmp_path / "bold.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(whole[: len(whole) - 100])
    with pytest.raises(EOFError, match="volume 40 of 40 is cut short"):
        mean_volume(tmp_path / "cut.nii")
