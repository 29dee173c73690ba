"""``hermesflow``: flags + config file -> one Config -> workflow -> Nipype plugin.

Exit status: 0 when every session (or the group) ran; 1 when some failed (each named in one
line, the others completed); 2 for unusable input or options (nothing run).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path

from hermesflow.config import Config
from hermesflow.errors import HermesflowError, InputError

LOGGER = logging.getLogger("hermesflow")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(verbose=sum(a.count("v") for a in argv if re.fullmatch(r"-v+", a)))
    try:
        if argv and argv[0] == "simulate":
            return _simulate(argv[1:])
        if argv and argv[0] == "power":
            from hermesflow.cli.power import main as power_main

            return power_main(argv[1:])
        if argv and argv[0] == "cluster":
            from hermesflow.cli.cluster import main as cluster_main

            return cluster_main(argv[1:])
        return _bids_app(argv)
    except HermesflowError as err:
        print(f"hermesflow: error: {err}", file=sys.stderr)
        return 2


def _setup_logging(verbose: int) -> None:
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.WARNING)
    LOGGER.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
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
    spec = SimulationSpec(participants=args.participants, sessions=tuple(args.sessions),
                          effect_size=args.effect_size, seed=args.seed,
                          voxel_size=args.voxel_size, treated_fraction=args.treated_fraction,
                          dropout=args.dropout)
    start = time.monotonic()
    try:
        out = simulate_trial(args.out, spec)
    except FileExistsError as err:
        raise InputError(args.out, "already holds a dataset", "choose an empty folder") from err
    LOGGER.info("simulated %d participants in %.0f s: %s", spec.participants,
                time.monotonic() - start, out)
    return 0


def build_config(args) -> Config:
    """Defaults, then the config file, then the flags given."""
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
        (wf, "fmriprep_dir", args.fmriprep_dir and str(args.fmriprep_dir.resolve())),
        (wf, "atlas", args.atlas), (wf, "atlas_threshold", args.atlas_threshold),
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
    if wf.atlas.lower() != "juelich":
        wf.atlas = str(Path(wf.atlas).resolve())
    return config


def _check_paths(config: Config) -> None:
    from hermesflow.bids.checks import check_paths

    existing = config.workflow.preproc == "existing"
    check_paths(config.execution.bids_dir, config.execution.output_dir,
                config.workflow.fmriprep_dir if existing else None)


def _bids_app(argv: list[str]) -> int:
    from hermesflow.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    config = build_config(args)
    _check_paths(config)
    if config.execution.analysis_level == "group":
        return run_group_level(config)
    return run_participant_level(config)


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
               "group", "logs", "sourcedata", CONFIG_NAME]
    write_text(out / ".bidsignore", "\n".join(ignored) + "\n")
    return config_file


def _check_sessions(config: Config, pairs: list[tuple[str, str]]) -> tuple[list, list[str]]:
    """Check every session's inputs before the graph runs; bad ones are left out."""
    from hermesflow.bids.checks import check_sessions, raw_input_checks

    ex, wf = config.execution, config.workflow
    checks = raw_input_checks(ex.bids_dir, wf.task, wf.preproc)
    if wf.preproc == "existing":
        # The preprocessed files are a later stage's contract: bids/ is handed the check.
        from hermesflow.preproc.gather import gather_session

        checks.append(lambda subject, session: gather_session(
            ex.bids_dir, wf.fmriprep_dir, subject, session, wf.task, wf.space))
    return check_sessions(pairs, checks)


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

    ex = config.execution
    settings = _nipype_settings(config)
    # A Workflow copies Nipype's global config when it is built: set its own copy.
    workflow.config["execution"].update(settings)
    failures = NodeFailures()
    plugin_args = {"n_procs": ex.nprocs, "memory_gb": ex.mem_gb, "raise_insufficient": False,
                   "status_callback": failures}
    try:
        workflow.run(plugin=ex.plugin, plugin_args=plugin_args)
    except RuntimeError as err:
        # Plugins without status callbacks (SLURMGraph) report only this.
        return failures.summaries(settings["crashdump_dir"]) or [f"workflow failed: {err}"]
    return failures.summaries(settings["crashdump_dir"])


def run_participant_level(config: Config) -> int:
    from hermesflow.bids.layout import query_sessions
    from hermesflow.workflows.base import init_hermesflow_wf

    ex = config.execution
    if not ex.skip_bids_validation:
        from hermesflow.bids.validate import check_dataset

        warnings = check_dataset(ex.bids_dir)
        LOGGER.info("BIDS validator: no errors, %d warning(s)", len(warnings))
    pairs = query_sessions(ex.bids_dir, config.workflow.task, ex.participant_label,
                           ex.session_label)
    good, problems = _check_sessions(config, pairs)
    for problem in problems:
        LOGGER.error(problem)
    if not good:
        print("hermesflow: error: no session has usable inputs", file=sys.stderr)
        return 1
    _prepare_outputs(config)
    LOGGER.info("participant level: %d session(s) of %d participant(s)", len(good),
                len({s for s, _ in good}))
    start = time.monotonic()
    failures = _run_workflow(init_hermesflow_wf(config, pairs=good), config)
    for failure in failures:
        LOGGER.error(failure)
    LOGGER.info("participant level done in %.0f s; outputs in %s", time.monotonic() - start,
                ex.output_dir)
    return 1 if problems or failures else 0


def run_group_level(config: Config) -> int:
    from hermesflow.derivatives.naming import group_file, roi_table_pattern
    from hermesflow.roi.atlases import atlas_label
    from hermesflow.workflows.base import init_hermesflow_wf

    ex, wf = config.execution, config.workflow
    atlas = atlas_label(wf.atlas)
    tables = sorted(str(p) for p in Path(ex.output_dir).glob(
        roi_table_pattern(wf.task, wf.space, atlas)))
    labels = {s.removeprefix("sub-") for s in ex.participant_label}
    if labels:
        tables = [t for t in tables if Path(t).name.split("_")[0][4:] in labels]
    if not tables:
        raise InputError(ex.output_dir, f"no ROI tables for atlas '{atlas}'",
                         "run the participant level first (same OUTPUT_DIR and --atlas)")
    config_file = _prepare_outputs(config)
    LOGGER.info("group level: %d session ROI table(s)", len(tables))
    failures = _run_workflow(
        init_hermesflow_wf(config, roi_tables=tables, config_file=str(config_file)), config)
    for failure in failures:
        LOGGER.error(failure)
    if not failures:
        folder = group_file(ex.output_dir, wf.task, atlas, "long").parent
        print(f"Group tables: {folder}")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
