"""The ``--preproc native`` source: antspyx preprocessing, one cached node per step.

Edges (what each node hands on)::

    inputs    -> motion, brain (T1w, lesion), t1w2mni (lesion), apply (BOLD, lesion),
                 write (subject, session, sidecar)
    brain     -> bold2t1w (brain), t1w2mni (brain, affine to the template)
    motion    -> bold2t1w (boldref), apply (per-volume transforms), confounds (parameters)
    bold2t1w  -> apply (BOLD -> T1w transform)
    t1w2mni   -> apply (T1w -> MNI transforms, template)
    apply     -> confounds (BOLD, mask), write (BOLD, brain and lesion masks)
    confounds -> write -> outputnode

Each node keeps its files in its own working folder, so after a crash, or with a changed
option, Nipype reruns only the nodes whose inputs changed: another T1w -> MNI model reruns
``t1w2mni`` and what follows, never the per-volume registrations of ``motion``.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import SimpleInterface
from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from hermesflow.interfaces.native import (
    ApplyTransforms,
    BoldToT1w,
    BrainExtract,
    FindNativeInputs,
    HeadMotion,
    NativeConfounds,
    T1wToMNI,
    WriteNativeOutputs,
)


def native_output_dir(config) -> Path:
    """Where the native source writes: ``[workflow] fmriprep_dir``, else
    ``OUTPUT/sourcedata/hermesflow-native`` (``sourcedata/`` of a derivatives dataset holds
    the derivatives it was computed from)."""
    chosen = config.workflow.fmriprep_dir
    if chosen:
        return Path(chosen).absolute()
    return Path(config.execution.output_dir).absolute() / "sourcedata" / "hermesflow-native"


def _step(interface: SimpleInterface, name: str, config, **options) -> pe.Node:
    """A node that raises on purpose when ``name`` is in ``[nipype] fail_nodes``."""
    if name in config.nipype.fail_nodes:
        interface.inputs.fail_on_purpose = name
    return pe.Node(interface, name=name, **options)


def init_native_preproc_wf(
    *, config, name: str = "native_preproc_wf", smoothing_fwhm: float = 0.0,
    transform: str = "SyN", reference: str | None = None,
) -> pe.Workflow:
    """Preprocess one session with antspyx and write it in the fMRIPrep layout.

    Meant to sit under the session iterable of
    :func:`hermesflow.workflows.base.init_participant_wf`.  Nodes: ``inputs`` (raw T1w,
    lesion, BOLD, checked), ``motion`` (head-motion estimation), ``brain`` (brain
    extraction), ``bold2t1w``, ``t1w2mni``, ``apply``
    (one-shot resampling, brain and lesion masks), ``confounds`` and ``write`` (the fMRIPrep
    layout in :func:`native_output_dir`; rerun every time, it only copies).

    Parameters
    ----------
    config : hermesflow.config.Config
        ``[execution]`` bids_dir, output_dir; ``[workflow]`` task, fmriprep_dir;
        ``[nipype]`` fail_nodes (node names that raise, for tests).
    smoothing_fwhm : float
        Smoothing of the MNI BOLD, mm.  Default 0: the GLM already smooths with
        ``[workflow] smoothing_fwhm``, and smoothing twice would hide it.
    transform : {"SyN", "Affine", "Rigid"}
        T1w -> MNI152NLin2009cAsym model, from brain extraction's affine.
    reference : path, optional
        An image whose grid the outputs take; default: the template at the BOLD voxel size.

    Inputs
    ------
    inputnode.subject, inputnode.session
        Labels, with or without prefix.

    Outputs
    -------
    outputnode.fmriprep_dir
        The folder with the session's fMRIPrep-layout outputs.
    """
    execution = config.execution
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["subject", "session"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["fmriprep_dir"]), name="outputnode")

    # Cheap: only checks that the files exist.
    inputs = _step(FindNativeInputs(task=config.workflow.task), "inputs", config,
                   run_without_submitting=True)
    if execution.bids_dir:
        inputs.inputs.bids_dir = str(Path(execution.bids_dir).absolute())
    motion = _step(HeadMotion(), "motion", config, mem_gb=1.0)
    brain = _step(BrainExtract(), "brain", config, mem_gb=1.0)
    bold2t1w = _step(BoldToT1w(), "bold2t1w", config, mem_gb=0.5)
    t1w2mni = _step(T1wToMNI(transform=transform), "t1w2mni", config, mem_gb=1.0)
    apply = _step(ApplyTransforms(), "apply", config, mem_gb=1.0)
    if reference:
        apply.inputs.reference = str(reference)
    confounds = _step(NativeConfounds(), "confounds", config, mem_gb=0.5)
    # Always rerun: the folder outside the work dir may have been removed since, and copying
    # the session's files costs nothing next to the steps before it.
    write = _step(WriteNativeOutputs(fmriprep_dir=str(native_output_dir(config)),
                                     task=config.workflow.task, smoothing_fwhm=smoothing_fwhm),
                  "write", config, run_without_submitting=True, overwrite=True)

    wf.connect([
        (inputnode, inputs, [("subject", "subject"), ("session", "session")]),
        (inputs, motion, [("bold", "bold")]),
        (inputs, brain, [("t1w", "t1w"), ("lesion", "lesion")]),
        (brain, bold2t1w, [("brain", "t1w")]),
        (motion, bold2t1w, [("boldref", "boldref")]),
        (brain, t1w2mni, [("brain", "t1w"), ("transforms", "initial")]),
        (inputs, t1w2mni, [("lesion", "lesion")]),
        (inputs, apply, [("bold", "bold"), ("lesion", "lesion")]),
        (motion, apply, [("transforms", "motion_transforms")]),
        (bold2t1w, apply, [("transforms", "coregistration")]),
        (t1w2mni, apply, [("transforms", "normalisation"), ("template", "template")]),
        (motion, confounds, [("motion_params", "motion_params")]),
        (apply, confounds, [("bold", "bold"), ("mask", "mask")]),
        (inputs, write, [("subject", "subject"), ("session", "session"),
                         ("sidecar", "raw_sidecar")]),
        (apply, write, [("bold", "bold"), ("mask", "mask"), ("lesion_mask", "lesion_mask")]),
        (confounds, write, [("confounds", "confounds")]),
        (write, outputnode, [("fmriprep_dir", "fmriprep_dir")]),
    ])
    return wf
