"""One line per node that failed inside the graph, from Nipype's own objects.

:class:`NodeFailures` is given to the plugin as ``status_callback``; Nipype calls it with
``(node, "exception")`` for every node that fails.  After the run, each failed node gives

    sub-X ses-Y (node): message (details: crash file)

where the labels are the node's iterables (``node.parameterization``), the message is the last
exception of the node's traceback (the result file's ``runtime.traceback``, else the one Nipype
kept on the node) and the crash file is the one Nipype wrote for the node's ``_id``.  A
:class:`~hermesflow.errors.HermesflowError` message is shown as it is: it already names the
file and the fix.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from hermesflow.errors import HermesflowError

# Iterable fields of the graph -> BIDS entity prefix, in the order they are shown.
LABELS = {"subject": "sub", "session": "ses"}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): (.*)$")


class NodeFailures:
    """Nipype ``status_callback`` that remembers the nodes that failed."""

    def __init__(self) -> None:
        self.nodes: list = []

    def __call__(self, node, status: str) -> None:
        if status == "exception":
            self.nodes.append(node)

    def summaries(self, crash_dir: str | Path) -> list[str]:
        """One line per failed node, sorted (subject, session, node)."""
        return sorted(failure_line(node, crash_file(node, crash_dir)) for node in self.nodes)


def iterable_labels(node) -> dict[str, str]:
    """``{"subject": "02", "session": "06"}`` from the node's parameterization.

    Nipype records each iterable the node descends from as ``_<field>_<value>``.
    """
    labels = {}
    for entry in getattr(node, "parameterization", None) or []:
        field, _, value = str(entry).removeprefix("_").partition("_")
        if field in LABELS and value:
            labels[field] = value
    return labels


def node_traceback(node) -> str:
    """The traceback of the node's failure: the interface's own, else the one Nipype kept."""
    try:
        runtime = node.result.runtime
    except Exception:  # noqa: BLE001 - no result file: the node failed before its interface ran
        runtime = None
    text = getattr(runtime, "traceback", None)
    if text:
        return str(text)
    kept = getattr(node, "_traceback", None) or ""
    return kept if isinstance(kept, str) else "".join(kept)


def exception_message(traceback: str) -> str:
    """The last exception of a formatted traceback, as one line.

    ``HermesflowError`` subclasses give their message alone; other exceptions keep their
    type name (``ValueError: ...``).
    """
    found = None
    for line in traceback.splitlines():
        match = _EXCEPTION_LINE.match(line.strip())
        if match and _exception_class(match.group(1)) is not None:
            found = match
    if found is None:
        return "see the crash file"
    qualified, message = found.groups()
    cls = _exception_class(qualified)
    if isinstance(cls, type) and issubclass(cls, HermesflowError):
        return message
    return f"{qualified.rsplit('.', 1)[-1]}: {message}"


def _exception_class(qualified: str) -> type | None:
    """The exception class a traceback names (``module.Class`` or a builtin), if it is one.

    A class that cannot be imported here (a test's, a worker's) still counts when its name
    reads as an exception's; it is then returned as :class:`Exception`.
    """
    module, _, name = qualified.rpartition(".")
    try:
        owner = importlib.import_module(module or "builtins")
    except ImportError:
        owner = None
    cls = getattr(owner, name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return cls
    if re.search(r"(Error|Exception|Exit|Interrupt|Failure)$", name):
        return Exception
    return None


def crash_file(node, crash_dir: str | Path) -> Path | None:
    """The newest crash file Nipype wrote for ``node`` (named after its ``_id``)."""
    node_id = getattr(node, "_id", node.name)
    found = [p for p in Path(crash_dir).glob("crash-*") if f"-{node_id}-" in p.name]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def failure_line(node, crash: Path | None) -> str:
    """``sub-X ses-Y (node): message (details: crash file)``."""
    labels = iterable_labels(node)
    where = " ".join(f"{prefix}-{labels[field]}" for field, prefix in LABELS.items()
                     if field in labels)
    where = f"{where} ({node.name})" if where else node.name
    details = f" (details: {crash})" if crash else ""
    return f"{where}: {exception_message(node_traceback(node))}{details}"
