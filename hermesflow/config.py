"""One typed configuration for a run, loaded from flags and a TOML file, saved with the outputs.

Sections follow fMRIPrep's ``config`` module: ``execution`` (where things are, which
participants), ``workflow`` (what is computed per session), ``group`` (the trial's models),
``containers`` (how fMRIPrep runs) and ``nipype`` (the engine).  A run writes the whole
configuration to ``OUTPUT_DIR/hermesflow_config.toml``; passing that file back with
``--config`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from hermesflow.errors import ConfigError

CLINICAL_SCORES = ("barthel", "nihss", "nihss_motor", "mrs", "fm_motor")


@dataclass
class ExecutionConfig:
    bids_dir: str = ""
    output_dir: str = ""
    analysis_level: str = "participant"
    work_dir: str = ""
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    nprocs: int = 2
    mem_gb: float = 8.0
    plugin: str = "MultiProc"
    skip_bids_validation: bool = False
    verbose: int = 0


@dataclass
class WorkflowConfig:
    task: str = "passivewrist"
    preproc: str = "existing"
    fmriprep_dir: str = ""
    # fMRIPrep's --output-spaces form: NAME or NAME:res-N (file names keep space-NAME).
    space: str = "MNI152NLin2009cAsym"
    # fMRIPrep's --bids-filter-file (a path; its "bold" query selects the runs).
    bids_filter_file: str = ""
    # Volumes removed at the start of every run; -1: those fMRIPrep flagged as
    # non_steady_state_outlier* in the confounds table (as nilearn's load_confounds does).
    dummy_scans: int = -1
    # --atlas: a source's name or a path; several (a list) are processed in one run.
    atlas: str | list[str] = "juelich"
    atlas_threshold: float = 25.0
    # --rois: region names or regular expressions; empty: the atlas's default regions
    # (Juelich: BA4a and BA4p), all of a file atlas's regions.
    rois: list[str] = field(default_factory=list)
    confounds: list[str] = field(
        default_factory=lambda: [
            "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
            "framewise_displacement",
        ]
    )
    hrf_model: str = "glover"
    high_pass: float = 0.01
    noise_model: str = "ar1"
    smoothing_fwhm: float = 0.0
    # trial_type values of events.tsv that are modelled (each must be present in every run).
    conditions: list[str] = field(default_factory=lambda: ["move"])
    # The contrast whose maps are written and measured: a nilearn expression of conditions.
    contrast: str = "move"
    active_z: float = 3.1

    @property
    def atlases(self) -> list[str]:
        """Every atlas of the run (``atlas`` is one name or path, or a list of them)."""
        return [self.atlas] if isinstance(self.atlas, str) else list(self.atlas)


@dataclass
class GroupConfig:
    outcomes: list[str] = field(default_factory=list)
    clinical_scores: list[str] = field(default_factory=lambda: list(CLINICAL_SCORES))
    time: str = "categorical"
    covariates: list[str] = field(default_factory=list)
    random_slope: bool = False
    reml: bool = True
    analysis_sets: list[str] = field(default_factory=lambda: ["itt", "as_treated"])
    n_permutations: int = 2000
    seed: int = 20261125
    strata: list[str] = field(default_factory=list)
    # "sharp": no arm effect at all (exact under re-randomisation); "no_interaction": arm x time
    # only, exact even if the arms differ at baseline (participant fixed effects).
    randomisation_null: str = "sharp"
    # Enumerate every relabelling when there are fewer than n_permutations (small trials).
    randomisation_exact: bool = True
    # The two values of participants.tsv's arm column; any other value is an input error.
    control_arm: str = "control"
    treatment_arm: str = "msc"
    alpha: float = 0.05
    # Degrees of freedom of the Wald tests: "satterthwaite" (t and F, as lmerTest) or
    # "asymptotic" (z and chi-square).
    ddf: str = "satterthwaite"
    max_iter: int = 0  # 0: statsmodels' default
    # The pre-specified primary family (each outcome's joint arm x time test), adjusted for
    # multiplicity within each analysis set ("holm" or "hochberg"); the rest is secondary.
    primary: list[str] = field(default_factory=lambda: [
        "nihss_motor", "fm_motor", "mi4a_ipsi_psc", "mi4p_ipsi_psc"])
    primary_analysis_set: str = "as_treated"
    multiplicity: str = "holm"
    # Outcomes on an ordinal scale, flagged as modelled as Gaussian.
    ordinal_outcomes: list[str] = field(default_factory=lambda: ["mrs"])


@dataclass
class QCConfig:
    """Motion limits of a session (framewise displacement, mm) and whether failures count."""

    fd_threshold: float = 0.5
    max_mean_fd: float = 0.5
    max_fraction_above: float = 0.2
    # true: sessions over the limits are left out of the group models (and listed).
    exclude: bool = False


@dataclass
class ContainersConfig:
    engine: str = "none"
    fmriprep_image: str = ""
    fs_license_file: str = ""
    templateflow_home: str = ""
    fs_reconall: bool = False
    fmriprep_args: list[str] = field(default_factory=list)


@dataclass
class NipypeConfig:
    poll_sleep_duration: float = 0.1
    crashfile_format: str = "txt"
    stop_on_first_crash: bool = False
    # For testing resumption: these nodes raise when they run (node names, e.g. "t1w2mni";
    # honoured by the native preprocessing steps).
    fail_nodes: list[str] = field(default_factory=list)


@dataclass
class Config:
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    qc: QCConfig = field(default_factory=QCConfig)
    containers: ContainersConfig = field(default_factory=ContainersConfig)
    nipype: NipypeConfig = field(default_factory=NipypeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any], *, source: str = "options") -> None:
        """Overwrite fields from a nested ``{section: {key: value}}`` mapping."""
        for section_name, section_values in values.items():
            if section_name not in _SECTIONS:
                raise ConfigError(
                    f"{source}: unknown section [{section_name}] -- "
                    f"use one of {', '.join(_SECTIONS)}"
                )
            section = getattr(self, section_name)
            known = {f.name for f in fields(section)}
            for key, value in section_values.items():
                if key not in known:
                    raise ConfigError(
                        f"{source}: unknown key {key!r} in [{section_name}] -- "
                        f"use one of {', '.join(sorted(known))}"
                    )
                _check_value(section, section_name, key, value, source)
                setattr(section, key, value)

    def save(self, path: str | Path) -> Path:
        from hermesflow.derivatives.writing import write_text

        return write_text(path, tomli_w.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found -- check the --config path") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err}) -- fix the syntax") from None
        config = cls()
        config.update(values, source=str(path))
        return config


_SECTIONS = tuple(f.name for f in fields(Config))

# The keys whose values are names from a fixed set (a list key: each of its items).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("execution", "analysis_level"): ("participant", "group"),
    ("workflow", "preproc"): ("existing", "fmriprep", "native"),
    ("workflow", "noise_model"): ("ar1", "ols"),
    ("group", "time"): ("categorical", "linear", "log"),
    ("group", "ddf"): ("satterthwaite", "asymptotic"),
    ("group", "randomisation_null"): ("sharp", "no_interaction"),
    ("group", "multiplicity"): ("holm", "hochberg"),
    ("group", "analysis_sets"): ("itt", "as_treated"),
    ("group", "primary_analysis_set"): ("itt", "as_treated"),
    ("containers", "engine"): ("none", "docker", "podman", "apptainer", "singularity"),
    ("nipype", "crashfile_format"): ("txt", "pklz"),
}
_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number",
               "bool": "true or false", "list[str]": "a list of strings"}


def _type_ok(expected: str, value: Any) -> bool:
    # TOML gives bool, int, float, str, list: bool is an int in Python, never a number here.
    if "|" in expected:
        return any(_type_ok(part.strip(), value) for part in expected.split("|"))
    if expected == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected == "int":
        return isinstance(value, int)
    if expected == "float":
        return isinstance(value, (int, float))
    if expected == "str":
        return isinstance(value, str)
    if expected == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def _check_value(section: Any, section_name: str, key: str, value: Any, source: str) -> None:
    """Raise a one-line ConfigError for a value of the wrong type or outside its choices."""
    expected = str(next(f.type for f in fields(section) if f.name == key))
    if not _type_ok(expected, value):
        raise ConfigError(f"{source}: [{section_name}] {key} = {value!r} is not "
                          f"{_TYPE_NAMES.get(expected, expected)} -- write {key} as "
                          f"{_TYPE_NAMES.get(expected, expected)}")
    choices = CHOICES.get((section_name, key))
    if choices is None:
        return
    bad = [v for v in (value if isinstance(value, list) else [value]) if v not in choices]
    if bad:
        raise ConfigError(f"{source}: [{section_name}] {key} = {value!r}: unknown value "
                          f"{bad[0]!r} -- use one of {', '.join(choices)}")
