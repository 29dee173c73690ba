"""``hermesflow power``: power and type-I error of the group models by simulation.

Simulates many trials at the long-table level for each effect size, fits the same group models
the pipeline fits (intention to treat and as treated), and writes ``power.tsv`` and
``power.png`` into OUT_DIR.  Non-adherence (``--non-adherence``: randomised to cells, not
treated) dilutes the ITT contrast only; the time coding of the fitted model is a column of the
table.

    hermesflow power OUT_DIR --participants 31 --effects 0 0.5 1 1.5 --n-trials 200
    hermesflow power OUT_DIR --design isis-hermes            # the published trial's outcomes
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
    trial = parser.add_argument_group(
        "simulated trial", "defaults in brackets; with --design the preset's values instead")
    trial.add_argument("--design", choices=sorted(_designs()),
                       help="a published trial's preset: its size, allocation, visits, "
                            "adherence and primary outcomes at effects under which its "
                            "published p-values are typical (see hermesflow.simulation.designs)")
    trial.add_argument("--participants", type=int, help="number randomised [31]")
    trial.add_argument("--allocation", help="msc:control ratio [2:1]")
    trial.add_argument("--block-size", type=int,
                       help="permuted blocks of this size, recorded and relabelled as drawn "
                            "[complete randomisation]")
    trial.add_argument("--non-adherence", type=float,
                       help="probability a patient randomised to cells is not treated [0]")
    trial.add_argument("--months", type=float, nargs="+",
                       help="session times (months since stroke) [1 6 24]")
    trial.add_argument("--effects", type=float, nargs="+",
                       help="treatment effects on the change to the last session "
                            "(0 gives the type-I error) [0 0.5 1 1.5]; with --design every "
                            "primary outcome at each effect (its sign kept) [the preset's]")
    trial.add_argument("--time-effect", type=float, default=1.0,
                       help="mean change to the last session in the control arm")
    trial.add_argument("--sd-intercept", type=float, default=1.0)
    trial.add_argument("--sd-slope", type=float, default=0.0,
                       help="SD of participant recovery slopes (change to last session)")
    trial.add_argument("--sd-noise", type=float, default=1.0)
    trial.add_argument("--missing", type=float, default=0.0,
                       help="probability a follow-up session is missing")
    model = parser.add_argument_group("group model")
    model.add_argument("--analysis-sets", nargs="+", choices=["itt", "as_treated"],
                       default=["itt", "as_treated"])
    model.add_argument("--ddf", choices=["satterthwaite", "asymptotic"],
                       default="satterthwaite",
                       help="df of the Wald tests (normal-theory p is reported beside)")
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


def _designs() -> list[str]:
    from hermesflow.simulation.designs import DESIGNS

    return list(DESIGNS)


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
    if args.design:
        return _run_design(args)
    from hermesflow.simulation.power import Scenario, plot_power, power_table

    participants = 31 if args.participants is None else args.participants
    months = [1.0, 6.0, 24.0] if args.months is None else args.months
    if participants < 4:
        raise ConfigError("--participants must be at least 4")
    if len(months) < 2:
        raise ConfigError("--months needs at least two sessions")
    scenario = Scenario(
        n_participants=participants, allocation=_allocation(args.allocation or "2:1"),
        months=tuple(months), time_effect=args.time_effect,
        sd_intercept=args.sd_intercept, sd_slope=args.sd_slope, sd_noise=args.sd_noise,
        missing=args.missing, non_adherence=_probability(args.non_adherence or 0.0),
        block_size=args.block_size,
    )
    table = power_table(args.effects or [0.0, 0.5, 1.0, 1.5], scenario, _spec(args),
                        n_trials=args.n_trials, alpha=args.alpha, seed=args.seed,
                        terms=args.terms)
    out = _out(args)
    write_tsv(out / "power.tsv", table, float_format="%.6g")
    png = plot_power(table, out / "power.png", alpha=args.alpha)
    shown = table[["effect", "analysis_set", "term", "rate_wald", "rate_randomisation"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"time coding of the models: {args.time}")
    print(f"wrote {out / 'power.tsv'} and {png}")
    return 0


def _run_design(args: argparse.Namespace) -> int:
    """``--design``: the preset's primary outcomes, both sets, median p beside published p."""
    import dataclasses

    from hermesflow.simulation.design_power import (
        design_power,
        design_spec,
        plot_design_power,
        published_comparison,
    )
    from hermesflow.simulation.designs import get_design

    design = get_design(args.design)
    given = {"n_participants": args.participants, "block_size": args.block_size,
             "months": tuple(args.months) if args.months else None,
             "allocation": _allocation(args.allocation) if args.allocation else None,
             "treated_fraction": None if args.non_adherence is None
             else 1.0 - _probability(args.non_adherence)}
    design = dataclasses.replace(design, **{k: v for k, v in given.items() if v is not None})
    spec = design_spec(design, **_model_options(args))
    table = design_power(design, spec, effects=args.effects, n_trials=args.n_trials,
                         alpha=args.alpha, seed=args.seed)
    if args.terms:
        table = table[table["term"].isin(args.terms)]
    out = _out(args)
    write_tsv(out / "power.tsv", table, float_format="%.6g")
    png = plot_design_power(table, out / "power.png", alpha=args.alpha)
    print(f"{design.name}: {design.reference}")
    print(f"model: value ~ arm * time, time {spec.time}, random intercept, "
          f"{'REML' if spec.reml else 'ML'}, {spec.ddf} df; joint arm x time test")
    print(published_comparison(table).to_string(index=False,
                                                float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {out / 'power.tsv'} and {png}")
    return 0


def _model_options(args: argparse.Namespace) -> dict:
    return dict(time=args.time, random_slope=args.random_slope, reml=not args.ml,
                n_permutations=args.n_permutations, strata=list(args.strata), ddf=args.ddf,
                analysis_sets=list(args.analysis_sets))


def _spec(args: argparse.Namespace):
    from hermesflow.simulation.power import default_spec

    return default_spec(**_model_options(args))


def _probability(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"--non-adherence {value:g}: give a probability in [0, 1)")
    return value


def _out(args: argparse.Namespace) -> Path:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
