"""One family of errors, so callers can tell ours from everybody else's."""

from __future__ import annotations

from pathlib import Path


class HermesflowError(Exception):
    """Base class of every error hermesflow raises on purpose."""


class InputError(HermesflowError):
    """Bad or missing input, reported in one line: the file, what is wrong, how to fix it."""

    def __init__(self, path: str | Path | None, problem: str, fix: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem} -- {fix}")


class ConfigError(HermesflowError):
    """An option or configuration file that cannot be used."""


class RegistryError(HermesflowError):
    """A stat map, ROI measure or atlas source registered twice, badly named, or unknown."""
