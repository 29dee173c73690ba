"""Group stage speed: 10 outcomes x 2000 randomisation relabellings against naive refitting.

Simulates a demo-sized trial at the long-table level, times ``fit_group_models`` with and
without randomisation inference (both analysis sets), then times a handful of naive
randomisation refits (statsmodels formula MixedLM from scratch, one per relabelling) and
extrapolates them to the same workload, in the same run.

Figures: whole group stage / naive refitting (goal <= 0.005); two group stages run at once
(what ``--nprocs 2`` does with two nodes) with BLAS / OpenMP pinned to one thread each (what
each Nipype node gets, ``hermesflow.cli.scheduler``) / the same unpinned (goal <= 1.0), the two
set-ups alternated.

    python bench/bench_group.py [--participants 12] [--permutations 2000] [--naive-refits 12]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import time
import warnings

import numpy as np
import statsmodels.formula.api as smf
from figures import Figure
from figures import table as figure_table

from hermesflow.config import GroupConfig
from hermesflow.group import fit_group_models
from hermesflow.simulation.roi_table import simulate_roi_trial

OUTCOMES = [f"{roi}_{side}_{measure}" for roi in ("mi4a", "mi4p")
            for side in ("ipsi", "contra") for measure in ("effect", "psc")] \
    + ["nihss_motor", "fm_motor"]


def naive_refit_seconds(table, outcomes, n_refits: int, seed: int = 0) -> float:
    """Mean seconds of one naive randomisation refit (relabel, build formula model, fit)."""
    rng = np.random.default_rng(seed)
    ids = table["participant_id"].unique()
    arm = table.groupby("participant_id")["arm"].first().reindex(ids).to_numpy()
    times = []
    for i in range(n_refits):
        outcome = outcomes[i % len(outcomes)]
        rows = table[table["outcome"] == outcome]
        relabel = dict(zip(ids, rng.permutation(arm), strict=True))
        data = rows.assign(a=(rows["participant_id"].map(relabel) == "msc").astype(float))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            smf.mixedlm("value ~ a * C(session_id)", data, groups=data["participant_id"]) \
                .fit(reml=True)
        times.append(time.perf_counter() - start)
    return float(np.mean(times))


def _group_stage(table, spec, pinned: bool) -> None:
    from hermesflow.cli.scheduler import pinned_threads

    with pinned_threads(1) if pinned else contextlib.nullcontext():
        fit_group_models(table, spec)


def pinned_over_unpinned(table, spec, repeats: int = 3,
                         workers: int = 2) -> tuple[float, float, float]:
    """Median wall seconds of ``workers`` group stages run at once (as ``--nprocs 2`` runs
    two nodes side by side), each pinned to one BLAS / OpenMP thread or unpinned; the two
    set-ups alternate.  Pinning exists for this case: unpinned, every process starts as many
    BLAS threads as there are cores, and the processes fight over them."""
    context = multiprocessing.get_context("fork")
    times = {"pinned": [], "unpinned": []}
    for _ in range(repeats):
        for name in times:
            start = time.perf_counter()
            children = [context.Process(target=_group_stage,
                                        args=(table, spec, name == "pinned"))
                        for _ in range(workers)]
            for child in children:
                child.start()
            for child in children:
                child.join()
                if child.exitcode:
                    raise SystemExit(f"group stage ({name}) exited {child.exitcode}")
            times[name].append(time.perf_counter() - start)
    pinned, unpinned = (float(np.median(times[k])) for k in ("pinned", "unpinned"))
    return pinned / unpinned, pinned, unpinned


def figures(quick: bool = False) -> list[Figure]:
    args = ["--participants", "12", "--naive-refits", "4" if quick else "12"]
    return _run(_parser().parse_args(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--permutations", type=int, default=2000)
    parser.add_argument("--naive-refits", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    print(figure_table(_run(_parser().parse_args(argv))))
    return 0


def _run(args) -> list[Figure]:

    table = simulate_roi_trial(args.participants, outcomes=OUTCOMES, effect=0.5, missing=0.1,
                               sd_slope=0.5, non_adherence=0.1, seed=args.seed)
    spec = GroupConfig(outcomes=OUTCOMES, clinical_scores=[], analysis_sets=["itt",
                       "as_treated"], n_permutations=args.permutations)
    # the demo's 12 participants allow only 495 distinct labellings (enumerated exactly by
    # default); draw the full 2000 here so the workload is the one asked for
    spec.randomisation_exact = False
    n_models = len(OUTCOMES) * len(spec.analysis_sets)

    start = time.perf_counter()
    result = fit_group_models(table, spec)
    ours = time.perf_counter() - start
    spec.n_permutations = 0
    start = time.perf_counter()
    fit_group_models(table, spec)
    wald_only = time.perf_counter() - start
    randomisation = max(ours - wald_only, 1e-9)

    per_refit = naive_refit_seconds(table, OUTCOMES, args.naive_refits, seed=args.seed)
    naive_randomisation = per_refit * args.permutations * n_models
    naive = wald_only + naive_randomisation

    fitted = result[result["term"] == "arm:time (joint)"]
    print(f"trial: {args.participants} participants x 3 sessions, {len(OUTCOMES)} outcomes x "
          f"{len(spec.analysis_sets)} analysis sets = {n_models} models, "
          f"{args.permutations} relabellings each")
    print(f"models converged: {int(fitted['converged'].sum())}/{n_models}; relabellings "
          f"used per model: {int(fitted['n_permutations'].min())}-"
          f"{int(fitted['n_permutations'].max())}")
    print(f"hermesflow group stage: {ours:8.2f} s  (Wald fits {wald_only:.2f} s + "
          f"randomisation {randomisation:.2f} s)")
    print(f"naive refitting:        {naive:8.1f} s  (extrapolated from {args.naive_refits} "
          f"refits at {per_refit * 1e3:.1f} ms each)")
    print(f"ratio whole stage:      {ours / naive:.5f}  (goal <= 0.005)")
    print(f"ratio randomisation:    {randomisation / naive_randomisation:.6f}")
    # 200 relabellings: the pinning acts on the fits, and three alternated pairs stay short
    spec.n_permutations = min(args.permutations, 200)
    ratio, pinned, unpinned = pinned_over_unpinned(table, spec)
    print(f"two group stages at once ({spec.n_permutations} relabellings each): pinned to 1 "
          f"thread each {pinned:.2f} s, unpinned {unpinned:.2f} s")
    note = f"{args.participants} participants, {args.permutations} relabellings"
    return [Figure("group stage / naive refitting", ours / naive, 0.005, "<=", note),
            Figure("group stage pinned / unpinned", ratio, 1.0, "<=",
                   f"2 at once, {args.participants} participants, {spec.n_permutations} "
                   "relabellings")]


if __name__ == "__main__":
    sys.exit(main())
