"""Nipype doors to the BIDS world: gather one session's inputs, write its derivatives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.bids.fmriprep import collect_session
from hermesflow.bids.layout import read_participants, session_inputs
from hermesflow.derivatives.naming import STATS, SessionNames, copy_atomic
from hermesflow.derivatives.writing import write_tsv
from hermesflow.errors import InputError
from hermesflow.interfaces.roi import lesion_side_from_mask


def gather_session(bids_dir: str, fmriprep_dir: str, subject: str, session: str, task: str,
                   space: str) -> dict:
    """Everything the GLM and ROI stages need for one session, checked."""
    raw = session_inputs(bids_dir, subject, session, task)
    prep = collect_session(fmriprep_dir, subject, session, t_r=raw.t_r, task=task, space=space)
    participants = read_participants(bids_dir).set_index("participant_id")
    side = None
    if "lesion_side" in participants.columns and f"sub-{subject}" in participants.index:
        value = participants.loc[f"sub-{subject}", "lesion_side"]
        side = None if pd.isna(value) else str(value).upper()
    if side is None:
        if prep.lesion_mask is None:
            raise InputError(Path(bids_dir) / "participants.tsv",
                             f"sub-{subject} has no lesion_side and no lesion mask",
                             "add lesion_side (L/R) or a lesion mask")
        side = lesion_side_from_mask(prep.lesion_mask)
    return {
        "bold": prep.bold, "mask": prep.mask, "confounds": prep.confounds,
        "lesion_mask": prep.lesion_mask, "events": raw.events, "t_r": raw.t_r,
        "lesion_side": side,
    }


class _GatherSessionInputSpec(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True)
    fmriprep_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str("MNI152NLin2009cAsym", usedefault=True)


class _GatherSessionOutputSpec(TraitedSpec):
    bold = File(exists=True)
    mask = File(exists=True)
    confounds = File(exists=True)
    lesion_mask = traits.Either(None, File(exists=True))
    events = File(exists=True)
    t_r = traits.Float()
    lesion_side = traits.Str()


class GatherSession(SimpleInterface):
    """Find and check the raw and preprocessed files of one subject x session."""

    input_spec = _GatherSessionInputSpec
    output_spec = _GatherSessionOutputSpec

    def _run_interface(self, runtime):
        self._results.update(gather_session(
            self.inputs.bids_dir, self.inputs.fmriprep_dir, self.inputs.subject,
            self.inputs.session, self.inputs.task, self.inputs.space,
        ))
        return runtime


def sink_session(output_dir: str, subject: str, session: str, task: str, space: str,
                 atlas: str, maps: dict[str, str], roi_table: str,
                 report: str | None = None) -> dict[str, str]:
    """Copy one session's maps, ROI table and report into the derivatives, with BIDS names."""
    names = SessionNames(Path(output_dir), subject, session, task, space)
    written = {}
    for stat in STATS:
        written[stat] = str(copy_atomic(maps[stat], names.statmap(stat)))
    table = pd.read_csv(roi_table, sep="\t")
    table.insert(0, "session_id", f"ses-{session}")
    table.insert(0, "participant_id", f"sub-{subject}")
    written["roi_table"] = str(write_tsv(names.roi_table(atlas), table))
    if report:
        written["report"] = str(copy_atomic(report, names.report(atlas)))
    return written


class _SessionSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str(mandatory=True)
    atlas = traits.Str(mandatory=True)
    effect = File(exists=True, mandatory=True)
    variance = File(exists=True, mandatory=True)
    t = File(exists=True, mandatory=True)
    z = File(exists=True, mandatory=True)
    psc = File(exists=True, mandatory=True)
    roi_table = File(exists=True, mandatory=True)
    report = File(exists=True, desc="HTML report of the session")


class _SessionSinkOutputSpec(TraitedSpec):
    roi_table = File(exists=True, desc="the ROI table as written in the derivatives")


class SessionSink(SimpleInterface):
    """Write a session's outputs into OUTPUT_DIR (run every time: never cached)."""

    input_spec = _SessionSinkInputSpec
    output_spec = _SessionSinkOutputSpec

    def _run_interface(self, runtime):
        maps = {stat: getattr(self.inputs, stat) for stat in STATS}
        written = sink_session(
            self.inputs.output_dir, self.inputs.subject, self.inputs.session,
            self.inputs.task, self.inputs.space, self.inputs.atlas, maps, self.inputs.roi_table,
            report=self.inputs.report or None,
        )
        self._results["roi_table"] = written["roi_table"]
        return runtime
