"""Group statistics: mixed models, randomisation inference, safety tables, power.

Pure functions, pandas in and pandas out; nothing here reads images.
"""

from __future__ import annotations

from hermesflow.stats.group import MODEL_COLUMNS, fit_group_models, fit_one_model
from hermesflow.stats.safety import safety_tables
from hermesflow.stats.simulate import simulate_roi_trial

__all__ = ["MODEL_COLUMNS", "fit_group_models", "fit_one_model", "safety_tables",
           "simulate_roi_trial"]
