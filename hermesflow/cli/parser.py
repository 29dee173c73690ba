"""Command-line parsers: the BIDS-App form and the ``simulate`` helper."""

from __future__ import annotations

import argparse
from pathlib import Path

from hermesflow import __version__


def _labels(value: str) -> list[str]:
    return [v for v in value.replace(",", " ").split() if v]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermesflow",
        description="Task fMRI of MI-4a/4p and longitudinal mixed models of a stroke "
                    "cell-therapy trial (BIDS App). Other commands: `hermesflow simulate OUT` "
                    "writes a simulated trial; `hermesflow power` runs a power study.",
    )
    parser.add_argument("bids_dir", type=Path, help="the raw BIDS dataset (read only)")
    parser.add_argument("output_dir", type=Path, help="where the derivatives are written")
    parser.add_argument("analysis_level", choices=["participant", "group"])
    parser.add_argument("--version", action="version", version=f"hermesflow {__version__}")

    select = parser.add_argument_group("what to process")
    select.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                        metavar="LABEL", help="subjects (with or without 'sub-')")
    select.add_argument("--session-label", nargs="+", default=[], metavar="LABEL",
                        help="sessions (with or without 'ses-')")
    select.add_argument("--task", help="task label of the passive-wrist runs "
                        "(default passivewrist)")

    model = parser.add_argument_group("selection and model")
    model.add_argument("--output-space", dest="space", metavar="SPACE[:res-N]",
                       help="template space (and resolution) of the preprocessed BOLD, as "
                            "fMRIPrep writes it (default MNI152NLin2009cAsym; e.g. "
                            "MNI152NLin2009cAsym:res-2)")
    model.add_argument("--bids-filter-file", type=Path, metavar="FILE",
                       help="fMRIPrep's JSON filter file; its 'bold' query selects the runs "
                            '(e.g. {"bold": {"run": 1, "echo": null}})')
    model.add_argument("--dummy-scans", type=int, metavar="N",
                       help="volumes to drop at the start of each run (default: those "
                            "fMRIPrep flags as non_steady_state_outlier)")
    model.add_argument("--conditions", nargs="+", metavar="TRIAL_TYPE",
                       help="trial_type values of events.tsv that are modelled (default move)")
    model.add_argument("--contrast", metavar="EXPRESSION",
                       help="contrast of the conditions whose maps are measured, a nilearn "
                            "expression such as 'move' or 'move - rest' (default move)")

    prep = parser.add_argument_group("preprocessing")
    prep.add_argument("--preproc", choices=["existing", "fmriprep", "native"],
                      help="source of preprocessed data: an existing fMRIPrep folder "
                           "(default), fMRIPrep in a container, or hermesflow's antspyx path")
    prep.add_argument("--fmriprep-dir", type=Path,
                      help="fMRIPrep derivatives (default BIDS_DIR/derivatives/fmriprep)")
    prep.add_argument("--container", choices=["docker", "podman", "apptainer", "singularity",
                                              "none"],
                      help="engine that runs fMRIPrep (with --preproc fmriprep)")
    prep.add_argument("--fmriprep-image", help="fMRIPrep image (pinned default)")
    prep.add_argument("--fs-license-file", type=Path, help="FreeSurfer licence file")
    prep.add_argument("--fs-reconall", action="store_true", default=None,
                      help="let fMRIPrep run FreeSurfer recon-all (default --fs-no-reconall)")
    prep.add_argument("--templateflow-home", type=Path,
                      help="TemplateFlow cache to mount into the container")
    prep.add_argument("--fmriprep-arg", action="append", dest="fmriprep_args", metavar="WORD",
                      help="extra word for fMRIPrep's command line (repeatable), "
                           "e.g. --fmriprep-arg=--dummy-scans --fmriprep-arg=2")

    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--atlas", action="append",
                          help="'juelich' (default) or an atlas image with its TSV: a "
                               "TemplateFlow/BIDS-Atlas file (tpl-<T>_atlas-<A>_dseg.nii.gz, "
                               "_probseg), a label image or a 4D probabilistic image; repeat "
                               "for several atlases in one run (the GLMs are fitted once)")
    analysis.add_argument("--rois", nargs="+", metavar="NAME_OR_REGEX",
                          help="regions of the atlas, by name or regular expression (default: "
                               "BA4a BA4p for juelich, every region of an atlas file)")
    analysis.add_argument("--atlas-threshold", type=float,
                          help="probability (percent) above which a voxel is in an ROI (25)")
    analysis.add_argument("--time", choices=["categorical", "linear", "log"],
                          help="time coding in the group models (default categorical)")
    analysis.add_argument("--random-slope", action="store_true", default=None,
                          help="random slope of time per participant (continuous time)")
    analysis.add_argument("--covariates", nargs="+", metavar="COLUMN",
                          help="covariates of the group models (e.g. age baseline)")
    analysis.add_argument("--n-permutations", type=int,
                          help="re-randomisations for the randomisation p-values (default "
                               "2000; 0: none)")
    analysis.add_argument("--randomisation-null", choices=["sharp", "no_interaction"],
                          help="null of the randomisation test: no arm effect at all (sharp, "
                               "default) or no arm x time effect (allows a baseline difference)")

    run = parser.add_argument_group("execution")
    run.add_argument("-w", "--work-dir", type=Path, help="Nipype work dir (cache)")
    run.add_argument("--nprocs", "--nthreads", type=int, help="processes to use")
    run.add_argument("--mem", "--mem-gb", dest="mem_gb", type=float, help="memory (GB)")
    run.add_argument("--skip-bids-validation", action="store_true", default=None,
                     help="do not run bids-validator-deno on the input first")
    run.add_argument("--config", type=Path, help="TOML configuration (flags override it)")
    run.add_argument("-v", "--verbose", action="count", default=0)
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print warnings and errors only (no progress lines)")
    return parser


def build_simulate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermesflow simulate",
        description="Write a simulated trial: raw BIDS, fMRIPrep-layout derivatives and the "
                    "ground truth (derivatives/simulation).",
    )
    parser.add_argument("out", type=Path, help="new folder for the dataset")
    parser.add_argument("--design", choices=["isis-hermes"],
                        help="a published trial's preset (participants, visits, adherence, "
                             "adverse-event rates, effect); the flags below override it")
    # Defaults of None: the design's value, else the simulator's (12, 1,6,24, 0.5, 0.9).
    parser.add_argument("--participants", type=int, help="number randomised (default 12)")
    parser.add_argument("--sessions", type=lambda s: [int(v) for v in _labels(s)],
                        help="months since stroke, e.g. 1,6,24 (the default)")
    parser.add_argument("--effect-size", type=float,
                        help="treated-minus-control gain in ipsilesional %%-signal change by "
                             "the last session (and proportional clinical gains; default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--voxel-size", type=float, default=4.0, help="mm (isotropic)")
    parser.add_argument("--treated-fraction", type=float,
                        help="share of patients randomised to cells who received them "
                             "(default 0.9)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="probability that a participant misses the later sessions")
    parser.add_argument("--tr", type=float, metavar="SECONDS",
                        help="repetition time of the BOLD runs (default 2); the number of "
                             "volumes follows the block design (six 20 s move/rest pairs)")
    parser.add_argument("--nprocs", type=int, default=1,
                        help="participants simulated side by side (the data do not depend "
                             "on it; default 1)")
    return parser
