"""After either level: redraw ``OUTPUT_DIR/index.html`` from what is in OUTPUT_DIR."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("hermesflow")


def write_index_page(output_dir: str) -> None:
    """Every session's report and QC line; a page that cannot be written only warns."""
    from hermesflow.derivatives.index import write_index

    try:
        LOGGER.info("index of the reports: %s", write_index(output_dir))
    except (OSError, ValueError, KeyError) as err:
        LOGGER.warning("index page not written: %s", err)
