"""The ``--preproc native`` source: antspyx preprocessing, one cached node per session."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from hermesflow.interfaces.native import NativePreproc


def native_output_dir(config) -> Path:
    """Where the native source writes: ``[workflow] fmriprep_dir``, else
    ``OUTPUT/sourcedata/hermesflow-native`` (``sourcedata/`` of a derivatives dataset holds
    the derivatives it was computed from)."""
    chosen = config.workflow.fmriprep_dir
    if chosen:
        return Path(chosen).absolute()
    return Path(config.execution.output_dir).absolute() / "sourcedata" / "hermesflow-native"


def init_native_wf(
    *, config, name: str = "native_wf", smoothing_fwhm: float = 0.0,
    transform: str = "Affine",
) -> pe.Workflow:
    """Preprocess one session with antspyx and write it in the fMRIPrep layout.

    Meant to sit under the session iterable of
    :func:`hermesflow.workflows.base.init_participant_wf`, one node per subject x session.

    Parameters
    ----------
    config : hermesflow.config.Config
        ``[execution]`` bids_dir, output_dir; ``[workflow]`` task, fmriprep_dir.
    smoothing_fwhm : float
        Smoothing of the MNI BOLD, mm.  Default 0: the GLM already smooths with
        ``[workflow] smoothing_fwhm``, and smoothing twice would hide it.
    transform : {"Affine", "Rigid", "SyN"}
        T1w -> MNI152NLin2009cAsym model after the rigid stage.

    Inputs
    ------
    inputnode.subject, inputnode.session
        Labels, with or without prefix.

    Outputs
    -------
    outputnode.fmriprep_dir
        The folder with the session's fMRIPrep-layout outputs.
    """
    execution, workflow = config.execution, config.workflow
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["subject", "session"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["fmriprep_dir"]), name="outputnode")
    native = pe.Node(
        NativePreproc(fmriprep_dir=str(native_output_dir(config)), task=workflow.task,
                      smoothing_fwhm=smoothing_fwhm, transform=transform),
        name="native", mem_gb=1.0,
    )
    if execution.bids_dir:
        native.inputs.bids_dir = str(Path(execution.bids_dir).absolute())
    wf.connect([
        (inputnode, native, [("subject", "subject"), ("session", "session")]),
        (native, outputnode, [("fmriprep_dir", "fmriprep_dir")]),
    ])
    return wf
