"""``hermesflow power``: power and type-I error of the group models by simulation.

Simulates many trials at the long-table level for each effect size, fits the same group models
the pipeline fits (ITT), and writes ``power.tsv`` and ``power.png`` into OUT_DIR.

    hermesflow power OUT_DIR --participants 31 --effects 0 0.5 1 1.5 --n-trials 200
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hermesflow.derivatives.writing import write_tsv
from hermesflow.errors import ConfigError, HermesflowError

LOGGER = logging.getLogger("hermesflow")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermesflow power",
        description="Power and type-I error of Wald and randomisation p-values by simulation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, help="folder for power.tsv and power.png")
    trial = parser.add_argument_group("simulated trial")
    trial.add_argument("--participants", type=int, default=31, help="number randomised")
    trial.add_argument("--allocation", default="2:1", help="msc:control ratio")
    trial.add_argument("--months", type=float, nargs="+", default=[1.0, 6.0, 24.0],
                       help="session times (months since stroke)")
    trial.add_argument("--effects", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5],
                       help="treatment effects on the change to the last session "
                            "(0 gives the type-I error)")
    trial.add_argument("--time-effect", type=float, default=1.0,
                       help="mean change to the last session in the control arm")
    trial.add_argument("--sd-intercept", type=float, default=1.0)
    trial.add_argument("--sd-slope", type=float, default=0.0,
                       help="SD of participant recovery slopes (change to last session)")
    trial.add_argument("--sd-noise", type=float, default=1.0)
    trial.add_argument("--missing", type=float, default=0.0,
                       help="probability a follow-up session is missing")
    model = parser.add_argument_group("group model")
    model.add_argument("--time", choices=["categorical", "linear", "log"],
                       default="categorical")
    model.add_argument("--random-slope", action="store_true")
    model.add_argument("--ml", action="store_true", help="ML instead of REML")
    model.add_argument("--n-permutations", type=int, default=499,
                       help="relabellings per trial (0: Wald only)")
    model.add_argument("--strata", nargs="*", default=[])
    run = parser.add_argument_group("simulation")
    run.add_argument("--n-trials", type=int, default=200, help="trials per effect size")
    run.add_argument("--alpha", type=float, default=0.05)
    run.add_argument("--seed", type=int, default=20261125)
    run.add_argument("--terms", nargs="*", default=None,
                     help="terms to report (default: every arm term and the joint test)")
    return parser


def _allocation(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--allocation {text!r}: write two integers like 2:1") from None
    if a <= 0 or b <= 0:
        raise ConfigError(f"--allocation {text!r}: both parts must be positive")
    return a, b


def main(argv: list[str]) -> int:
    """Run ``hermesflow power``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except HermesflowError as err:
        print(f"hermesflow power: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from hermesflow.simulation.power import Scenario, default_spec, plot_power, power_table

    if args.participants < 4:
        raise ConfigError("--participants must be at least 4")
    if len(args.months) < 2:
        raise ConfigError("--months needs at least two sessions")
    scenario = Scenario(
        n_participants=args.participants, allocation=_allocation(args.allocation),
        months=tuple(args.months), time_effect=args.time_effect,
        sd_intercept=args.sd_intercept, sd_slope=args.sd_slope, sd_noise=args.sd_noise,
        missing=args.missing,
    )
    spec = default_spec(time=args.time, random_slope=args.random_slope, reml=not args.ml,
                        n_permutations=args.n_permutations, strata=list(args.strata))
    table = power_table(args.effects, scenario, spec, n_trials=args.n_trials,
                        alpha=args.alpha, seed=args.seed, terms=args.terms)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tsv = out / "power.tsv"
    write_tsv(tsv, table, float_format="%.6g")
    png = plot_power(table, out / "power.png", alpha=args.alpha)
    shown = table[["effect", "term", "rate_wald", "rate_randomisation"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {tsv} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
