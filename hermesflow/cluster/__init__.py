"""SLURM: participant array, dependent group job, sacct status, resubmission.

One module per concern, in the order a run goes through them:

* :mod:`.records` -- :class:`SlurmOptions` and the job record (``jobs.json``);
* :mod:`.scripts` -- the participant array and group batch scripts;
* :mod:`.commands` -- argv lists for sbatch/sacct/scontrol and :func:`~.commands.run_command`
  (the one place that runs them, and the one place tests patch);
* :mod:`.submission` -- :func:`submit` and :func:`resume`, and the files they write;
* :mod:`.states` -- :func:`status`: sacct, then scontrol, then the tasks' exit files;
* :mod:`.errors` -- one-line errors naming the command or file and the fix.

Nipype's own ``SLURM``/``SLURMGraph`` plugins are the alternative (one job per node);
:func:`nipype_plugin_settings` (:mod:`.nipype_plugins`) returns their settings.
"""

from hermesflow.cluster.errors import (
    ControllerUnreachableError,
    JobRecordError,
    SlurmError,
    SlurmNotFoundError,
)
from hermesflow.cluster.nipype_plugins import nipype_plugin_settings
from hermesflow.cluster.records import JobRecord, SlurmOptions
from hermesflow.cluster.states import StatusReport, status
from hermesflow.cluster.submission import resume, submit

__all__ = [
    "ControllerUnreachableError",
    "JobRecord",
    "JobRecordError",
    "SlurmError",
    "SlurmNotFoundError",
    "SlurmOptions",
    "StatusReport",
    "nipype_plugin_settings",
    "resume",
    "status",
    "submit",
]
