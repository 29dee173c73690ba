"""The group stage's files: kept in the node's folder first, then copied into OUTPUT_DIR/group.

Every group file is keyed ``<desc>.<ext>`` (``long.tsv``, ``mixedlm.json``, ``report.html``,
``safety_by_window.tsv``).  The key's stem is the BIDS ``desc`` entity without underscores
(``desc-safetybywindow``); :func:`~hermesflow.derivatives.naming.group_file` gives the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hermesflow.derivatives.naming import group_file
from hermesflow.derivatives.writing import copy_file, write_json, write_tsv
from hermesflow.errors import HermesflowError

SAFETY_PREFIX = "safety_"


def _split(key: str) -> tuple[str, str]:
    stem, dot, ext = key.partition(".")
    if not dot or not stem or not ext:
        raise HermesflowError(f"group file key {key!r}: expected '<desc>.<ext>'")
    return stem, f".{ext}"


def group_target(output_dir: str | Path, task: str, atlas: str, key: str) -> Path:
    """Where the group file ``key`` goes in OUTPUT_DIR."""
    stem, ext = _split(key)
    return group_file(output_dir, task, atlas, stem.replace("_", ""), ext)


def write_group_tables(folder: str | Path, tables: Mapping[str, pd.DataFrame | dict]
                       ) -> dict[str, str]:
    """Write each table as ``folder/<key>``: a DataFrame as a BIDS TSV, a dict as JSON.

    Returns
    -------
    dict
        The written path of every key, in the order given.
    """
    written = {}
    for key, table in tables.items():
        _split(key)
        path = Path(folder) / key
        if isinstance(table, pd.DataFrame):
            written[key] = str(write_tsv(path, table))
        else:
            written[key] = str(write_json(path, table))
    return written


def sink_group(output_dir: str | Path, task: str, atlas: str, files: Mapping[str, str]
               ) -> dict[str, str]:
    """Copy the group files into ``OUTPUT_DIR/group`` with their BIDS names (atomically).

    Parameters
    ----------
    files
        ``<desc>.<ext>`` -> a file the group node wrote in its own folder.

    Returns
    -------
    dict
        The same keys -> the files as written in OUTPUT_DIR.
    """
    return {key: str(copy_file(path, group_target(output_dir, task, atlas, key)))
            for key, path in files.items()}


def read_group_tables(files: Mapping[str, str]
                      ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """The long table, the model table and the safety tables (by name) back from TSV."""
    def read(path: str) -> pd.DataFrame:
        # Only 'n/a' is missing in a BIDS TSV; labels such as 'NA' stay text.
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"],
                           dtype={"participant_id": str, "session_id": str})

    safety = {key.removeprefix(SAFETY_PREFIX).removesuffix(".tsv"): read(path)
              for key, path in files.items()
              if key.startswith(SAFETY_PREFIX) and key.endswith(".tsv")}
    return read(files["long.tsv"]), read(files["mixedlm.tsv"]), safety
