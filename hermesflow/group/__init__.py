"""Group statistics: the long table, mixed models, randomisation inference, safety tables.

Pure functions, pandas in and pandas out; nothing here reads images.
"""

from __future__ import annotations

from hermesflow.group.models import MODEL_COLUMNS, fit_group_models, fit_one_model
from hermesflow.group.safety import safety_tables

__all__ = ["MODEL_COLUMNS", "fit_group_models", "fit_one_model", "safety_tables"]
