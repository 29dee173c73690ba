"""Container engines as argv builders: Docker, Podman, Apptainer, Singularity and none.

An engine turns "run IMAGE with ARGS, these folders mounted, as this user" into one argv list
for ``subprocess`` (never a shell string), and answers the questions asked before a run: is the
engine installed, is the image there, what is its digest (for provenance).

Decisions, so they are made once:

* **Docker** builds its own argv rather than calling ``fmriprep-docker``.  That wrapper has no
  dry-run (its argv cannot be tested without a daemon), reads ``input()`` when the image is
  missing or the engine reports < 8 GB, starts an extra ``free -m`` container before every
  run, and forces ``-it``.  The argv here uses the same mount points (``/data:ro``, ``/out``,
  ``/work``, ``/opt/freesurfer/license.txt``) so its runs read the same as the wrapper's.
* **User.** Docker and rootful Podman get ``--user UID:GID`` of the caller, so outputs belong
  to the caller (as root in CI that is ``0:0``; the tests also run as another uid).  Rootless
  Podman adds ``--userns=keep-id`` so that UID means the caller on the host, not a subuid.
  Apptainer and Singularity always run as the caller.
* ``--pull=never``: a missing image is reported by :meth:`ContainerEngine.check_image` with
  the pull command, rather than fetched in the middle of a pipeline, so the digest recorded in
  the provenance is the one that ran.
* No ``--ulimit``/``--network`` flags: the engine's configuration decides those (CI's
  ``containers.conf`` sets them), and a flag here would override it on every machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hermesflow.containers.labels import check_image, check_mount_source
from hermesflow.errors import ConfigError, HermesflowError

ENGINES = ("docker", "podman", "apptainer", "singularity", "none")


class ContainerError(HermesflowError):
    """A container engine or image that cannot be used, or a containerised run that failed."""


class EngineNotFoundError(ContainerError):
    """The engine's executable is not on PATH (or cannot reach its daemon)."""


class ImageNotFoundError(ContainerError):
    """The image is not in the engine's local store."""


@dataclass(frozen=True)
class Mount:
    """A host path bound into the container at ``target``."""

    source: Path
    target: str
    read_only: bool = False

    @classmethod
    def checked(cls, source: str | Path, target: str, *, read_only: bool, what: str) -> Mount:
        return cls(check_mount_source(source, what=what), target, read_only)


@dataclass(frozen=True)
class ContainerEngine:
    """Base class: how to run an image; subclasses fill in the engine's words.

    Parameters
    ----------
    executable
        The engine's command (default: its usual name, looked up on PATH at run time).
    user
        ``(uid, gid)`` to run as; default the calling user.
    """

    executable: str = ""
    user: tuple[int, int] | None = None

    name = "base"
    #: False for ``none``: paths are passed as they are on the host.
    maps_paths = True

    # -- questions asked before a run ---------------------------------------------------------
    def resolve(self) -> str:
        """Absolute path of the engine's executable, or ``EngineNotFoundError``."""
        command = self.executable or self.default_executable
        found = shutil.which(command)
        if found is None:
            raise EngineNotFoundError(
                f"{command}: not found on PATH -- install {self.install_hint}, or choose "
                f"another --container ({', '.join(ENGINES)})"
            )
        return found

    def check_available(self) -> str:
        """Resolve the executable and check that it can run containers; return its path."""
        return self.resolve()

    def image_exists(self, image: str) -> bool:
        raise NotImplementedError

    def check_image(self, image: str) -> None:
        if not self.image_exists(image):
            raise ImageNotFoundError(
                f"{image}: image not found by {self.name} -- {self.pull_hint(image)}"
            )

    def image_digest(self, image: str) -> str | None:
        """Content digest (``sha256:...``) of the local image, or None when it has none."""
        raise NotImplementedError

    def pull_hint(self, image: str) -> str:
        return f"pull it first: {self.default_executable} pull {image}"

    # -- the command --------------------------------------------------------------------------
    def run_argv(
        self,
        image: str,
        args: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The argv that runs ``image`` with ``args`` given to its entry point."""
        raise NotImplementedError

    def host_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """Variables to add to the engine's own process (only ``none`` needs any)."""
        return {}

    # -- shared helpers -----------------------------------------------------------------------
    default_executable = ""
    install_hint = ""

    def _command(self) -> str:
        return self.executable or self.default_executable

    def _uid_gid(self) -> tuple[int, int]:
        return self.user if self.user is not None else (os.getuid(), os.getgid())

    def _probe(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.resolve(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )


def _env_words(flag: str, env: Mapping[str, str] | None) -> list[str]:
    words: list[str] = []
    for key, value in (env or {}).items():
        words += [flag, f"{key}={value}"]
    return words


@dataclass(frozen=True)
class OCIEngine(ContainerEngine):
    """Docker and Podman share their ``run`` syntax."""

    def _user_words(self) -> list[str]:
        uid, gid = self._uid_gid()
        return ["--user", f"{uid}:{gid}"]

    def run_argv(self, image, args, *, mounts=(), env=None):
        argv = [self._command(), "run", "--rm", "--pull=never", *self._user_words()]
        for mount in mounts:
            spec = f"{mount.source}:{mount.target}"
            argv += ["-v", spec + (":ro" if mount.read_only else "")]
        argv += _env_words("-e", env)
        return [*argv, check_image(image), *args]

    def image_exists(self, image):
        return self._probe("image", "inspect", "--format", "{{.Id}}", check_image(image)).returncode == 0

    def _inspect(self, image: str, template: str) -> str:
        done = self._probe("image", "inspect", "--format", template, check_image(image))
        if done.returncode != 0:
            raise ImageNotFoundError(
                f"{image}: image not found by {self.name} ({done.stderr.strip()}) -- "
                f"{self.pull_hint(image)}"
            )
        return done.stdout.strip()


@dataclass(frozen=True)
class Docker(OCIEngine):
    name = "docker"
    default_executable = "docker"
    install_hint = "Docker Engine (https://docs.docker.com/engine/install/)"

    def check_available(self) -> str:
        path = self.resolve()
        done = self._probe("version", "--format", "{{.Server.Version}}", timeout=30)
        if done.returncode != 0:
            raise EngineNotFoundError(
                f"{path}: cannot reach the Docker daemon ({_last_line(done.stderr)}) -- start "
                "it (systemctl start docker) or choose another --container, e.g. podman"
            )
        return path

    def image_digest(self, image):
        # A pulled image has a registry digest; a locally built one only its config id.
        digests = self._inspect(image, "{{join .RepoDigests \" \"}}").split()
        if digests:
            return digests[0].rsplit("@", 1)[-1]
        return self._inspect(image, "{{.Id}}") or None


@dataclass(frozen=True)
class Podman(OCIEngine):
    name = "podman"
    default_executable = "podman"
    install_hint = "Podman (apt-get install podman)"

    def _user_words(self) -> list[str]:
        words = super()._user_words()
        if os.geteuid() != 0:
            # Rootless: map the caller's uid to itself instead of a subordinate uid.
            words = ["--userns=keep-id", *words]
        return words

    def image_exists(self, image):
        return self._probe("image", "exists", check_image(image)).returncode == 0

    def image_digest(self, image):
        return self._inspect(image, "{{.Digest}}") or self._inspect(image, "{{.Id}}") or None


@dataclass(frozen=True)
class Apptainer(ContainerEngine):
    name = "apptainer"
    default_executable = "apptainer"
    install_hint = "Apptainer (https://apptainer.org/docs/admin/main/installation.html)"

    def run_argv(self, image, args, *, mounts=(), env=None):
        # --cleanenv: the host's PYTHONPATH and friends must not leak into fMRIPrep's Python.
        argv = [self._command(), "run", "--cleanenv"]
        for mount in mounts:
            spec = f"{mount.source}:{mount.target}"
            argv += ["-B", spec + (":ro" if mount.read_only else "")]
        argv += _env_words("--env", env)
        return [*argv, check_image(image), *args]

    def image_exists(self, image):
        image = check_image(image)
        if "://" in image:
            # A URI (docker://, library://, oras://) is resolved by the engine when it runs.
            return True
        return Path(image).is_file()

    def image_digest(self, image):
        image = check_image(image)
        if "://" in image:
            return None
        path = Path(image).resolve()
        stat = path.stat()
        return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)

    def pull_hint(self, image):
        return (
            f"build the image file first, e.g. {self.default_executable} build "
            f"{Path(image).name or 'fmriprep.sif'} docker://nipreps/fmriprep:<version>"
        )


@dataclass(frozen=True)
class Singularity(Apptainer):
    name = "singularity"
    default_executable = "singularity"
    install_hint = "SingularityCE or Apptainer (which provides a `singularity` command)"


@dataclass(frozen=True)
class NoEngine(ContainerEngine):
    """fMRIPrep installed on the host (an HPC module, a venv): the image is the executable.

    Nothing is mounted, so nothing is read-only either: the BIDS folder is protected only by
    its own permissions.
    """

    name = "none"
    maps_paths = False
    default_executable = "fmriprep"
    install_hint = "fMRIPrep (`module load fmriprep`, or pip install fmriprep with its tools)"

    def run_argv(self, image, args, *, mounts=(), env=None):
        return [self._command(), *args]

    def host_env(self, env):
        return dict(env or {})

    def image_exists(self, image):
        return shutil.which(self._command()) is not None

    def check_image(self, image):
        self.resolve()

    def image_digest(self, image):
        return None


_CLASSES: dict[str, type[ContainerEngine]] = {
    "docker": Docker,
    "podman": Podman,
    "apptainer": Apptainer,
    "singularity": Singularity,
    "none": NoEngine,
}


def get_engine(
    name: str, *, executable: str = "", user: tuple[int, int] | None = None
) -> ContainerEngine:
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"container engine {name!r} is not supported -- use one of {', '.join(ENGINES)}"
        ) from None
    return cls(executable=executable, user=user)


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
