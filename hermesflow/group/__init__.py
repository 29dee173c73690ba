"""Group statistics: the long table, mixed models, randomisation inference, safety tables.

Pure functions, pandas in and pandas out; nothing here reads images.  The re-exports below are
resolved on first use: the participant level's up-front checks import ``group.design`` alone,
and must not pay for statsmodels (about 0.3 s of every run's start).
"""

from __future__ import annotations

import importlib

_EXPORTS = {"MODEL_COLUMNS": "models", "fit_group_models": "models",
            "fit_one_model": "models", "safety_tables": "safety"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hermesflow.group.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hermesflow.group' has no attribute {name!r}")
