"""The workers' fork server: workers fork from it, with its imports and preparation done."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from hermesflow.cli import workers

PREPARED = {"atlas": None}


def _prepare() -> None:
    PREPARED["atlas"] = "prepared in the server"


# A module of the test's own, imported by the server only.
SERVER_ONLY = "hermesflow_worker_server_probe"


def _what_a_worker_sees() -> tuple[int, bool, str | None]:
    return os.getppid(), SERVER_ONLY in sys.modules, PREPARED["atlas"]


@pytest.mark.skipif(workers._server_internals() is None,
                    reason="multiprocessing internals of another Python: workers fork as before")
def test_workers_fork_from_the_server_with_its_imports_and_preparation(monkeypatch, tmp_path):
    (tmp_path / f"{SERVER_ONLY}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert SERVER_ONLY not in sys.modules
    monkeypatch.setattr(workers, "WORKER_MODULES", (*workers.WORKER_MODULES, SERVER_ONLY))
    with workers.worker_server(True, prepare=_prepare):
        from multiprocessing import forkserver

        context = workers.worker_context()
        assert context == "forkserver", f"not started (server pid {forkserver._forkserver._forkserver_pid})"

        server = forkserver._forkserver._forkserver_pid
        with ProcessPoolExecutor(1, mp_context=get_context(context)) as pool:
            parent, imported, prepared = pool.submit(_what_a_worker_sees).result()
    assert parent == server != os.getpid()
    assert imported, "the worker starts with the server's imports"
    assert SERVER_ONLY not in sys.modules, "imported in the server, not here"
    assert prepared == "prepared in the server"
    assert PREPARED["atlas"] is None, "the preparation ran in the server, not here"
    assert workers.worker_context() is None
    with pytest.raises(ChildProcessError):
        os.waitpid(server, 0)  # reaped by stop_worker_server


def test_no_server_when_not_wanted():
    with workers.worker_server(False, prepare=_prepare):
        assert workers.worker_context() is None


def _worker_logging() -> tuple[int, int]:
    import logging

    from hermesflow.roi.atlases import _prepared

    return logging.getLogger("nipype.workflow").level, _prepared.cache_info().currsize


@pytest.mark.skipif(workers._server_internals() is None,
                    reason="multiprocessing internals of another Python: workers fork as before")
def test_a_participant_runs_workers_get_quiet_nipype_and_the_atlas_from_the_server(tmp_path):
    """The server forks before the main process sets Nipype's logging up: it sets it up
    itself (``setup``), so a worker's nodes log as the main process's would, and it prepares
    the run's atlas."""
    import functools
    import logging

    from hermesflow.cli.run import _setup_nipype_logging
    from hermesflow.config import Config

    config = Config()
    config.execution.plugin, config.execution.nprocs = "MultiProc", 2
    config.execution.work_dir = str(tmp_path / "work")
    nipype_log = logging.getLogger("nipype.workflow")
    before = nipype_log.level
    nipype_log.setLevel(logging.INFO)  # as the server finds it when it forks
    try:
        with workers.participant_workers(config,
                                         setup=functools.partial(_setup_nipype_logging, 0)):
            context = workers.worker_context()
            assert context == "forkserver"
            with ProcessPoolExecutor(1, mp_context=get_context(context)) as pool:
                level, prepared = pool.submit(_worker_logging).result()
        assert nipype_log.level == logging.INFO, "set up in the server, not here"
    finally:
        nipype_log.setLevel(before)
    assert level == logging.CRITICAL, "Nipype quiet in the workers unless -v"
    assert prepared >= 1, "the atlas was prepared in the server"
    # A work dir that holds a graph (an atlas re-run) starts no server.
    (tmp_path / "work" / "hermesflow_participant_wf").mkdir(parents=True)
    with workers.participant_workers(config):
        assert workers.worker_context() is None
