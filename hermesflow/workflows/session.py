"""Per subject x session: gather inputs -> first-level GLM -> ROI measures -> derivatives."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from hermesflow.config import Config
from hermesflow.interfaces.bids import GatherSession, SessionSink
from hermesflow.interfaces.glm import SessionGLM
from hermesflow.interfaces.report import SessionReport
from hermesflow.interfaces.roi import ROIMeasures
from hermesflow.roi.atlases import atlas_label


def init_session_wf(*, config: Config, name: str = "session_wf") -> pe.Workflow:
    """Build the analysis of one session.

    Inputs (``inputnode``)
        ``subject``, ``session`` (labels without prefix), ``fmriprep_dir`` (preprocessed data
        in the fMRIPrep layout, whatever produced it).
    Outputs (``outputnode``)
        ``roi_table``: the session's ROI measures as written in OUTPUT_DIR.

    The GLM node depends only on the data, the GLM options and the registered stat maps, so
    reprocessing with another atlas reuses its cached result and recomputes only the ROI,
    report and sink nodes.  Maps travel as one ``name -> path`` dict per destination (the
    GLM's registry says which maps are derivatives and which the ROI measures read).
    """
    wf_config, execution = config.workflow, config.execution
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["subject", "session", "fmriprep_dir"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["roi_table"]), name="outputnode")

    gather = pe.Node(GatherSession(bids_dir=execution.bids_dir, task=wf_config.task,
                                   space=wf_config.space),
                     # Cheap, and the main process already holds the pybids index.
                     name="gather", run_without_submitting=True)
    glm = pe.Node(SessionGLM(
        confound_columns=list(wf_config.confounds), hrf_model=wf_config.hrf_model,
        high_pass=wf_config.high_pass, noise_model=wf_config.noise_model,
        smoothing_fwhm=wf_config.smoothing_fwhm, contrast=wf_config.contrast,
    ), name="glm", mem_gb=2.0)
    roi = pe.Node(ROIMeasures(atlas=wf_config.atlas, threshold=wf_config.atlas_threshold,
                              active_z=wf_config.active_z), name="roi")
    report = pe.Node(SessionReport(atlas=wf_config.atlas, threshold=wf_config.atlas_threshold),
                     name="report")
    sink = pe.Node(SessionSink(output_dir=execution.output_dir, task=wf_config.task,
                               space=wf_config.space, atlas=atlas_label(wf_config.atlas)),
                   name="sink", run_without_submitting=True, overwrite=True)

    workflow.connect([
        (inputnode, gather, [("subject", "subject"), ("session", "session"),
                             ("fmriprep_dir", "fmriprep_dir")]),
        (inputnode, sink, [("subject", "subject"), ("session", "session")]),
        (gather, glm, [("bold", "bold"), ("mask", "mask"), ("confounds", "confounds"),
                       ("events", "events"), ("t_r", "t_r")]),
        (gather, roi, [("mask", "mask"), ("lesion_mask", "lesion_mask"),
                       ("lesion_side", "lesion_side")]),
        (glm, roi, [("roi_maps", "maps")]),
        (glm, sink, [("derivative_maps", "maps")]),
        (roi, sink, [("table", "roi_table"), ("sidecar", "roi_sidecar")]),
        (inputnode, report, [("subject", "subject"), ("session", "session")]),
        (gather, report, [("mask", "mask"), ("lesion_side", "lesion_side")]),
        (glm, report, [("roi_maps", "maps")]),
        (roi, report, [("table", "roi_table")]),
        (report, sink, [("report", "report")]),
        (sink, outputnode, [("roi_table", "roi_table")]),
    ])
    return workflow
