"""The GLM's options, checked before anything runs (no nilearn here: the CLI imports it)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hermesflow.errors import ConfigError

#: A condition name inside a contrast expression (``move - rest``).
CONDITION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def contrast_conditions(contrast: str) -> list[str]:
    """The condition names a nilearn contrast expression uses."""
    return CONDITION_NAME.findall(contrast)


def check_model_options(conditions: Sequence[str], contrast: str, dummy_scans: int) -> None:
    """Refuse a model that cannot be built: no condition, a contrast of unmodelled names."""
    if not conditions or not all(isinstance(c, str) and c for c in conditions):
        raise ConfigError("[workflow] conditions: give at least one trial_type, e.g. ['move'] "
                          "-- set it in the config or with --conditions")
    unknown = sorted(set(contrast_conditions(contrast)) - set(conditions))
    if unknown:
        raise ConfigError(f"[workflow] contrast {contrast!r} uses {', '.join(unknown)}, not a "
                          f"modelled condition ({', '.join(conditions)}) -- add it to "
                          "--conditions or fix --contrast")
    if int(dummy_scans) < -1:
        raise ConfigError(f"--dummy-scans {dummy_scans}: must be 0 or more -- leave it out to "
                          "use fMRIPrep's non_steady_state_outlier columns")
