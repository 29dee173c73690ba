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
