"""``hermesflow cluster``: run the participant level as a SLURM array, then the group level.

    hermesflow cluster submit BIDS OUT [--participant-label ...] [--partition P]
                              [--time HH:MM:SS] [--mem-gb G] [--cpus N] [--account A]
                              [-w WORK] [-- extra participant-level flags]
    hermesflow cluster status OUT
    hermesflow cluster resume OUT

Exit status of ``status``: 0 when every task and the group job completed, 1 when something
failed or was cut short (``resume`` reruns it), 3 while jobs are pending or running.  Errors
(no sbatch, controller unreachable, no job record) exit 2 through ``hermesflow``'s main.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hermesflow.cluster.commands import format_indices
from hermesflow.cluster.records import SlurmOptions
from hermesflow.cluster.states import StatusReport, status
from hermesflow.cluster.submission import discover_participants, resume, submit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermesflow cluster",
        description="Run hermesflow on SLURM: one array task per participant, then a group "
                    "job after them; report their states; resubmit what failed.")
    commands = parser.add_subparsers(dest="command", required=True)

    sub = commands.add_parser("submit", help="submit the participant array and the group job",
                              epilog="Flags after `--` go to every participant and group run, "
                                     "e.g. -- --skip-bids-validation --atlas-threshold 30")
    sub.add_argument("bids_dir", type=Path)
    sub.add_argument("output_dir", type=Path)
    sub.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                     metavar="LABEL", help="subjects (default: every sub-* in BIDS_DIR)")
    sub.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    sub.add_argument("--time", default="02:00:00", help="time limit per job (HH:MM:SS)")
    sub.add_argument("--mem-gb", type=float, default=4.0, help="memory per job (GB)")
    sub.add_argument("--cpus", type=int, default=1, help="CPUs per job (= --nprocs)")
    sub.add_argument("--account", help="SLURM account to charge")
    sub.add_argument("-w", "--work-dir", type=Path,
                     help="work dir; each participant gets WORK/LABEL (default OUT/../work)")

    for name, text in (("status", "state, exit code and run time of every task"),
                       ("resume", "resubmit failed or cut-short tasks and a new group job")):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("output_dir", type=Path)
    return parser


def main(argv: list[str]) -> int:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if args.command == "submit":
        return _submit(args, extra)
    if args.command == "status":
        report = status(args.output_dir)
        print(format_report(report))
        return report_exit_status(report)
    submission = resume(args.output_dir)
    if submission is None:
        print("Nothing to resume: every task and the group job completed.")
    elif submission.indices:
        print(f"Resubmitted task(s) {format_indices(submission.indices)} as array job "
              f"{submission.array_job}; group job {submission.group_job} runs after them.")
    else:
        print(f"Every task completed; resubmitted the group job as {submission.group_job}.")
    return 0


def _submit(args: argparse.Namespace, extra: list[str]) -> int:
    labels = args.participant_label or discover_participants(args.bids_dir)
    options = SlurmOptions(partition=args.partition, time=args.time, mem_gb=args.mem_gb,
                           cpus=args.cpus, account=args.account)
    record = submit(args.bids_dir, args.output_dir, labels, options, args.work_dir, extra)
    last = record.submissions[-1]
    print(f"Submitted array job {last.array_job} ({len(labels)} participant task(s)) and "
          f"group job {last.group_job} after it.\nJob record: {record.folder / 'jobs.json'}\n"
          f"Follow with: hermesflow cluster status {record.output_dir}")
    return 0


def format_report(report: StatusReport) -> str:
    rows = [("TASK", "PARTICIPANT", "JOB", "STATE", "EXIT", "ELAPSED")]
    rows += [(str(t.index), f"sub-{t.label}", f"{t.array_job}_{t.index}", t.state,
              t.exit_code or "-", t.elapsed or "-") for t in report.tasks]
    group = report.group
    rows.append(("group", "-", group.job_id, group.state, group.exit_code or "-",
                 group.elapsed or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    sources = sorted({t.source for t in report.tasks if t.source} | {group.source} - {""})
    if sources:
        lines.append(f"(states from {', '.join(sources)})")
    return "\n".join(lines)


def report_exit_status(report: StatusReport) -> int:
    if not report.finished:
        return 3
    return 0 if report.all_completed else 1
