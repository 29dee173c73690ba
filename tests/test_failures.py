"""Failures inside a graph: one line per node, from Nipype's own node objects (no crash parsing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from hermesflow.cli.failures import NodeFailures, exception_message, iterable_labels


def _measure(subject: str, session: str, folder: str) -> str:
    """Succeeds except for sub-02 ses-06, which has a bad input (an InputError) ..."""
    from pathlib import Path

    from hermesflow.errors import InputError

    path = Path(folder) / f"sub-{subject}_ses-{session}_bold.nii.gz"
    if (subject, session) == ("02", "06"):
        raise InputError(path, "cannot be read as NIfTI", "rerun the preprocessing")
    if (subject, session) == ("03", "01"):
        # ... and for sub-03 ses-01, which meets a bug (any other exception).
        return str(1 / 0)
    return str(path)


def _graph(base_dir: Path, crash_dir: Path) -> pe.Workflow:
    workflow = pe.Workflow(name="trial_wf", base_dir=str(base_dir))
    subjects = pe.Node(niu.IdentityInterface(fields=["subject"]), name="subjectsource")
    subjects.iterables = ("subject", ["01", "02", "03"])
    sessions = pe.Node(niu.IdentityInterface(fields=["subject", "session"]),
                       name="sessionsource")
    sessions.itersource = ("subjectsource", "subject")
    sessions.iterables = [("session", {"01": ["01", "06"], "02": ["01", "06"],
                                       "03": ["01"]})]
    measure = pe.Node(niu.Function(input_names=["subject", "session", "folder"],
                                   output_names=["out"], function=_measure), name="measure")
    measure.inputs.folder = "/data/fmriprep"
    workflow.connect([
        (subjects, sessions, [("subject", "subject")]),
        (sessions, measure, [("subject", "subject"), ("session", "session")]),
    ])
    workflow.config["execution"].update({
        "crashdump_dir": str(crash_dir), "crashfile_format": "txt",
        "poll_sleep_duration": 0.01, "create_report": False,
    })
    return workflow


@pytest.mark.parametrize("plugin", ["Linear", "MultiProc"])
def test_each_failed_session_is_one_line(tmp_path, plugin):
    crash_dir = tmp_path / "logs"
    failures = NodeFailures()
    args = {"status_callback": failures}
    if plugin == "MultiProc":
        args["n_procs"] = 2
    with pytest.raises(RuntimeError):
        _graph(tmp_path / "work", crash_dir).run(plugin=plugin, plugin_args=args)
    crashes = sorted(crash_dir.glob("crash-*"))
    assert len(crashes) == 2
    crash_02 = next(c for c in crashes if "/_subject_02/" in c.read_text())
    crash_03 = next(c for c in crashes if c != crash_02)
    assert failures.summaries(crash_dir) == [
        "sub-02 ses-06 (measure): /data/fmriprep/sub-02_ses-06_bold.nii.gz: cannot be read as "
        f"NIfTI -- rerun the preprocessing (details: {crash_02})",
        f"sub-03 ses-01 (measure): ZeroDivisionError: division by zero (details: {crash_03})",
    ]
    assert [iterable_labels(n) for n in sorted(failures.nodes, key=lambda n: n._id)] in (
        [{"subject": "02", "session": "06"}, {"subject": "03", "session": "01"}],
        [{"subject": "03", "session": "01"}, {"subject": "02", "session": "06"}],
    )


def _to_int(x):
    return int(x)


def test_a_node_without_iterables_is_named_alone(tmp_path):
    workflow = pe.Workflow(name="group_wf", base_dir=str(tmp_path / "work"))
    node = pe.Node(niu.Function(input_names=["x"], output_names=["y"],
                                function=_to_int), name="group_models")
    node.inputs.x = "seven"
    workflow.add_nodes([node])
    workflow.config["execution"].update({"crashdump_dir": str(tmp_path / "logs"),
                                         "crashfile_format": "txt"})
    failures = NodeFailures()
    with pytest.raises(RuntimeError):
        workflow.run(plugin="Linear", plugin_args={"status_callback": failures})
    (crash,) = (tmp_path / "logs").glob("crash-*")
    assert failures.summaries(tmp_path / "logs") == [
        f"group_models: ValueError: invalid literal for int() with base 10: 'seven' "
        f"(details: {crash})"]


def test_exception_message_takes_the_last_exception():
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "a.py", line 3, in f\n'
        "    x: int = read()\n"
        "OSError: [Errno 2] No such file\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        "\thermesflow.errors.InputError: /in/bold.nii.gz: empty -- rerun it\n"
    )
    assert exception_message(traceback) == "/in/bold.nii.gz: empty -- rerun it"
    assert exception_message("RuntimeError: boom") == "RuntimeError: boom"
    assert exception_message("nothing to see") == "see the crash file"
