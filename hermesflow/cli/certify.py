"""The participant level's certificates, and the group level's choice of what to trust.

:func:`start_manifests` marks every session a participant run takes on as ``running`` (and a
session the up-front checks refused as ``failed``, when it has old outputs), before the graph
runs; the session sink completes each manifest last.  :func:`certified_tables` keeps, among
the ROI tables on disk, those whose manifest certifies them (see
:mod:`hermesflow.derivatives.manifest`); the others are logged, one line each, and listed in
``group/..._desc-excluded.tsv``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from hermesflow.config import Config
from hermesflow.derivatives.manifest import (
    FAILED,
    HashCache,
    InputHashes,
    manifest_path,
    refused_table,
    select_certified,
    session_input_files,
    settings_hash,
    start_session,
)
from hermesflow.derivatives.naming import SessionNames, group_file
from hermesflow.derivatives.writing import write_tsv

LOGGER = logging.getLogger("hermesflow")
# Inputs' SHA-256 by size, mtime and inode, in the work folder: a run re-hashes only what changed.
HASHES_NAME = "hermesflow_input_hashes.json"
_PROBLEM = re.compile(r"^sub-(?P<subject>\S+) ses-(?P<session>\S+): (?P<reason>.*)$")


def _manifests(config: Config, subject: str, session: str) -> list[Path]:
    """The session's manifest of every atlas of the run."""
    from hermesflow.preproc.collect import OutputSpace
    from hermesflow.roi.atlases import atlas_label

    wf = config.workflow
    names = SessionNames(Path(config.execution.output_dir), subject, session, wf.task,
                         OutputSpace.parse(wf.space).name)
    return [manifest_path(names.roi_table(atlas_label(atlas))) for atlas in wf.atlases]


def start_manifests(config: Config, good: Iterable[tuple[str, str]], problems: Iterable[str],
                    run: Mapping) -> InputHashes:
    """Write ``running`` manifests for ``good``, ``failed`` ones for refused sessions' old
    outputs (``problems`` are the checks' lines, ``sub-X ses-Y: why``).

    Returns the hashing of the good sessions' inputs, started in the background (in session
    order), for the run to hold open (``with``) while its sinks certify the sessions.  Inputs
    unchanged since a run in this work folder hashed them (an atlas re-run) have their digest
    in the manifest at once.
    """
    ex, wf = config.execution, config.workflow
    settings = settings_hash(dataclasses.asdict(wf))
    fmriprep = wf.fmriprep_dir if wf.preproc == "existing" else None
    inputs_of = {(subject, session): session_input_files(ex.bids_dir, subject, session,
                                                          wf.task, fmriprep)
                 for subject, session in good}
    cache = HashCache(Path(ex.work_dir) / HASHES_NAME)
    for (subject, session), inputs in inputs_of.items():
        for path in _manifests(config, subject, session):
            # None (not known yet): pending, the sink fills it in.
            start_session(path, inputs=inputs, settings=settings, bids_dir=ex.bids_dir,
                          run=run, hasher=cache.known)
    for line in problems:
        found = _PROBLEM.match(line)
        if found is None:
            continue
        for path in _manifests(config, found["subject"], found["session"]):
            # Only where old outputs exist: they must not pass for this run's.
            if path.exists() or path.with_name(path.name.replace(
                    "_manifest.json", "_roimeasures.tsv")).exists():
                start_session(path, inputs=[], settings=settings, bids_dir=ex.bids_dir,
                              run=run, status=FAILED, reason=found["reason"])
    pending = [f for files in inputs_of.values() for f in files if cache.known(f) is None]
    return InputHashes(cache, pending)


def certified_tables(config: Config, tables: list[str], atlas: str) -> list[str]:
    """The tables the group may read; the refused ones logged and listed in OUTPUT_DIR/group."""
    ex, wf = config.execution, config.workflow
    certified, refused = select_certified(tables, ex.bids_dir)
    for item in refused:
        LOGGER.warning("left out of the group: %s: %s", item.table, item.reason)
    listing = group_file(ex.output_dir, wf.task, atlas, "excluded")
    if refused:
        write_tsv(listing, refused_table(refused))
    else:
        # A listing from an earlier group run would describe tables this run did read.
        listing.unlink(missing_ok=True)
    return certified
