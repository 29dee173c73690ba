"""SLURM submission without a cluster: argv, batch scripts, sacct/scontrol parsing, resume.

Fake ``sbatch``/``sacct``/``scontrol`` scripts on PATH record their argv and print canned
answers, so submission and resubmission are checked end to end without slurmctld.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from hermesflow.cli.cluster import format_report, report_exit_status
from hermesflow.cli.run import main
from hermesflow.cluster import commands
from hermesflow.cluster.commands import format_indices, parse_indices, sacct_argv, sbatch_argv
from hermesflow.cluster.errors import ControllerUnreachableError, SlurmNotFoundError
from hermesflow.cluster.nipype_plugins import nipype_plugin_settings
from hermesflow.cluster.records import JobRecord, SlurmOptions
from hermesflow.cluster.states import (
    TaskStatus,
    parse_sacct,
    parse_scontrol,
    resubmit_indices,
    status,
)

SACCT = """\
7_0|COMPLETED|0:0|00:01:02
7_1|FAILED|1:0|00:00:09
7_2|TIMEOUT|0:0|00:10:00
7_3|OUT_OF_MEMORY|0:125|00:00:30
7_4|NODE_FAIL|0:0|00:00:01
7_5|PREEMPTED|0:0|00:02:00
7_6|CANCELLED by 0|0:0|00:00:00
7_[7-8]|PENDING|0:0|00:00:00
7_9|RUNNING|0:0|00:00:12
7_9.batch|RUNNING|0:0|00:00:12
8|PENDING|0:0|00:00:00
"""


def test_sbatch_argv_is_a_list_with_array_and_dependency():
    assert sbatch_argv("/o/p.sbatch", array="0-2") == [
        "sbatch", "--parsable", "--array=0-2", "/o/p.sbatch"]
    assert sbatch_argv("/o/g.sbatch", after="42") == [
        "sbatch", "--parsable", "--dependency=afterany:42", "/o/g.sbatch"]
    argv = sacct_argv(["7", "8"])
    assert argv[:2] == ["sacct", "--jobs=7,8"] and "--parsable2" in argv


def test_sbatch_flags_from_options():
    options = SlurmOptions(partition="debug", time="00:30:00", mem_gb=2.5, cpus=4,
                           account="stroke")
    assert options.sbatch_flags() == ["--cpus-per-task=4", "--mem=2560M", "--time=00:30:00",
                                      "--partition=debug", "--account=stroke"]
    assert SlurmOptions(time=None).sbatch_flags() == ["--cpus-per-task=1", "--mem=4096M"]


@pytest.mark.parametrize("indices, text", [([0, 1, 2], "0-2"), ([5, 0, 2, 3], "0,2-3,5"),
                                           ([4], "4")])
def test_array_indices_round_trip(indices, text):
    assert format_indices(indices) == text
    assert parse_indices(text) == sorted(indices)
    assert parse_indices(f"[{text}%2]") == sorted(indices)


def test_parse_sacct_tells_the_final_states_apart():
    states = parse_sacct(SACCT)
    got = {key: (s.state, s.exit_code) for key, s in states.items()}
    assert got["7_0"] == ("COMPLETED", "0:0")
    assert got["7_1"] == ("FAILED", "1:0")
    assert got["7_2"][0] == "TIMEOUT"
    assert got["7_3"] == ("OUT_OF_MEMORY", "0:125")
    assert got["7_4"][0] == "NODE_FAIL"
    assert got["7_5"][0] == "PREEMPTED"
    assert got["7_6"][0] == "CANCELLED"
    assert got["7_7"][0] == got["7_8"][0] == "PENDING"
    assert got["7_9"][0] == "RUNNING"
    assert got["8"][0] == "PENDING"
    assert "7_9.batch" not in states and states["7_0"].elapsed == "00:01:02"


def test_parse_scontrol_oneliner():
    text = (
        "JobId=12 ArrayJobId=10 ArrayTaskId=1 JobName=hermesflow-participant JobState=FAILED "
        "Reason=NonZeroExitCode ExitCode=1:0 RunTime=00:00:09 Command=/o/p.sbatch\n"
        "JobId=10 ArrayJobId=10 ArrayTaskId=2-3 JobState=PENDING ExitCode=0:0 RunTime=00:00:00\n"
        "JobId=13 JobName=hermesflow-group JobState=OUT_OF_MEMORY ExitCode=0:125 "
        "RunTime=00:01:00\n")
    states = parse_scontrol(text)
    assert (states["10_1"].state, states["10_1"].exit_code) == ("FAILED", "1:0")
    assert states["10_2"].state == states["10_3"].state == "PENDING"
    assert states["13"].state == "OUT_OF_MEMORY" and states["13"].elapsed == "00:01:00"


def _task(index: int, state: str) -> TaskStatus:
    return TaskStatus(index, f"{index + 1:02d}", "7", state, "", "", "sacct")


def test_resume_selects_only_failed_and_cut_short_tasks():
    states = ["COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
              "CANCELLED", "COMPLETED"]
    assert resubmit_indices([_task(i, s) for i, s in enumerate(states)]) == [1, 2, 3, 4, 5, 6]


def test_nipype_plugin_settings():
    options = SlurmOptions(partition="debug", cpus=2, mem_gb=1)
    plugin, args = nipype_plugin_settings(options)
    assert plugin == "SLURMGraph"
    assert args["sbatch_args"] == "--cpus-per-task=2 --mem=1024M --time=02:00:00 --partition=debug"
    assert nipype_plugin_settings(options, "SLURM")[0] == "SLURM"


# -- fake SLURM commands ----------------------------------------------------------------------
def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {bin_dir}/calls.log\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Job ids 7, 8, 9, ... in the order of the sbatch calls.
    _fake(bin_dir, "sbatch", f"n=$(cat {bin_dir}/n 2>/dev/null || echo 7); "
                             f"echo $((n + 1)) > {bin_dir}/n; echo \"$n;hermesflow\"")
    _fake(bin_dir, "sacct", f"cat {bin_dir}/sacct.txt")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return bin_dir


def _calls(bin_dir: Path) -> list[str]:
    return (bin_dir / "calls.log").read_text().splitlines()


def _submit_trial(tmp_path: Path, labels=("01", "02"), *flags: str) -> tuple[Path, str, str]:
    """Submit through the CLI; return OUT and the participant and group job names."""
    bids, out = tmp_path / "bids", tmp_path / "out"
    for label in labels:
        (bids / f"sub-{label}").mkdir(parents=True)
    assert main(["cluster", "submit", str(bids), str(out), *flags]) == 0
    record = JobRecord.load(out)
    return out, record.job_name("participant"), record.job_name("group")


def test_submit_status_resume_with_fake_commands(fake_slurm, tmp_path):
    bids = tmp_path / "bids"
    out, part, grp = _submit_trial(tmp_path, ("01", "02", "03"), "--cpus", "2", "--mem-gb", "3",
                                   "--partition", "debug", "-w", str(tmp_path / "work"),
                                   "--", "--skip-bids-validation")
    assert _calls(fake_slurm) == [
        f"sbatch --parsable --array=0-2 {out}/logs/slurm/participant.sbatch",
        f"sbatch --parsable --dependency=afterany:7 {out}/logs/slurm/group.sbatch"]
    folder = out / "logs" / "slurm"
    assert (folder / "participants.txt").read_text() == "01\n02\n03\n"
    script = (folder / "participant.sbatch").read_text()
    assert f"#SBATCH --job-name={part}\n" in script and part.startswith("hermesflow-participant-")
    assert "#SBATCH --cpus-per-task=2\n#SBATCH --mem=3072M" in script
    assert "#SBATCH --partition=debug" in script and "--account" not in script
    assert f"{sys.executable} -m hermesflow.cli.run {bids} {out} participant --nprocs 2" in script
    assert '--skip-bids-validation --participant-label "$label" -w' in script
    assert "SLURM_ARRAY_TASK_ID + 1" in script
    group = (folder / "group.sbatch").read_text()
    assert f"{out} group" in group and "--participant-label 01 02 03" in group
    assert f"#SBATCH --job-name={grp}\n" in group
    record = json.loads((folder / "jobs.json").read_text())
    assert record["participants"] == ["01", "02", "03"]
    assert record["submissions"][0]["array_job"] == "7"
    assert record["submissions"][0]["group_job"] == "8"

    (fake_slurm / "sacct.txt").write_text(
        f"7_0|COMPLETED|0:0|00:00:10|{part}\n7_1|OUT_OF_MEMORY|0:125|00:00:05|{part}\n"
        f"7_2|COMPLETED|0:0|00:00:11|{part}\n8|COMPLETED|0:0|00:00:04|{grp}\n")
    report = status(out)
    assert [t.state for t in report.tasks] == ["COMPLETED", "OUT_OF_MEMORY", "COMPLETED"]
    assert report_exit_status(report) == 1
    assert "OUT_OF_MEMORY" in format_report(report)

    assert main(["cluster", "resume", str(out)]) == 0
    assert _calls(fake_slurm)[-2:] == [
        f"sbatch --parsable --array=1 {out}/logs/slurm/participant.sbatch",
        f"sbatch --parsable --dependency=afterany:9 {out}/logs/slurm/group.sbatch"]
    # The resubmitted task now counts, the others keep their first run.
    (fake_slurm / "sacct.txt").write_text(
        f"7_0|COMPLETED|0:0|00:00:10|{part}\n7_2|COMPLETED|0:0|00:00:11|{part}\n"
        f"9_1|RUNNING|0:0|00:00:03|{part}\n10|PENDING|0:0|00:00:00|{grp}\n")
    report = status(out)
    assert [(t.array_job, t.state) for t in report.tasks] == [
        ("7", "COMPLETED"), ("9", "RUNNING"), ("7", "COMPLETED")]
    assert report_exit_status(report) == 3
    assert main(["cluster", "resume", str(out)]) == 2  # still running: refused
    assert len(JobRecord.load(out).submissions) == 2


NO_ACCOUNTING = "echo 'Slurm accounting storage is disabled' >&2; exit 1"


def test_status_without_accounting_falls_back_to_scontrol(fake_slurm, tmp_path):
    _fake(fake_slurm, "sacct", NO_ACCOUNTING)
    out, part, grp = _submit_trial(tmp_path)
    _fake(fake_slurm, "scontrol", f"""case "$*" in
*" 7") echo "JobId=7 ArrayJobId=7 ArrayTaskId=0 JobName={part} JobState=TIMEOUT ExitCode=0:15 \
RunTime=00:10:00"
   echo "JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName={part} JobState=NODE_FAIL ExitCode=0:0";;
*) echo "JobId=8 JobName={grp} JobState=PREEMPTED ExitCode=0:0 RunTime=00:00:02";;
esac""")
    report = status(out)
    assert [(t.state, t.source) for t in report.tasks] == [("TIMEOUT", "scontrol"),
                                                           ("NODE_FAIL", "scontrol")]
    assert report.tasks[0].elapsed == "00:10:00"
    assert report.group.state == "PREEMPTED"
    assert report.to_resubmit() == [0, 1]


def test_status_uses_exit_files_when_the_controller_forgot(fake_slurm, tmp_path):
    _fake(fake_slurm, "sacct", NO_ACCOUNTING)
    _fake(fake_slurm, "scontrol", "echo 'slurm_load_jobs error: Invalid job id specified' >&2;"
                                  " exit 1")
    out, _, _ = _submit_trial(tmp_path)
    exit_dir = out / "logs" / "slurm" / "exit"
    exit_dir.mkdir()
    (exit_dir / "7_0").write_text("0\n")
    (exit_dir / "7_1").write_text("1\n")
    report = status(out)
    assert [(t.state, t.exit_code) for t in report.tasks] == [("COMPLETED", "0:0"),
                                                              ("FAILED", "1:0")]
    assert report.group.state == "UNKNOWN"


def test_another_runs_job_under_a_reused_id_is_not_read(fake_slurm, tmp_path):
    # A controller that lost its state numbers jobs from 1 again.
    out, part, grp = _submit_trial(tmp_path)
    (fake_slurm / "sacct.txt").write_text(
        "7_0|FAILED|1:0|00:00:10|hermesflow-participant-0ther000\n"
        f"7_1|COMPLETED|0:0|00:00:10|{part}\n8|COMPLETED|0:0|00:00:04|someone-else\n")
    _fake(fake_slurm, "scontrol", "echo 'slurm_load_jobs error: Invalid job id specified' >&2;"
                                  " exit 1")
    report = status(out)
    assert [t.state for t in report.tasks] == ["UNKNOWN", "COMPLETED"]
    assert report.group.state == "UNKNOWN"


def test_tasks_sacct_does_not_know_yet_come_from_scontrol(fake_slurm, tmp_path):
    # slurmdbd lags behind the controller: a running task must not read as UNKNOWN (which
    # `resume` would resubmit).
    out, part, grp = _submit_trial(tmp_path)
    (fake_slurm / "sacct.txt").write_text(f"7_0|COMPLETED|0:0|00:00:10|{part}\n")
    _fake(fake_slurm, "scontrol", f"""case "$*" in
*" 7") echo "JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName={part} JobState=RUNNING ExitCode=0:0";;
*) echo "JobId=8 JobName={grp} JobState=PENDING ExitCode=0:0 Reason=Dependency";;
esac""")
    report = status(out)
    assert [(t.state, t.source) for t in report.tasks] == [("COMPLETED", "sacct"),
                                                           ("RUNNING", "scontrol")]
    assert report.group.state == "PENDING" and not report.finished


def test_missing_sbatch_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "bids" / "sub-01").mkdir(parents=True)
    with pytest.raises(SlurmNotFoundError, match="sbatch: not found on PATH -- install"):
        from hermesflow.cluster.submission import submit

        submit(tmp_path / "bids", tmp_path / "out", ["01"])
    assert main(["cluster", "submit", str(tmp_path / "bids"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slurm-client" in err[0]


def test_unreachable_controller_is_named(fake_slurm, tmp_path):
    _fake(fake_slurm, "sbatch", "echo 'sbatch: error: Batch job submission failed: Unable to "
                                "contact slurm controller (connect failure)' >&2; exit 1")
    from hermesflow.cluster.submission import submit

    with pytest.raises(ControllerUnreachableError, match="cannot reach the SLURM controller"):
        submit(tmp_path / "bids", tmp_path / "out", ["01"])


def test_status_without_a_record_says_how_to_submit(tmp_path, capsys):
    assert main(["cluster", "status", str(tmp_path)]) == 2
    assert "hermesflow cluster submit" in capsys.readouterr().err


def test_one_patch_of_run_command_serves_submit_status_and_resume(tmp_path, monkeypatch):
    # Submission and status both call commands.run_command through the module, so this one
    # patch replaces every SLURM command (no binary on PATH is needed).
    from hermesflow.cluster.submission import resume, submit

    monkeypatch.setenv("PATH", str(tmp_path))
    calls: list[list[str]] = []
    answers = iter(["41;c\n", "42\n", "43\n", "44\n"])
    sacct: dict[str, str] = {}

    def fake_run_command(argv: list[str], timeout: float = 60) -> str:
        calls.append(argv)
        return sacct["text"] if argv[0] == "sacct" else next(answers)

    monkeypatch.setattr(commands, "run_command", fake_run_command)
    record = submit(tmp_path / "bids", tmp_path / "out", ["sub-01", "02"])
    assert [(s.array_job, s.indices, s.group_job) for s in record.submissions] == [
        ("41", [0, 1], "42")]
    assert calls[0][-2:] == ["--array=0-1", str(record.folder / "participant.sbatch")]
    assert calls[1][-2:] == ["--dependency=afterany:41", str(record.folder / "group.sbatch")]

    part, grp = record.job_name("participant"), record.job_name("group")
    sacct["text"] = (f"41_0|COMPLETED|0:0|00:00:10|{part}\n41_1|TIMEOUT|0:0|00:10:00|{part}\n"
                     f"42|COMPLETED|0:0|00:00:04|{grp}\n")
    report = status(tmp_path / "out")
    assert [(t.state, t.source) for t in report.tasks] == [("COMPLETED", "sacct"),
                                                           ("TIMEOUT", "sacct")]
    assert calls[2][:2] == ["sacct", "--jobs=41,42"]

    submission = resume(tmp_path / "out")
    assert (submission.array_job, submission.indices, submission.group_job) == ("43", [1], "44")
    assert calls[-2][-2] == "--array=1" and calls[-1][-2] == "--dependency=afterany:43"
    assert len(calls) == 6  # 2 sbatch, sacct for status, sacct for resume, 2 sbatch
