"""The HTML reports open in a real browser (headless Chromium) and show what they claim."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium not installed (.ci/setup-chromium.sh does)")


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def _render(tmp_path, page) -> tuple[str, np.ndarray]:
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    shot = tmp_path / "shot.png"
    # The virtual-time budget lets the page's images decode before the shot is taken (without
    # it a shot of a figure-heavy page sometimes caught the text alone), and every compositor
    # stage runs before the shot is drawn (with the budget alone, a loaded CI machine still
    # once caught the group page with a few of its figures).
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400",
              "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
              page.as_uri())
    return dom, imread(shot)


def _colourful(pixels: np.ndarray) -> int:
    """Distinct colours in a screenshot: text alone gives a few dozen, figures thousands."""
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(rgb, axis=0))


def test_group_report_renders(effect_trial, tmp_path):
    page = effect_trial.out / "group" / "task-passivewrist_atlas-juelich_desc-report.html"
    dom, pixels = _render(tmp_path, page)
    assert "arm:time[ses-24]" in dom and "mi4p_ipsi_psc" in dom
    assert dom.count('alt="trajectory ') == 4, "one trajectory figure per reported outcome"
    assert dom.count("<img") == 5, "and the forest plot"
    assert "Trial flow" in dom and 'id="primary"' in dom
    assert f"{effect_trial.spec.participants} participants" in dom
    assert "Safety" in dom
    assert _colourful(pixels) > 500


def test_session_report_renders(effect_trial, tmp_path):
    func = effect_trial.out / "sub-02" / "ses-24" / "func"
    page = next(func.glob("*_report.html"))
    dom, pixels = _render(tmp_path, page)
    assert "ROI measures" in dom and "mi4p" in dom and "ipsi" in dom
    assert 'src="data:image/png;base64,' in dom
    assert _colourful(pixels) > 500
