"""The argv of every engine: mounts, user, image pin, fMRIPrep's words, hostile inputs.

Nothing here starts a container; see test_containers_podman.py for real runs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hermesflow.containers import (
    DEFAULT_FMRIPREP_IMAGE,
    ENGINES,
    EngineNotFoundError,
    FMRIPrepFailedError,
    FMRIPrepOptions,
    ImageNotFoundError,
    check_image,
    check_label,
    default_image,
    fmriprep_invocation,
    fmriprep_provenance,
    get_engine,
    resolve_license,
    run_invocation,
)
from hermesflow.containers.fmriprep import check_layout
from hermesflow.errors import ConfigError, InputError

OPTIONS = FMRIPrepOptions(nthreads=4, omp_nthreads=2, mem_mb=12288, task="passivewrist")


@pytest.fixture
def paths(tmp_path):
    """Host folders with spaces in every name, as a lab's shared drive has them."""
    root = tmp_path / "my trial"
    found = {
        "bids_dir": root / "raw data",
        "output_dir": root / "derivs out" / "fmriprep",
        "work_dir": root / "scratch space",
        "fs_license_file": root / "free surfer" / "license.txt",
        "templateflow_home": root / "template flow",
    }
    for key, path in found.items():
        if key == "fs_license_file":
            path.parent.mkdir(parents=True)
            path.write_text("licence\n")
        else:
            path.mkdir(parents=True)
    return found


def invocation(engine_name, paths, label="01", **kwargs):
    engine = get_engine(engine_name, user=(1000, 1000))
    return fmriprep_invocation(
        engine, kwargs.pop("image", default_image(engine)), participant_label=label,
        options=kwargs.pop("options", OPTIONS), **paths, **kwargs,
    )


def fmriprep_part(argv, image):
    return argv[argv.index(image) + 1:]


EXPECTED_ARGS = [
    "/data", "/out", "participant", "--participant-label", "01", "-w", "/work",
    "--output-spaces", "MNI152NLin2009cAsym:res-2", "--fs-no-reconall",
    "--fs-license-file", "/opt/freesurfer/license.txt", "--task-id", "passivewrist",
    "--nthreads", "4", "--omp-nthreads", "2", "--mem-mb", "12288", "--notrack",
]


@pytest.mark.parametrize("engine_name", ["docker", "podman"])
def test_oci_argv(engine_name, paths, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # rootful
    inv = invocation(engine_name, paths)
    argv = inv.argv
    assert argv[:4] == [engine_name, "run", "--rm", "--pull=never"]
    assert argv[4:6] == ["--user", "1000:1000"]
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "-v"]
    assert volumes == [
        f"{paths['bids_dir']}:/data:ro",
        f"{paths['output_dir']}:/out",
        f"{paths['work_dir']}:/work",
        f"{paths['fs_license_file']}:/opt/freesurfer/license.txt:ro",
        f"{paths['templateflow_home']}:/templateflow",
    ]
    # Paths with spaces stay one argv word each: nothing is split or quoted.
    assert all(" " in v for v in volumes)
    assert argv[argv.index("-e") + 1] == "TEMPLATEFLOW_HOME=/templateflow"
    assert fmriprep_part(argv, DEFAULT_FMRIPREP_IMAGE) == EXPECTED_ARGS
    assert inv.fmriprep_args == EXPECTED_ARGS
    assert inv.env == {}


def test_rootless_podman_keeps_the_caller_id(paths, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    argv = invocation("podman", paths).argv
    assert argv[4:7] == ["--userns=keep-id", "--user", "1000:1000"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--userns=keep-id" not in invocation("docker", paths).argv


def test_default_user_is_the_caller(paths):
    engine = get_engine("podman")
    argv = fmriprep_invocation(engine, "img:1", participant_label="01", **paths).argv
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"


@pytest.mark.parametrize("engine_name", ["apptainer", "singularity"])
def test_apptainer_argv(engine_name, paths):
    inv = invocation(engine_name, paths)
    argv = inv.argv
    image = f"docker://{DEFAULT_FMRIPREP_IMAGE}"
    assert argv[:3] == [engine_name, "run", "--cleanenv"]
    assert "--user" not in argv  # Apptainer runs as the caller already
    binds = [argv[i + 1] for i, word in enumerate(argv) if word == "-B"]
    assert binds[0] == f"{paths['bids_dir']}:/data:ro"
    assert binds[3] == f"{paths['fs_license_file']}:/opt/freesurfer/license.txt:ro"
    assert argv[argv.index("--env") + 1] == "TEMPLATEFLOW_HOME=/templateflow"
    assert fmriprep_part(argv, image) == EXPECTED_ARGS


def test_no_engine_uses_host_paths(paths):
    inv = invocation("none", paths)
    assert inv.argv[0] == "fmriprep"
    assert inv.argv[1:4] == [str(paths["bids_dir"]), str(paths["output_dir"]), "participant"]
    assert inv.argv[inv.argv.index("--fs-license-file") + 1] == str(paths["fs_license_file"])
    assert inv.argv[inv.argv.index("-w") + 1] == str(paths["work_dir"])
    assert inv.env == {"TEMPLATEFLOW_HOME": str(paths["templateflow_home"])}


def test_options_map_to_fmriprep_flags(paths):
    inv = invocation(
        "podman", {**paths, "templateflow_home": None},
        options=FMRIPrepOptions(fs_reconall=True, skip_bids_validation=True, notrack=False,
                                output_spaces=("MNI152NLin2009cAsym:res-2", "T1w")),
    )
    args = inv.fmriprep_args
    assert "--fs-no-reconall" not in args
    assert "--skip-bids-validation" in args
    assert "--notrack" not in args
    i = args.index("--output-spaces")
    assert args[i + 1:i + 3] == ["MNI152NLin2009cAsym:res-2", "T1w"]
    assert "--nthreads" not in args and "--mem-mb" not in args and "--task-id" not in args
    assert "TEMPLATEFLOW_HOME=/templateflow" not in inv.argv


def test_sub_prefix_is_dropped(paths):
    assert invocation("docker", paths, label="sub-07").fmriprep_args[4] == "07"


HOSTILE_LABELS = ["01;rm -rf ~", "../x", "01 02", "$(id)", "`id`", "-h", "--version", "01/../02",
                  "sub-", "", "01\n02", "01&&true", "ü1"]


@pytest.mark.parametrize("label", HOSTILE_LABELS)
@pytest.mark.parametrize("engine_name", ENGINES)
def test_injection_labels_are_rejected(engine_name, label, paths):
    with pytest.raises(ConfigError, match="not a BIDS label"):
        invocation(engine_name, paths, label=label)


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_check_label_rejects(label):
    with pytest.raises(ConfigError):
        check_label(label)


def test_check_label_accepts_bids_labels():
    assert check_label("sub-A01") == "A01"
    assert check_label("ses-24", "session") == "24"
    assert check_label("001") == "001"


@pytest.mark.parametrize("image", ["--privileged", "-v", "", " nipreps/fmriprep", "img;id",
                                   "img name", "img\n"])
def test_hostile_images_are_rejected(image, paths):
    with pytest.raises(ConfigError):
        check_image(image)
    with pytest.raises(ConfigError):
        invocation("podman", paths, image=image)


@pytest.mark.parametrize("image", [DEFAULT_FMRIPREP_IMAGE, "localhost/standin:1",
                                   "ghcr.io/x/fmriprep@sha256:" + "a" * 64,
                                   "registry:5000/a/b:c", "/opt/images/fmriprep 25.sif",
                                   "docker://nipreps/fmriprep:25.2.3"])
def test_good_images_pass(image):
    assert check_image(image) == image


@pytest.mark.parametrize("bad", ["with:colon", "with,comma"])
def test_mount_separators_in_paths_are_rejected(bad, paths, tmp_path):
    weird = tmp_path / bad
    weird.mkdir()
    with pytest.raises(InputError, match="mount separator"):
        invocation("podman", {**paths, "bids_dir": weird})


def test_pinned_default_image():
    assert DEFAULT_FMRIPREP_IMAGE == "nipreps/fmriprep:25.2.3"
    assert default_image(get_engine("docker")) == DEFAULT_FMRIPREP_IMAGE
    assert default_image(get_engine("apptainer")) == "docker://" + DEFAULT_FMRIPREP_IMAGE


def test_unknown_engine():
    with pytest.raises(ConfigError, match="use one of docker, podman"):
        get_engine("lxc")


# -- provenance ----------------------------------------------------------------------------------

def test_provenance_pins_the_digest():
    digest = "sha256:" + "b" * 64
    entry = fmriprep_provenance(get_engine("podman"), DEFAULT_FMRIPREP_IMAGE, digest)
    assert entry["Name"] == "fMRIPrep" and entry["Version"] == "25.2.3"
    assert entry["Container"] == {
        "Type": "podman", "Tag": DEFAULT_FMRIPREP_IMAGE,
        "URI": f"docker://nipreps/fmriprep@{digest}",
    }
    sif = fmriprep_provenance(get_engine("apptainer"), "/img/fmriprep-25.2.3.sif", digest)
    assert sif["Version"] == "25.2.3"
    assert sif["Container"]["URI"] == "file:///img/fmriprep-25.2.3.sif"
    assert sif["Container"]["Digest"] == digest
    assert "Container" not in fmriprep_provenance(get_engine("none"), "fmriprep", None)


def test_apptainer_image_file_digest(tmp_path):
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"not really a sif")
    engine = get_engine("apptainer")
    assert engine.image_exists(str(sif))
    assert engine.image_digest(str(sif)) == (
        "sha256:" + __import__("hashlib").sha256(b"not really a sif").hexdigest()
    )
    assert not engine.image_exists(str(tmp_path / "missing.sif"))
    with pytest.raises(ImageNotFoundError, match="apptainer build"):
        engine.check_image(str(tmp_path / "missing.sif"))


# -- engine missing / not working ----------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_not_installed(engine_name, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no engine at all
    engine = get_engine(engine_name)
    with pytest.raises(EngineNotFoundError, match="not found on PATH -- install"):
        engine.check_available()


def fake_engine(tmp_path, name, script):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_docker_without_daemon(tmp_path, monkeypatch):
    fake_engine(tmp_path, "docker", "echo 'Cannot connect to the Docker daemon at unix:///x' >&2\n"
                "exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(EngineNotFoundError, match="cannot reach the Docker daemon"):
        get_engine("docker").check_available()


def test_image_missing_names_the_pull(tmp_path, monkeypatch):
    fake_engine(tmp_path, "podman", "exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(ImageNotFoundError, match="podman pull nipreps/fmriprep:25.2.3"):
        get_engine("podman").check_image(DEFAULT_FMRIPREP_IMAGE)


# -- licence and folders -------------------------------------------------------------------------

def test_licence_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("FS_LICENSE", raising=False)
    monkeypatch.delenv("FREESURFER_HOME", raising=False)
    with pytest.raises(InputError, match="licence file not found -- give the path"):
        resolve_license(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="no FreeSurfer licence file"):
        resolve_license(None)
    monkeypatch.setenv("FS_LICENSE", str(tmp_path / "gone.txt"))
    with pytest.raises(InputError, match=r"from \$FS_LICENSE"):
        resolve_license(None)
    (tmp_path / "license.txt").write_text("x")
    monkeypatch.setenv("FS_LICENSE", str(tmp_path / "license.txt"))
    assert resolve_license(None) == tmp_path / "license.txt"


def test_layout_rules(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    with pytest.raises(InputError, match="not a BIDS dataset"):
        check_layout(bids, tmp_path / "out", tmp_path / "work")
    (bids / "dataset_description.json").write_text("{}")
    with pytest.raises(InputError, match="is the BIDS input folder"):
        check_layout(bids, bids, tmp_path / "work")
    with pytest.raises(InputError, match="inside the BIDS input folder"):
        check_layout(bids, tmp_path / "out", bids / "work")
    check_layout(bids, bids / "derivatives" / "fmriprep", tmp_path / "work")


# -- running -------------------------------------------------------------------------------------

def test_failure_shows_the_log_tail(tmp_path, paths):
    fake = fake_engine(tmp_path, "fmriprep",
                       'for i in $(seq 1 100); do echo "line $i"; done\n'
                       'echo "RuntimeError: something broke" >&2\nexit 3\n')
    engine = get_engine("none", executable=str(fake))
    inv = fmriprep_invocation(engine, "fmriprep", participant_label="01", **paths)
    with pytest.raises(FMRIPrepFailedError) as caught:
        run_invocation(inv, tmp_path / "logs" / "fmriprep.log")
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "RuntimeError: something broke" in message
    assert "line 100" in message and "line 50" not in message  # the tail, not the whole log
    assert "fmriprep.log" in message
    log = (tmp_path / "logs" / "fmriprep.log").read_text()
    assert log.startswith("$ ") and "line 1\n" in log


def test_run_passes_arguments_literally(tmp_path, paths):
    fake = fake_engine(tmp_path, "fmriprep",
                       'for a in "$@"; do printf "%s\\n" "$a"; done > "$OUT"\n')
    engine = get_engine("none", executable=str(fake))
    inv = fmriprep_invocation(engine, "fmriprep", participant_label="01", **paths)
    out = tmp_path / "argv.txt"
    os.environ["OUT"] = str(out)
    try:
        run_invocation(inv, tmp_path / "run.log")
    finally:
        del os.environ["OUT"]
    assert out.read_text().splitlines() == inv.fmriprep_args
    assert Path(out.read_text().splitlines()[0]) == paths["bids_dir"]
