"""SLURM: participant array, dependent group job, sacct status, resubmission (see ``slurm``).

Nipype's own ``SLURM``/``SLURMGraph`` plugins are the alternative (one job per node);
:func:`nipype_plugin_settings` returns their settings.
"""

from hermesflow.cluster.slurm import (
    ControllerUnreachableError,
    JobRecord,
    SlurmError,
    SlurmNotFoundError,
    SlurmOptions,
    StatusReport,
    nipype_plugin_settings,
    resume,
    status,
    submit,
)

__all__ = [
    "ControllerUnreachableError",
    "JobRecord",
    "SlurmError",
    "SlurmNotFoundError",
    "SlurmOptions",
    "StatusReport",
    "nipype_plugin_settings",
    "resume",
    "status",
    "submit",
]
