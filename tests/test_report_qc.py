"""Reports read back in Chromium on a trial where one session moved a lot (exclusion on).

The trial is simulated, then one session's head motion is made five times larger in its
fMRIPrep confounds (what the QC reads); both levels run with ``[qc] exclude = true``.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from hermesflow.cli.run import main
from hermesflow.preproc.confounds import MOTION_COLUMNS, confounds_table
from hermesflow.simulation.trial import SimulationSpec, simulate_trial
from tests.test_reports import CHROMIUM, _chromium, _colourful, _render

MOVED = ("03", "06")
SMALL = {"participants": 9, "voxel_size": 6.0, "n_blocks": 5, "treated_fraction": 1.0,
         "effect_size": 0.8, "seed": 11}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")


def _move(bids: Path, subject: str, session: str, factor: float) -> None:
    path = next((bids / "derivatives" / "fmriprep" / f"sub-{subject}" / f"ses-{session}"
                 / "func").glob("*_desc-confounds_timeseries.tsv"))
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    moved = confounds_table(table[list(MOTION_COLUMNS)].to_numpy() * factor,
                            table["global_signal"].to_numpy())
    moved.to_csv(path, sep="\t", index=False, na_rep="n/a")


@pytest.fixture(scope="module")
def moved_trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("moved_trial")
    bids, out, work = root / "bids", root / "out", root / "work"
    simulate_trial(bids, SimulationSpec(**SMALL))
    _move(bids, *MOVED, factor=5.0)
    config = root / "qc.toml"
    config.write_text("[qc]\nexclude = true\n")
    common = ["-w", str(work), "--nprocs", "2", "--skip-bids-validation", "--config", str(config)]
    for level in ("participant", "group"):
        assert main([str(bids), str(out), level, *common]) == 0, f"{level} level failed"
    return root


class _Tables(HTMLParser):
    """Every ``<table id=...>`` of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._current: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._current = dict(attrs).get("id")
            if self._current:
                self.tables[self._current] = []
        elif tag == "tr" and self._current:
            self.tables[self._current].append([])
        elif tag in ("td", "th") and self._current:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._current:
            self.tables[self._current][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(dom: str) -> dict[str, pd.DataFrame]:
    parser = _Tables()
    parser.feed(dom)
    return {name: pd.DataFrame(rows[1:], columns=rows[0]) for name, rows in parser.tables.items()}


def _broken_images(tmp_path, page: Path) -> tuple[int, int]:
    """``(images, broken)`` as Chromium decodes them (a probe script added to a copy)."""
    probe = tmp_path / page.name
    probe.write_text(page.read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => {const i = [...document.images];"
        "document.body.dataset.images = i.length; document.body.dataset.broken = "
        "i.filter(x => !x.complete || x.naturalWidth === 0).length;});</script></body>")))
    dom = _chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000", probe.as_uri()).stdout
    found = re.search(r'data-images="(\d+)" data-broken="(\d+)"', dom)
    assert found, "the probe did not run"
    return int(found.group(1)), int(found.group(2))


def test_every_page_renders_without_a_broken_image(moved_trial, tmp_path):
    out = moved_trial / "out"
    pages = [*out.glob("sub-*/ses-*/func/*_report.html"), *out.glob("group/*_desc-report.html")]
    assert len(pages) == 28
    for page in pages:  # every report of the run, as a reviewer would open them
        images, broken = _broken_images(tmp_path, page)
        assert images >= 4 and broken == 0, page.name


def test_trial_flow_and_primary_table_read_back_from_the_rendered_page(moved_trial, tmp_path):
    bids, out = moved_trial / "bids", moved_trial / "out"
    page = next(out.glob("group/*_desc-report.html"))
    dom, pixels = _render(tmp_path, page)
    assert _colourful(pixels) > 500
    tables = _tables(dom)
    flow = tables["trial-flow"].set_index("")
    participants = pd.read_csv(bids / "participants.tsv", sep="\t")
    sessions = pd.concat(pd.read_csv(p, sep="\t").assign(participant_id=p.parent.name)
                         for p in bids.glob("sub-*/sub-*_sessions.tsv"))
    arm_of = participants.set_index("participant_id")["arm"]
    for arm in ("msc", "control"):
        ids = participants[participants["arm"] == arm]
        assert int(flow.loc["randomised", arm]) == len(ids)
        assert int(flow.loc["treated", arm]) == (ids["treated"] == "yes").sum()
        assert int(flow.loc["sessions recorded (sessions.tsv)", arm]) == (
            sessions["participant_id"].map(arm_of) == arm).sum()
    assert int(flow.loc["sessions failing motion QC", "total"]) == 1
    assert int(flow.loc["sessions modelled (imaging)", "total"]) == len(sessions) - 1
    failures = tables["qc-failures"]
    assert failures[["participant_id", "session_id", "excluded"]].values.tolist() == [
        [f"sub-{MOVED[0]}", f"ses-{MOVED[1]}", "yes"]]
    assert failures["qc_reason"].iloc[0].startswith("mean FD 0.")

    models = pd.read_csv(next(out.glob("group/*_desc-mixedlm.tsv")), sep="\t",
                         na_values=["n/a"])
    primary = tables["primary"]
    wanted = models[models["outcome"].isin(["nihss_motor", "fm_motor", "mi4a_ipsi_psc",
                                            "mi4p_ipsi_psc"])
                    & models["term"].str.startswith("arm:time")]
    assert len(primary) == len(wanted) > 0
    merged = primary.merge(wanted, on=["outcome", "analysis_set", "term"],
                           suffixes=("_page", ""))
    assert len(merged) == len(wanted)
    for column in ("estimate", "ci_low", "ci_high", "p_wald", "p_randomisation"):
        for shown, value in zip(merged[f"{column}_page"], merged[column], strict=True):
            assert shown == ("n/a" if pd.isna(value) else f"{value:.4g}"), column


def test_moved_session_is_flagged_and_absent_from_the_models(moved_trial):
    out = moved_trial / "out"
    table = pd.read_csv(next(out.glob(f"sub-{MOVED[0]}/ses-{MOVED[1]}/func/*_roimeasures.tsv")),
                        sep="\t")
    assert set(table["qc_status"]) == {"fail"}
    assert table["qc_mean_fd"].iloc[0] > 0.5
    still = pd.read_csv(next(out.glob("sub-01/ses-01/func/*_roimeasures.tsv")), sep="\t")
    assert set(still["qc_status"]) == {"pass"}
    models = pd.read_csv(next(out.glob("group/*_desc-mixedlm.tsv")), sep="\t")
    counts = models[models["term"] == "Intercept"].groupby("outcome")["n_observations"].max()
    assert counts["mi4a_ipsi_psc"] == 26, "the moved session's imaging is not modelled"
    assert counts["fm_motor"] == 27, "its clinical scores are"
    long = pd.read_csv(next(out.glob("group/*_desc-long.tsv")), sep="\t", dtype=str)
    moved = long[(long["participant_id"] == f"sub-{MOVED[0]}")
                 & (long["session_id"] == f"ses-{MOVED[1]}")]
    assert not moved["outcome"].str.startswith("mi4").any()


def test_session_report_shows_the_verdict_and_centroid_cuts(moved_trial, tmp_path):
    page = next((moved_trial / "out").glob(f"sub-{MOVED[0]}/ses-{MOVED[1]}/func/*_report.html"))
    dom, _ = _render(tmp_path, page)
    verdict = re.sub(r"<[^>]+>", "", re.search(r'<p id="qc-verdict">(.*?)</p>', dom).group(1))
    assert verdict.startswith("Motion QC: FAIL: mean FD 0.")
    assert "(limit 0.5 mm)" in verdict and "above 0.5 mm (limit 20%)" in verdict
    for heading in ("Framewise displacement", "Design matrix", "Contrast", "Registration"):
        assert f"<h2>{heading}" in dom
    cuts = [float(z) for z in re.search(r'<span id="cuts">([^<]*)</span>', dom).group(1)
            .split(", ")]
    assert cuts and all(40 < z < 75 for z in cuts), "cuts through MI-4a/4p, from the data"


def test_index_page_links_every_session_with_its_status(moved_trial):
    out = moved_trial / "out"
    index = (out / "index.html").read_text()
    links = re.findall(r'<li class="session"><a href="([^"]+)">', index)
    assert len(links) == 27 and all((out / link).exists() for link in links)
    assert index.count('class="fail">FAIL') == 1 and index.count('class="pass">PASS') == 26


def _run_in_pty(argv: list[str]) -> str:
    """Run the CLI with its standard output and error on a terminal; return what it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "hermesflow.cli.run", *argv],
                               stdin=follower, stdout=follower, stderr=follower,
                               env={**os.environ, "TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 600)
        if not ready:
            break
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=600)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_and_nothing_extra_with_quiet(moved_trial, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(moved_trial / "out", out)
    argv = [str(moved_trial / "bids"), str(out), "participant", "-w", str(moved_trial / "work"),
            "--skip-bids-validation", "--participant-label", "01", "--session-label", "01",
            "--config", str(moved_trial / "qc.toml")]
    printed = _run_in_pty(argv)
    lines = [line for line in printed.splitlines() if re.match(r"\[ ?\d+/\d+\] ", line)]
    assert len(lines) >= 8, printed
    assert re.match(r"\[ ?1/\d+\] .+: done in \d+\.\d s; elapsed \d+:\d\d, about", lines[0])
    assert "sub-01 ses-01" in printed
    assert _run_in_pty([*argv, "-q"]).strip() == ""
