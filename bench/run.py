"""Run every ``bench/bench_*.py`` and print one table of figures and goals (``make bench``).

Each module's ``figures(quick=...)`` runs in its own process (a fresh interpreter: no warm
caches or imports carried from one bench to the next); a script without ``figures`` runs as a
program and its ``name = ratio (goal <= x`` lines are read.  Exit status 1 when a bench fails
(a goal not met is reported in the table, not as a failure).

    python bench/run.py [--quick] [--only session,group]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from figures import Figure, parse, table  # noqa: E402

_CALL = ("import json, sys; sys.path.insert(0, {here!r}); import {module} as m; "
         "print('@@FIGURES@@' + json.dumps([f.__dict__ for f in m.figures(quick={quick})]))")


def _has_figures(script: Path) -> bool:
    tree = ast.parse(script.read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == "figures"
               for node in tree.body)


def _run(script: Path, quick: bool, env: dict) -> tuple[list[Figure], int]:
    if _has_figures(script):
        code = _CALL.format(here=str(HERE), module=script.stem, quick=quick)
        proc = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                              stdout=subprocess.PIPE)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("@@FIGURES@@")]
        print("\n".join(line for line in proc.stdout.splitlines()
                        if not line.startswith("@@FIGURES@@")), flush=True)
        found = [Figure(**f) for f in json.loads(lines[-1][11:])] if lines else []
        return found, proc.returncode
    small = quick and '"--participants"' in script.read_text()
    args = [sys.executable, str(script)] + (["--participants", "4"] if small else [])
    proc = subprocess.run(args, env=env, text=True, stdout=subprocess.PIPE)
    print(proc.stdout, flush=True)
    return parse(proc.stdout), proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (a few minutes); the figures are noisier")
    parser.add_argument("--only", default="", help="comma-separated bench names")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    # benches import the package from this checkout even when it is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent),
                                                      env.get("PYTHONPATH")]))
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    figures, failed = [], []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.stem.removeprefix("bench_") not in only:
            continue
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        found, code = _run(script, args.quick, env)
        print(f"== {script.name}: exit {code} in {time.perf_counter() - start:.1f} s\n",
              flush=True)
        figures += found
        if code:
            failed.append(script.name)
    print(table(figures))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
