"""Per subject x session: gather inputs -> first-level GLM -> ROI measures -> derivatives."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from hermesflow.config import Config
from hermesflow.interfaces.bids import GatherSession, MapsSink, SessionSink
from hermesflow.interfaces.glm import SessionGLM
from hermesflow.interfaces.lesion import LesionToBold
from hermesflow.interfaces.qc import MotionQC
from hermesflow.interfaces.report import SessionFiguresHTML
from hermesflow.interfaces.roi import ROIMeasures
from hermesflow.preproc.collect import OutputSpace
from hermesflow.roi.atlases import atlas_digest, atlas_label


def _first(values: list) -> object:
    """The first run's file, for the nodes that read one run (QC, report, lesion grid)."""
    return values[0]


def init_session_wf(*, config: Config, name: str = "session_wf") -> pe.Workflow:
    """Build the analysis of one session.

    Inputs (``inputnode``)
        ``subject``, ``session`` (labels without prefix), ``fmriprep_dir`` (preprocessed data
        in the fMRIPrep layout, whatever produced it).
    Outputs (``outputnode``)
        ``roi_table``: the session's ROI measures as written in OUTPUT_DIR.

    The GLM node depends only on the data, the GLM options and the registered stat maps, so
    reprocessing with another atlas reuses its cached result and recomputes only the ROI node
    (measures and that atlas's report page, one node per session and atlas: each node costs
    its own dispatch and cache files) and the sink.  Maps travel as one ``name -> path`` dict per destination (the
    GLM's registry says which maps are derivatives and which the ROI measures read).
    """
    wf_config, execution = config.workflow, config.execution
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["subject", "session", "fmriprep_dir"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["roi_table"]), name="outputnode")

    gather = pe.Node(GatherSession(bids_dir=execution.bids_dir, task=wf_config.task,
                                   space=wf_config.space,
                                   bids_filter_file=wf_config.bids_filter_file,
                                   conditions=list(wf_config.conditions),
                                   need_confounds=bool(wf_config.confounds)),
                     # Cheap, and the main process already holds the pybids index.
                     name="gather", run_without_submitting=True)
    # fMRIPrep writes no lesion in template space: its own transforms carry the raw one there.
    lesion = pe.Node(LesionToBold(), name="lesion")
    glm = pe.Node(SessionGLM(
        confound_columns=list(wf_config.confounds), hrf_model=wf_config.hrf_model,
        high_pass=wf_config.high_pass, noise_model=wf_config.noise_model,
        smoothing_fwhm=wf_config.smoothing_fwhm, contrast=wf_config.contrast,
        conditions=list(wf_config.conditions), dummy_scans=int(wf_config.dummy_scans),
    ), name="glm", mem_gb=2.0)
    # File names keep space-NAME; a resolution (NAME:res-N) only selects the inputs.
    space_name = OutputSpace.parse(wf_config.space).name
    # One branch per --atlas (iterables), downstream of the GLM: the GLMs are fitted once.
    # The digest of each atlas's files is an input of its ROI node, so an atlas edited in
    # place reruns it (and nothing upstream).
    atlases = wf_config.atlases
    atlassource = pe.Node(niu.IdentityInterface(fields=["atlas", "digest", "label"]),
                          name="atlassource")
    atlassource.iterables = [("atlas", atlases),
                             ("digest", [atlas_digest(a) for a in atlases]),
                             ("label", [atlas_label(a) for a in atlases])]
    atlassource.synchronize = True
    atlas_options = {"rois": list(wf_config.rois), "space": wf_config.space,
                     "threshold": wf_config.atlas_threshold}
    # Measures and the atlas's report page in one node; the page never holds back the table
    # (a page that fails is reported by the sink, after the table is written).
    roi = pe.Node(ROIMeasures(active_z=wf_config.active_z, **atlas_options), name="roi")
    qc = pe.Node(MotionQC(fd_threshold=config.qc.fd_threshold, max_mean_fd=config.qc.max_mean_fd,
                          max_fraction_above=config.qc.max_fraction_above), name="qc")
    # The atlas-independent figures (QC, design, registration) are drawn once per session,
    # upstream of the atlas iterable: a new atlas reuses them from the cache.
    session_figures = pe.Node(SessionFiguresHTML(contrast=wf_config.contrast),
                              name="session_figures")
    # The maps are written once per session, before any atlas is applied: an ROI step that
    # fails (an atlas in another space) or a report that fails never costs the maps.
    # Cached, but run again when a map in OUTPUT_DIR is not the GLM's (MapsSink.always_run).
    maps_sink = pe.Node(MapsSink(output_dir=execution.output_dir, task=wf_config.task,
                                 space=space_name),
                        name="maps_sink", run_without_submitting=True)
    sink = pe.Node(SessionSink(output_dir=execution.output_dir, task=wf_config.task,
                               space=space_name),
                   name="sink", run_without_submitting=True, overwrite=True)

    workflow.connect([
        (inputnode, gather, [("subject", "subject"), ("session", "session"),
                             ("fmriprep_dir", "fmriprep_dir")]),
        (inputnode, sink, [("subject", "subject"), ("session", "session")]),
        (atlassource, roi, [("atlas", "atlas"), ("digest", "atlas_digest")]),
        (atlassource, sink, [("label", "atlas")]),
        (gather, glm, [("bold", "bold"), ("mask", "mask"), ("confounds", "confounds"),
                       ("events", "events"), ("t_r", "t_r"), ("sidecar", "sidecar")]),
        (gather, lesion, [("lesion_mask", "lesion_mask"), ("raw_lesion", "raw_lesion"),
                          ("lesion_transforms", "transforms"), (("mask", _first), "reference")]),
        (glm, roi, [("mask", "mask")]),
        (lesion, roi, [("lesion_mask", "lesion_mask")]),
        (gather, roi, [("lesion_side", "lesion_side")]),
        (glm, sink, [("info", "glm_info")]),
        (glm, roi, [("roi_maps", "maps")]),
        (inputnode, maps_sink, [("subject", "subject"), ("session", "session")]),
        (glm, maps_sink, [("derivative_maps", "maps")]),
        (maps_sink, sink, [("maps", "maps")]),
        (roi, sink, [("table", "roi_table"), ("sidecar", "roi_sidecar"), ("report", "report"),
                     ("report_error", "report_error")]),
        (gather, qc, [(("confounds", _first), "confounds")]),
        (qc, sink, [("qc", "qc")]),
        (inputnode, roi, [("subject", "subject"), ("session", "session")]),
        (gather, session_figures, [(("confounds", _first), "confounds"),
                                   (("bold", _first), "bold")]),
        (glm, session_figures, [("design", "design"), ("info", "glm_info")]),
        (lesion, session_figures, [("lesion_mask", "lesion_mask")]),
        (qc, session_figures, [("qc", "qc")]),
        (session_figures, roi, [("figures", "figures"), ("error", "figures_error")]),
        (session_figures, sink, [("figures", "figures")]),
        (sink, outputnode, [("roi_table", "roi_table")]),
    ])
    return workflow
