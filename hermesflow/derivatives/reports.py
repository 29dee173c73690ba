"""HTML reports: one per subject x session, one for the group, and the dataset's index page.

The pages are drawn by one module each (:mod:`~hermesflow.derivatives.session_report`,
:mod:`~hermesflow.derivatives.group_report`, :mod:`~hermesflow.derivatives.index`) over one
skeleton (:mod:`~hermesflow.derivatives.html`); this module gathers their public names.
"""

from __future__ import annotations

from hermesflow.derivatives.group_report import TrialRecords, group_report
from hermesflow.derivatives.html import PALETTE
from hermesflow.derivatives.index import write_index
from hermesflow.derivatives.session_report import SessionFigures, session_report

__all__ = ["PALETTE", "SessionFigures", "TrialRecords", "group_report", "session_report",
           "write_index"]
