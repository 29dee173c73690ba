"""What a participant-level run selects and models: output space, BIDS filters, GLM options,
atlases and their regions.

Checked once the config is resolved (and the run is not answered from its record,
:mod:`hermesflow.cli.rerun`), so that a typo stops the run in one line before anything is
indexed or fitted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hermesflow.config import Config
from hermesflow.errors import InputError

# Atlases (files and regions) that passed the up-front check, kept in the work folder.
ATLAS_RECORD = "hermesflow_atlas_checks.json"
MAX_ATLAS_RECORDS = 32


def check_selection(config: Config) -> None:
    """Parse ``[workflow] space``, the filter file and the model options (conditions,
    contrast, dummy scans); raise the one-line error of the first that is wrong."""
    from hermesflow.bids.filters import load_bids_filters
    from hermesflow.glm.options import check_model_options
    from hermesflow.preproc.collect import OutputSpace

    wf = config.workflow
    OutputSpace.parse(wf.space)
    load_bids_filters(wf.bids_filter_file or None)
    check_model_options(wf.conditions, wf.contrast, wf.dummy_scans)


def bold_filters(config: Config) -> dict:
    """The pybids query of the filter file's ``bold`` part (``{}`` without a file)."""
    from hermesflow.bids.filters import load_bids_filters, pybids_query

    return pybids_query(load_bids_filters(config.workflow.bids_filter_file or None))


def set_atlases(config: Config) -> list[str]:
    """Atlas paths made absolute (nodes run elsewhere); at participant level, each atlas is
    opened and its regions chosen now, so that a bad atlas or --rois stops the run.

    An atlas whose files (size, modification time) and regions passed this check before, as
    recorded in the work folder, is not opened again: reading a probabilistic atlas takes a
    second, and its ROI nodes open it anyway.  Returns what passed, for
    :func:`remember_atlases` to record once the folders are checked.
    """
    from hermesflow.roi.atlases import atlas_label, open_atlas

    wf = config.workflow
    atlases = _resolved(wf.atlases)
    wf.atlas = atlases[0] if len(atlases) == 1 else atlases
    labels = [atlas_label(a) for a in atlases]
    if len(set(labels)) < len(labels):
        raise InputError(None, f"two atlases have the same label ({', '.join(labels)}), so "
                         "their outputs would share file names", "rename one of the files")
    if config.execution.analysis_level != "participant":
        return []
    checked = _checked_atlases(config)
    for atlas in atlases:
        key = json.dumps([atlas, list(wf.rois or []), [
            [f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in open_atlas(atlas).files]])
        if key in checked:
            continue
        # Regions checked now; the template against each session's maps in its ROI node,
        # after the maps are written (an atlas in another space costs no GLM output).
        # Prepared as the ROI nodes ask for it when the space fits: workers forked from this
        # process then find it prepared (the fork server prepares its own, prepare_atlases).
        _prepare(atlas, wf.rois, wf.space)
        checked.add(key)
    return sorted(checked)


def _resolved(atlases: list[str]) -> list[str]:
    from hermesflow.roi.atlases import is_named

    return [a if is_named(a) else str(Path(a).resolve()) for a in atlases]


def _prepare(atlas: str, rois, space: str) -> None:
    """The atlas prepared as its ROI nodes ask for it when the space fits (its regions are
    checked on the way)."""
    from hermesflow.roi.atlases import load_atlas

    try:
        load_atlas(atlas, rois, space)
    except InputError:
        load_atlas(atlas, rois)


def prepare_atlases(config: Config) -> None:
    """Every atlas of the run prepared as :func:`set_atlases` prepares it, checked before or
    not: for the workers' fork server (:mod:`hermesflow.cli.workers`)."""
    for atlas in _resolved(config.workflow.atlases):
        _prepare(atlas, config.workflow.rois, config.workflow.space)


def _checked_atlases(config: Config) -> set[str]:
    try:
        return set(json.loads((Path(config.execution.work_dir) / ATLAS_RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def remember_atlases(config: Config, checked: list[str]) -> None:
    """Record the atlases :func:`set_atlases` passed, in the work folder (checked by then)."""
    if checked:
        from hermesflow.derivatives.writing import write_text

        write_text(Path(config.execution.work_dir) / ATLAS_RECORD,
                   json.dumps(checked[-MAX_ATLAS_RECORDS:]))


def read_files(config: Config) -> list[str]:
    """Files outside BIDS_DIR that a participant run reads: atlases, the filter file."""
    from hermesflow.roi.atlases import open_atlas

    files = [f for atlas in config.workflow.atlases for f in open_atlas(atlas).files]
    return files + ([config.workflow.bids_filter_file] if config.workflow.bids_filter_file
                    else [])


def check_sessions_inputs(config: Config, pairs: list[tuple[str, str]]) -> tuple[list, list[str]]:
    """Check every session's inputs before the graph runs; bad ones are left out."""
    from hermesflow.bids.checks import check_sessions, raw_input_checks

    ex, wf = config.execution, config.workflow
    checks = raw_input_checks(ex.bids_dir, wf.task, wf.preproc, bold_filters=bold_filters(
        config), conditions=wf.conditions)
    if wf.preproc == "existing":
        # The preprocessed files are a later stage's contract: bids/ is handed the check.
        from hermesflow.preproc.gather import gather_session

        checks.append(lambda subject, session: gather_session(
            ex.bids_dir, wf.fmriprep_dir, subject, session, wf.task, wf.space,
            bids_filter_file=wf.bids_filter_file, conditions=wf.conditions,
            need_confounds=bool(wf.confounds)))
    return check_sessions(pairs, checks)


def check_participants(bids_dir: str, config: Config) -> None:
    """participants.tsv concerns every session: a fault in it stops the run, in one line."""
    from hermesflow.bids.layout import read_participants
    from hermesflow.group.design import validate_design_columns

    path = Path(bids_dir) / "participants.tsv"
    try:
        table = read_participants(bids_dir)
    except UnicodeDecodeError as err:
        raise InputError(path, f"is not UTF-8 text (byte 0x{err.object[err.start]:02x} at "
                         f"offset {err.start})", "save it as UTF-8") from None
    # Arms the group models would refuse are refused now, before hours of first levels.
    validate_design_columns(table, control_arm=config.group.control_arm,
                            treatment_arm=config.group.treatment_arm, source=str(path))
