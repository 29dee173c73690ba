"""Nipype's own ``SLURM`` / ``SLURMGraph`` plugins: the alternative to :mod:`.submission`.

One SLURM job per Nipype node (``SLURM``) or the whole graph submitted at once with
dependencies (``SLURMGraph``).  Neither tells a TIMEOUT or OUT_OF_MEMORY from a crash (every
failure reads as "result file missing") and neither resubmits; prefer one array task per
participant (``hermesflow cluster submit``).
"""

from __future__ import annotations

from hermesflow.cluster.records import SlurmOptions
from hermesflow.errors import HermesflowError


def nipype_plugin_settings(options: SlurmOptions, plugin: str = "SLURMGraph") -> tuple[str, dict]:
    """``(plugin, plugin_args)`` for Nipype's ``SLURM`` or ``SLURMGraph`` plugin.

    Parameters
    ----------
    options
        Resources of each job, passed as ``sbatch_args``.
    plugin
        ``"SLURMGraph"`` (default) or ``"SLURM"``.

    Returns
    -------
    tuple of (str, dict)
        The plugin name and its ``plugin_args`` for ``Workflow.run``.
    """
    if plugin not in ("SLURM", "SLURMGraph"):
        raise HermesflowError(f"Nipype plugin {plugin!r}: not a SLURM plugin -- "
                              "use 'SLURM' or 'SLURMGraph'")
    args: dict = {"sbatch_args": " ".join(options.sbatch_flags())}
    if plugin == "SLURMGraph":
        args["dont_resubmit_completed_jobs"] = True
    else:
        args["max_tries"] = 2
        args["retry_timeout"] = 2
    return plugin, args
