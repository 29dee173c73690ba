"""``hermesflow``: flags + config file -> one Config -> workflow -> Nipype plugin.

Exit status: 0 when every session (or the group) ran; 1 when some failed (each named in one
line, the others completed); 2 for unusable input or options (nothing run).
"""

from __future__ import annotations

import copy
import functools
import gc
import logging
import re
import sys
import time
from pathlib import Path

from hermesflow.cli.index import write_index_page
from hermesflow.cli.selection import (
    bold_filters,
    check_participants,
    check_selection,
    check_sessions_inputs,
    read_files,
    remember_atlases,
    set_atlases,
)
from hermesflow.config import Config
from hermesflow.errors import HermesflowError, InputError

LOGGER = logging.getLogger("hermesflow")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 some failed, 2 unusable)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = sum(a.count("v") for a in argv if re.fullmatch(r"-v+", a)) + argv.count(
        "--verbose")
    _setup_logging(verbose=verbose, quiet=any(a in ("-q", "--quiet") for a in argv))
    try:
        if argv and argv[0] == "simulate":
            return _simulate(argv[1:])
        if argv and argv[0] == "power":
            from hermesflow.cli.power import main as power_main

            _setup_nipype_logging(verbose)
            return power_main(argv[1:])
        if argv and argv[0] == "cluster":
            from hermesflow.cli.cluster import main as cluster_main

            _setup_nipype_logging(verbose)
            return cluster_main(argv[1:])
        return _bids_app(argv)
    except HermesflowError as err:
        print(f"hermesflow: error: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        # Every fault ends as one line; the traceback is for -v.
        if verbose:
            raise
        print(f"hermesflow: error: {type(err).__name__}: {err} -- unexpected; rerun with -v "
              "for the traceback and report it", file=sys.stderr)
        return 2


def console() -> int:
    """The ``hermesflow`` command: :func:`main`, then the process ends without the
    interpreter's final collections walking every object (0.4 s after a participant-level
    run); frozen objects are left whole to the OS (files are closed by then)."""
    status = main()
    gc.freeze()
    return status


def _setup_logging(verbose: int, quiet: bool = False) -> None:
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.WARNING)
    # -q: warnings and errors only (no progress lines, no summaries).
    LOGGER.setLevel(logging.WARNING if quiet and not verbose
                    else logging.DEBUG if verbose > 1 else logging.INFO)


def _setup_nipype_logging(verbose: int) -> None:
    """Nipype quiet unless -v; called once Nipype is needed (importing it takes a second)."""
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    # Quiet unless -v: hermesflow reports each failure itself, in one line.
    level = "INFO" if verbose else "CRITICAL"
    for key in ("workflow_level", "interface_level", "utils_level"):
        nipype_config.set("logging", key, level)
    nipype_logging.update_logging(nipype_config)


def _simulate(argv: list[str]) -> int:
    from hermesflow.cli.parser import build_simulate_parser
    from hermesflow.simulation.trial import SimulationSpec, simulate_trial

    args = build_simulate_parser().parse_args(argv)
    given = {"participants": args.participants, "effect_size": args.effect_size,
             "sessions": tuple(args.sessions) if args.sessions else None,
             "treated_fraction": args.treated_fraction, "tr": args.tr}
    options = dict({k: v for k, v in given.items() if v is not None}, seed=args.seed,
                   voxel_size=args.voxel_size, dropout=args.dropout)
    if args.design:
        from hermesflow.simulation.designs import get_design

        spec = get_design(args.design).simulation_spec(**options)
    else:
        spec = SimulationSpec(**options)
    start = time.monotonic()
    try:
        out = simulate_trial(args.out, spec, n_procs=args.nprocs)
    except FileExistsError as err:
        raise InputError(args.out, "already holds a dataset", "choose an empty folder") from err
    LOGGER.info("simulated %d participants in %.0f s: %s", spec.participants,
                time.monotonic() - start, out)
    return 0


def build_config(args) -> Config:
    """Defaults, then the config file, then the flags given; atlases and selection checked."""
    config = resolve_config(args)
    set_atlases(config)
    check_selection(config)
    return config


def resolve_config(args) -> Config:
    """Defaults, then the config file, then the flags given (paths resolved, nothing checked
    and nothing heavy imported: a rerun with nothing changed stops right after)."""
    config = Config.load(args.config) if args.config else Config()
    ex, wf, group, cont = config.execution, config.workflow, config.group, config.containers
    ex.bids_dir = str(args.bids_dir.resolve())
    ex.output_dir = str(args.output_dir.resolve())
    ex.analysis_level = args.analysis_level
    ex.verbose = args.verbose
    overrides = [
        (ex, "participant_label", args.participant_label or None),
        (ex, "session_label", args.session_label or None),
        (ex, "nprocs", args.nprocs), (ex, "skip_bids_validation", args.skip_bids_validation), (ex, "mem_gb", args.mem_gb),
        (ex, "work_dir", args.work_dir and str(args.work_dir.resolve())),
        (wf, "task", args.task), (wf, "preproc", args.preproc),
        (wf, "space", args.space), (wf, "dummy_scans", args.dummy_scans),
        (wf, "bids_filter_file", args.bids_filter_file and str(args.bids_filter_file.resolve())),
        (wf, "conditions", args.conditions), (wf, "contrast", args.contrast),
        (wf, "fmriprep_dir", args.fmriprep_dir and str(args.fmriprep_dir.resolve())),
        (wf, "atlas", args.atlas), (wf, "rois", args.rois),
        (wf, "atlas_threshold", args.atlas_threshold),
        (group, "time", args.time), (group, "random_slope", args.random_slope),
        (group, "covariates", args.covariates), (group, "n_permutations", args.n_permutations),
        (group, "randomisation_null", args.randomisation_null),
        (cont, "engine", args.container), (cont, "fmriprep_image", args.fmriprep_image),
        (cont, "fs_license_file", args.fs_license_file and str(args.fs_license_file.resolve())),
        (cont, "fs_reconall", args.fs_reconall), (cont, "fmriprep_args", args.fmriprep_args),
        (cont, "templateflow_home",
         args.templateflow_home and str(args.templateflow_home.resolve())),
    ]
    for section, key, value in overrides:
        if value is not None:
            setattr(section, key, value)
    if not ex.work_dir:
        ex.work_dir = str(Path(ex.output_dir).parent / "work")
    if not wf.fmriprep_dir and wf.preproc == "existing":
        wf.fmriprep_dir = str(Path(ex.bids_dir) / "derivatives" / "fmriprep")
    # With --preproc fmriprep and no folder given, fMRIPrep writes OUTPUT_DIR/sourcedata/fmriprep.
    return config


def _check_paths(config: Config) -> None:
    from hermesflow.bids.checks import check_paths

    existing = config.workflow.preproc == "existing"
    check_paths(config.execution.bids_dir, config.execution.output_dir,
                config.workflow.fmriprep_dir if existing else None,
                work_dir=config.execution.work_dir)


def _bids_app(argv: list[str]) -> int:
    from hermesflow.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    config = resolve_config(args)
    if config.execution.analysis_level == "group":
        _setup_nipype_logging(config.execution.verbose)
        set_atlases(config)
        check_selection(config)
        _check_paths(config)
        return run_group_level(config)
    from hermesflow.cli.rerun import unchanged_since

    as_given = copy.deepcopy(config)
    start = unchanged_since(as_given)
    if start is not None:
        LOGGER.info("participant level: inputs, settings, outputs and code unchanged since the "
                    "complete run of %s; outputs in %s", start, config.execution.output_dir)
        return 0
    from hermesflow.cli.workers import participant_workers

    # The server forks before this process imports Nipype, and imports it on the other core.
    quiet_nipype = functools.partial(_setup_nipype_logging, config.execution.verbose)
    with participant_workers(config, setup=quiet_nipype):
        quiet_nipype()
        checked = set_atlases(config)
        check_selection(config)
        _check_paths(config)
        remember_atlases(config, checked)
        return run_participant_level(config, as_given=as_given)


def _prepare_outputs(config: Config) -> Path:
    """dataset_description.json and the config of this run, in OUTPUT_DIR."""
    from hermesflow.derivatives.description import (
        dataset_description,
        hermesflow_generated_by,
        write_dataset_description,
    )
    from hermesflow.derivatives.naming import CONFIG_NAME
    from hermesflow.derivatives.writing import write_text

    out = Path(config.execution.output_dir)
    upstream = []
    if config.workflow.preproc == "fmriprep":
        from hermesflow.workflows.fmriprep import fmriprep_generated_by

        # Asks the engine for the image digest now; a missing engine or image stops here.
        upstream.append(fmriprep_generated_by(config))
    write_dataset_description(out, dataset_description(
        "hermesflow outputs", generated_by=[hermesflow_generated_by(), *upstream],
        source_datasets=[Path(config.execution.bids_dir).as_uri()]))
    level = config.execution.analysis_level
    config_file = config.save(out / "logs" / f"hermesflow_{level}_config.toml")
    config.save(out / CONFIG_NAME)
    # Statistical maps follow the BIDS statistical-derivatives proposal (BEP041), which the
    # schema does not hold yet; everything else must validate.
    ignored = ["*_statmap.nii.gz", "*_roimeasures.tsv", "*_roimeasures.json", "*_report.html",
               "*_manifest.json", "index.html",
               "group", "logs", "sourcedata", CONFIG_NAME]
    write_text(out / ".bidsignore", "\n".join(ignored) + "\n")
    return config_file


def _nipype_settings(config: Config) -> dict:
    """Execution settings for Nipype (its default poll interval alone costs ~2 s per node)."""
    return {
        "crashdump_dir": str(Path(config.execution.output_dir) / "logs"),
        "crashfile_format": config.nipype.crashfile_format,
        "poll_sleep_duration": config.nipype.poll_sleep_duration,
        "stop_on_first_crash": config.nipype.stop_on_first_crash,
        "remove_unnecessary_outputs": False,
        "create_report": False,
    }


def _run_workflow(workflow, config: Config) -> list[str]:
    """Run with the configured plugin; return one line per failed node."""
    from hermesflow.cli.failures import NodeFailures
    from hermesflow.cli.scheduler import run_with_plugin

    ex = config.execution
    settings = _nipype_settings(config)
    # A Workflow copies Nipype's global config when it is built: set its own copy.
    workflow.config["execution"].update(settings)
    failures = NodeFailures()
    callback = failures
    if LOGGER.isEnabledFor(logging.INFO):
        from hermesflow.cli.progress import Callbacks, Progress, count_nodes

        callback = Callbacks(failures, Progress(total=count_nodes(workflow)))
    plugin_args = {"n_procs": ex.nprocs, "memory_gb": ex.mem_gb, "raise_insufficient": False,
                   "status_callback": callback}
    try:
        run_with_plugin(workflow, ex.plugin, plugin_args)
    except RuntimeError as err:
        # Plugins without status callbacks (SLURMGraph) report only this.
        return failures.summaries(settings["crashdump_dir"]) or [f"workflow failed: {err}"]
    return failures.summaries(settings["crashdump_dir"])


def run_participant_level(config: Config, as_given: Config | None = None) -> int:
    """Check, then run every usable session; ``as_given`` (the configuration before its
    atlases were resolved) is recorded when every session completes, so that the same run
    again is answered from the record (:mod:`hermesflow.cli.rerun`)."""
    from hermesflow.bids.checks import check_sessions
    from hermesflow.bids.index import INDEX_FOLDER
    from hermesflow.bids.layout import keep_index_in, query_sessions
    from hermesflow.cli.certify import start_manifests
    from hermesflow.cli.lock import output_lock
    from hermesflow.cli.rerun import forget_record, write_record
    from hermesflow.workflows.base import init_hermesflow_wf

    ex = config.execution
    forget_record(as_given or config)
    findings = None
    if not ex.skip_bids_validation:
        from hermesflow.bids.validate import check_dataset

        # Dataset-level errors stop here; a session's errors leave out that session only.
        # The validator's report is reused while the dataset's file listing is unchanged.
        findings = check_dataset(ex.bids_dir,
                                 record=Path(ex.work_dir) / "bids_validator_record.json")
        LOGGER.info("BIDS validator: %d session(s) with errors, %d warning(s)",
                    len(findings.errors), len(findings.warnings))
    check_participants(ex.bids_dir, config)
    # pybids' index is kept in the work folder and reused while the dataset is unchanged.
    keep_index_in(ex.bids_dir, Path(ex.work_dir) / INDEX_FOLDER)
    pairs = query_sessions(ex.bids_dir, config.workflow.task, ex.participant_label,
                           ex.session_label, bold_filters=bold_filters(config))
    problems: list[str] = []
    if findings is not None:
        pairs, problems = check_sessions(pairs, [findings.check_session])
    good, more = check_sessions_inputs(config, pairs)
    problems += more
    for problem in problems:
        LOGGER.error(problem)
    if not good:
        raise InputError(ex.bids_dir, f"no session has usable inputs ({len(problems)} "
                         "refused, each named above)", "fix the inputs named above")
    with output_lock(ex.output_dir, level="participant", participants=ex.participant_label,
                     work_dir=ex.work_dir) as run:
        _prepare_outputs(config)
        LOGGER.info("participant level: %d session(s) of %d participant(s)", len(good),
                    len({s for s, _ in good}))
        start = time.monotonic()
        with start_manifests(config, good, problems, run):  # inputs hashed meanwhile
            failures = _run_workflow(init_hermesflow_wf(config, pairs=good), config)
        for failure in failures:
            LOGGER.error(failure)
        write_index_page(ex.output_dir)
    if not problems and not failures and as_given is not None:
        write_record(as_given, start=run.get("start", ""), files=read_files(config))
    if problems or failures:
        print(f"hermesflow: {len(good) - _failed_sessions(failures)} of "
              f"{len(good) + len(problems)} session(s) completed; {len(problems)} refused "
              f"before the run, {len(failures)} failure(s) in it (each named above)",
              file=sys.stderr)
    LOGGER.info("participant level done in %.0f s; outputs in %s", time.monotonic() - start,
                ex.output_dir)
    return 1 if problems or failures else 0


def run_group_level(config: Config) -> int:
    """The group level of each atlas in turn (its own long table, models and report)."""
    status = 0
    for atlas in config.workflow.atlases:
        one = copy.deepcopy(config)
        one.workflow.atlas = atlas
        status = max(status, _run_group_atlas(one))
    return status


def _run_group_atlas(config: Config) -> int:
    from hermesflow.cli.certify import certified_tables
    from hermesflow.cli.lock import output_lock
    from hermesflow.derivatives.naming import group_file, roi_table_pattern
    from hermesflow.preproc.collect import OutputSpace
    from hermesflow.roi.atlases import atlas_label
    from hermesflow.workflows.base import init_hermesflow_wf

    ex, wf = config.execution, config.workflow
    atlas = atlas_label(wf.atlas)
    tables = sorted(str(p) for p in Path(ex.output_dir).glob(
        roi_table_pattern(wf.task, OutputSpace.parse(wf.space).name, atlas)))
    labels = {s.removeprefix("sub-") for s in ex.participant_label}
    if labels:
        tables = [t for t in tables if Path(t).name.split("_")[0][4:] in labels]
    if not tables:
        raise InputError(ex.output_dir, f"no ROI tables for atlas '{atlas}'",
                         "run the participant level first (same OUTPUT_DIR and --atlas)")
    with output_lock(ex.output_dir, level="group", participants=ex.participant_label,
                     work_dir=ex.work_dir):
        found = len(tables)
        # Only what the participant level certified: no truncated, stale or foreign table.
        tables = certified_tables(config, tables, atlas)
        if not tables:
            raise InputError(ex.output_dir, f"none of the {found} ROI table(s) is certified "
                             "(each named above)",
                             "rerun the participant level on these sessions")
        config_file = _prepare_outputs(config)
        LOGGER.info("group level: %d session ROI table(s), %d left out", len(tables),
                    found - len(tables))
        failures = _run_workflow(
            init_hermesflow_wf(config, roi_tables=tables, config_file=str(config_file)), config)
        for failure in failures:
            LOGGER.error(failure)
        write_index_page(ex.output_dir)
    if not failures:
        folder = group_file(ex.output_dir, wf.task, atlas, "long").parent
        print(f"Group tables: {folder}")
    return 1 if failures or len(tables) < found else 0


def _failed_sessions(failures: list[str]) -> int:
    """How many sessions the failure lines name (``sub-X ses-Y (node): ...``)."""
    return len({tuple(line.split()[:2]) for line in failures if line.startswith("sub-")})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
