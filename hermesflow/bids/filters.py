"""``--bids-filter-file``: fMRIPrep's JSON format, read into pybids queries.

The file maps a query name to the BIDS entities its files must have, as fMRIPrep documents::

    {"bold": {"task": "passivewrist", "run": 1, "echo": null},
     "t1w": {"session": "01"}}

Entity names are pybids' long names (``session``, ``run``, ``acquisition``, ``echo``, ...);
``null`` means "the entity must be absent" and ``"*"`` "any value, but present" (pybids'
``Query.NONE`` / ``Query.ANY``), and a list means "one of".  hermesflow reads the ``bold``
query (the raw runs and, through their entities, the preprocessed runs); ``t1w`` and ``roi``
are accepted for fMRIPrep's sake and passed to it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hermesflow.errors import InputError

# fMRIPrep's query names (fmriprep/config.py, ``bids_filters``).
QUERIES = ("bold", "sbref", "t1w", "t2w", "flair", "fmap", "roi", "dwi", "pet", "asl")
# pybids' long names -> the short keys used in file names.
ENTITIES = {
    "subject": "sub", "session": "ses", "task": "task", "acquisition": "acq",
    "ceagent": "ce", "reconstruction": "rec", "direction": "dir", "run": "run",
    "echo": "echo", "part": "part", "datatype": None, "suffix": None, "extension": None,
}


def load_bids_filters(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read and check a filter file (``{}`` when none is given)."""
    if path is None or str(path) == "":
        return {}
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "filter file not found", "check the --bids-filter-file path") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"is not valid JSON ({err})", "fix the JSON syntax") from None
    if not isinstance(content, dict):
        raise InputError(path, "must hold a JSON object of queries",
                         'write e.g. {"bold": {"run": 1}}')
    for query, entities in content.items():
        if query not in QUERIES:
            raise InputError(path, f"unknown query {query!r}",
                             f"use fMRIPrep's query names: {', '.join(QUERIES)}")
        if not isinstance(entities, dict):
            raise InputError(path, f"query {query!r} must map entities to values",
                             'write e.g. {"bold": {"run": 1}}')
        unknown = sorted(set(entities) - set(ENTITIES))
        if unknown:
            raise InputError(path, f"query {query!r} has unknown entit(ies) "
                             f"{', '.join(unknown)}",
                             f"use pybids' entity names: {', '.join(sorted(ENTITIES))}")
    return content


def pybids_query(filters: dict[str, dict[str, Any]], query: str = "bold") -> dict[str, Any]:
    """The ``query`` part of ``filters`` as keyword arguments of ``BIDSLayout.get``."""
    from bids.layout import Query  # only where pybids is queried: not in the nodes

    converted = {}
    for key, value in filters.get(query, {}).items():
        if value is None:
            converted[key] = Query.NONE
        elif value == "*":
            converted[key] = Query.ANY
        else:
            converted[key] = value
    return converted


def run_entities(filters: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The single-valued ``bold`` filters as short entities (``{"run": "1"}``), for matching
    preprocessed file names (the raw selection has already applied lists and wildcards)."""
    entities = {}
    for key, value in filters.get("bold", {}).items():
        short = ENTITIES.get(key)
        if short and short not in ("sub", "ses") and isinstance(value, (str, int)) \
                and value != "*":
            entities[short] = str(value)
    return entities
