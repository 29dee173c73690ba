"""Container engines and fMRIPrep command lines, as argv lists (never shell strings)."""

from hermesflow.containers.engines import (
    ENGINES,
    ContainerEngine,
    ContainerError,
    EngineNotFoundError,
    ImageNotFoundError,
    Mount,
    get_engine,
)
from hermesflow.containers.fmriprep import (
    DEFAULT_FMRIPREP_IMAGE,
    FMRIPREP_VERSION,
    FMRIPrepFailedError,
    FMRIPrepOptions,
    Invocation,
    default_image,
    fmriprep_invocation,
    fmriprep_provenance,
    resolve_license,
    run_invocation,
)
from hermesflow.containers.labels import check_image, check_label

__all__ = [
    "DEFAULT_FMRIPREP_IMAGE",
    "ENGINES",
    "FMRIPREP_VERSION",
    "ContainerEngine",
    "ContainerError",
    "EngineNotFoundError",
    "FMRIPrepFailedError",
    "FMRIPrepOptions",
    "ImageNotFoundError",
    "Invocation",
    "Mount",
    "check_image",
    "check_label",
    "default_image",
    "fmriprep_invocation",
    "fmriprep_provenance",
    "get_engine",
    "resolve_license",
    "run_invocation",
]
