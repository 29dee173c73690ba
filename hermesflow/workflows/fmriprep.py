"""The ``--preproc fmriprep`` source: fMRIPrep in a container, one cached node per participant."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import Function, IdentityInterface
from nipype.pipeline import engine as pe

from hermesflow.containers import check_label
from hermesflow.interfaces.fmriprep import FMRIPrep


def fmriprep_output_dir(config) -> Path:
    """Where fMRIPrep writes: ``[workflow] fmriprep_dir``, else ``OUTPUT/sourcedata/fmriprep``.

    ``sourcedata/`` of a derivatives dataset is BIDS's place for the derivatives it was
    computed from.
    """
    chosen = config.workflow.fmriprep_dir
    if chosen:
        return Path(chosen).absolute()
    return Path(config.execution.output_dir).absolute() / "sourcedata" / "fmriprep"


def fmriprep_work_dir(config) -> Path:
    """Root of the per-participant fMRIPrep work folders (kept apart from Nipype's own)."""
    work = config.execution.work_dir or Path.cwd() / "work"
    return Path(work).absolute() / "fmriprep"


def fmriprep_generated_by(config) -> dict:
    """The ``GeneratedBy`` entry of the fMRIPrep that ``config`` runs, image digest included.

    Asks the engine now (before the graph runs), so OUTPUT's dataset_description can name the
    exact image; raises the engine's error when the engine or the image is missing.
    """
    from hermesflow.containers import default_image, fmriprep_provenance, get_engine

    engine = get_engine(config.containers.engine)
    image = config.containers.fmriprep_image or default_image(engine)
    engine.check_available()
    engine.check_image(image)
    return fmriprep_provenance(engine, image, engine.image_digest(image))


def _omp_nthreads(nprocs: int) -> int:
    # fMRIPrep's own rule: leave one core to the scheduler, at most 8 per process.
    return max(1, min(8, nprocs - 1))


def _same_folder(fmriprep_dirs):
    """All participants write one fMRIPrep folder: return it (Nipype Function node)."""
    folders = sorted(set(fmriprep_dirs))
    if len(folders) != 1:
        raise ValueError(f"expected one fMRIPrep output folder, got {folders}")
    return folders[0]


def init_fmriprep_wf(
    *, config, participants: list[str] | None, name: str = "fmriprep_wf",
    bids_validated: bool | None = None,
) -> pe.Workflow:
    """Run fMRIPrep on participants (each with all its sessions), in ``config``'s engine.

    Two shapes, one interface node per participant either way (cached on its own):

    * ``participants=[...]``: a MapNode over the list; ``outputnode.fmriprep_dir`` is ready
      when *every* participant is done, so one failing participant stops all sessions.
    * ``participants=None``: one plain node fed by ``inputnode.participant_label``, meant to sit
      under a ``subject`` iterable, with each subject's sessions downstream of it (sessions as
      a second iterable with ``itersource``).  A failing participant then stops only its own
      sessions.  See ``test_one_branch_per_participant`` in tests/test_containers_workflow.py.

    Parameters
    ----------
    config : hermesflow.config.Config
        ``[containers]`` engine, fmriprep_image, fs_license_file, templateflow_home (and, when
        present, fs_reconall and fmriprep_args); ``[execution]`` bids_dir, nprocs, mem_gb,
        work_dir, skip_bids_validation; ``[workflow]`` task, space, fmriprep_dir.
    participants : list of str or None
        Labels, with or without ``sub-``, or None for the per-branch shape.  Each node asks
        the scheduler for all ``nprocs`` cores, so MultiProc runs one fMRIPrep at a time.
    bids_validated : bool, optional
        True when hermesflow has validated the dataset, which adds ``--skip-bids-validation``
        (fMRIPrep's own check would repeat it).  Default: hermesflow validates unless
        ``[execution] skip_bids_validation`` is set.

    Inputs
    ------
    inputnode.bids_dir
        The BIDS dataset (default ``[execution] bids_dir``).
    inputnode.participant_label
        The participant (only with ``participants=None``).

    Outputs
    -------
    outputnode.fmriprep_dir
        The folder with fMRIPrep-layout derivatives for the participant(s), every session
        checked against the preprocessed contract.
    outputnode.provenance
        BIDS ``GeneratedBy`` entry (image tag and digest); a list of them per participant
        with the MapNode.
    outputnode.participants
        The label(s) run.
    """
    labels = None if participants is None else [check_label(p) for p in participants]
    if labels is not None and not labels:
        raise ValueError("init_fmriprep_wf needs at least one participant (or None)")
    execution, containers, workflow = config.execution, config.containers, config.workflow
    nprocs = max(1, int(execution.nprocs))
    if bids_validated is None:
        bids_validated = not getattr(execution, "skip_bids_validation", True)

    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["bids_dir", "participant_label"]),
                        name="inputnode")
    if execution.bids_dir:
        inputnode.inputs.bids_dir = str(Path(execution.bids_dir).absolute())
    outputnode = pe.Node(
        IdentityInterface(fields=["fmriprep_dir", "provenance", "participants"]),
        name="outputnode",
    )

    resources = {"n_procs": nprocs, "mem_gb": float(execution.mem_gb)}
    if labels is None:
        fmriprep = pe.Node(FMRIPrep(), name="fmriprep", **resources)
        wf.connect([
            (inputnode, fmriprep, [("participant_label", "participant_label")]),
            (fmriprep, outputnode, [("fmriprep_dir", "fmriprep_dir")]),
        ])
    else:
        fmriprep = pe.MapNode(FMRIPrep(), iterfield=["participant_label"], name="fmriprep",
                              **resources)
        fmriprep.inputs.participant_label = labels
        one_folder = pe.Node(
            Function(input_names=["fmriprep_dirs"], output_names=["fmriprep_dir"],
                     function=_same_folder),
            name="one_folder",
        )
        wf.connect([
            (fmriprep, one_folder, [("fmriprep_dir", "fmriprep_dirs")]),
            (one_folder, outputnode, [("fmriprep_dir", "fmriprep_dir")]),
        ])
    fmriprep.inputs.output_dir = str(fmriprep_output_dir(config))
    fmriprep.inputs.work_dir = str(fmriprep_work_dir(config))
    fmriprep.inputs.engine = containers.engine
    fmriprep.inputs.image = containers.fmriprep_image
    fmriprep.inputs.fs_license_file = containers.fs_license_file
    fmriprep.inputs.templateflow_home = containers.templateflow_home
    fmriprep.inputs.fs_reconall = bool(getattr(containers, "fs_reconall", False))
    fmriprep.inputs.extra_args = list(getattr(containers, "fmriprep_args", []) or [])
    fmriprep.inputs.nthreads = nprocs
    fmriprep.inputs.omp_nthreads = _omp_nthreads(nprocs)
    fmriprep.inputs.mem_mb = int(float(execution.mem_gb) * 1024)
    fmriprep.inputs.bids_validated = bids_validated
    fmriprep.inputs.task = workflow.task
    fmriprep.inputs.space = workflow.space
    # fMRIPrep's own form; res-2 unless the user chose a resolution.
    fmriprep.inputs.output_spaces = [
        workflow.space if ":res-" in workflow.space else f"{workflow.space}:res-2"]

    wf.connect([
        (inputnode, fmriprep, [("bids_dir", "bids_dir")]),
        (fmriprep, outputnode, [("provenance", "provenance"),
                                ("participant_label", "participants")]),
    ])
    return wf
