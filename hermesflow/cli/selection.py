"""What a participant-level run selects and models: output space, BIDS filters, GLM options.

Parsed when the config is built, so that a typo stops the run in one line before anything
is indexed or fitted.
"""

from __future__ import annotations

from hermesflow.config import Config


def check_selection(config: Config) -> None:
    """Parse ``[workflow] space``, the filter file and the model options (conditions,
    contrast, dummy scans); raise the one-line error of the first that is wrong."""
    from hermesflow.bids.filters import load_bids_filters
    from hermesflow.glm.model import check_model_options
    from hermesflow.preproc.collect import OutputSpace

    wf = config.workflow
    OutputSpace.parse(wf.space)
    load_bids_filters(wf.bids_filter_file or None)
    check_model_options(wf.conditions, wf.contrast, wf.dummy_scans)


def bold_filters(config: Config) -> dict:
    """The pybids query of the filter file's ``bold`` part (``{}`` without a file)."""
    from hermesflow.bids.filters import load_bids_filters, pybids_query

    return pybids_query(load_bids_filters(config.workflow.bids_filter_file or None))
