"""The bench suite's one record: a figure (a ratio against a same-run baseline) and its goal.

Every ``bench/bench_*.py`` exposes ``figures(quick: bool = False) -> list[Figure]``;
``bench/run.py`` collects them into one table.  A script without ``figures`` is run as a
program and each printed line of the form ``<name> = <ratio> (goal <= <goal> ...`` becomes a
figure.  Machines are shared: figures are ratios measured interleaved in one run, never seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<name>[^=]+?)\s*=\s*(?P<ratio>[-+\d.eE]+)\s*\(goal\s*"
                   r"(?P<op><=|>=)\s*(?P<goal>[-+\d.eE]+)")


@dataclass
class Figure:
    """One line of the table: ``ratio`` compared with ``goal`` by ``op``.

    ``op`` is ``"<="`` (at most), ``">="`` (at least) or ``""`` (reported, no goal).
    """

    name: str
    ratio: float
    goal: float | None = None
    op: str = "<="
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None or not self.op:
            return None
        return self.ratio <= self.goal if self.op == "<=" else self.ratio >= self.goal

    def row(self) -> str:
        goal = f"{self.op} {self.goal:g}" if self.goal is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return f"| {self.name} | {self.ratio:.3g} | {goal} | {met} | {self.note} |"


def table(figures: list[Figure]) -> str:
    """A Markdown table: figure, ratio, goal, met, note."""
    lines = ["| figure | ratio | goal | met | note |", "|---|---|---|---|---|"]
    return "\n".join(lines + [figure.row() for figure in figures])


def parse(text: str) -> list[Figure]:
    """Figures printed by a script as ``name = ratio (goal <= x ...``."""
    found = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found.append(Figure(match["name"], float(match["ratio"]), float(match["goal"]),
                                match["op"]))
    return found
