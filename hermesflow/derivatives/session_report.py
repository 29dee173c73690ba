"""One session's report page: motion QC, the model, registration, the z map, the ROI table.

What a QC reviewer checks, top to bottom: the motion verdict against the configured limits and
the framewise-displacement trace; the design matrix and the contrast; the mean BOLD under the
template's edges with the lesion outline (registration); the z map at cuts through the ROIs'
own centroids (from the data, never fixed coordinates); the ROI measures.  Each figure is drawn
on its own: one that cannot be drawn becomes a line of text, never a missing page.
"""

from __future__ import annotations

import functools
import html
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.arrays import nonzero_box
from hermesflow.derivatives import slices
from hermesflow.derivatives.html import (
    PALETTE,
    escape,
    figure_uri,
    image,
    page,
    pyplot,
    table,
)
from hermesflow.derivatives.writing import mean_volume, read_map, read_whole, write_text

LOGGER = logging.getLogger("hermesflow")
Z_THRESHOLD = 3.1


@dataclass
class SessionFigures:
    """The optional inputs of the figures beyond the z map (absent ones are skipped).

    Attributes
    ----------
    qc
        The motion verdict (:meth:`hermesflow.preproc.qc.MotionQC.to_dict`).
    confounds
        fMRIPrep's confounds TSV (FD trace, dummy scans).
    design, contrast
        The GLM's design-matrix TSV and the contrast's formula.
    bold, lesion_mask, template
        Preprocessed BOLD, lesion mask in its space, and the template whose edges are drawn.
    """

    qc: dict | None = None
    confounds: str | None = None
    design: str | None = None
    contrast: str | None = None
    bold: str | None = None
    lesion_mask: str | None = None
    template: str | None = None
    glm: dict | None = None


def glm_line(glm: dict) -> str:
    """How many runs went into the session's model, and what each contributed."""
    runs = glm.get("runs") or []
    parts = [f"{Path(str(r.get('bold', ''))).name.split('_space-')[0] or 'run'}: "
             f"{r.get('n_volumes', '?')} volumes, {r.get('n_dummy', 0)} dummy"
             for r in runs]
    return (f"<p>Runs in the model: <b>{glm.get('n_runs', len(runs))}</b>"
            + (f" ({html.escape('; '.join(parts))})" if parts else "")
            + " — combined by fixed effects.</p>")


def qc_line(qc: dict) -> str:
    """The verdict as one HTML paragraph: PASS/FAIL, the numbers and the limits."""
    status = str(qc["status"])
    numbers = (f"mean FD {qc['mean_fd']:.2f} mm (limit {qc['max_mean_fd']:g} mm), max FD "
               f"{qc['max_fd']:.2f} mm, {100 * qc['fraction_above']:.1f}% of volumes above "
               f"{qc['fd_threshold']:g} mm (limit {100 * qc['max_fraction_above']:g}%)")
    reason = f" &mdash; {escape(qc['reason'])}" if qc.get("reason") else ""
    return (f'<p id="qc-verdict">Motion QC: <span class="{escape(status)}">'
            f"{escape(status.upper())}</span>: {escape(numbers)}{reason}.</p>")


def fd_figure(confounds: str, qc: dict | None) -> str:
    """Framewise displacement per volume, the threshold, the dummy scans shaded."""
    frame = pd.read_csv(confounds, sep="\t", na_values=["n/a"])
    fd = frame["framewise_displacement"].to_numpy(dtype=float)
    dummy = [c for c in frame.columns if c.startswith("non_steady_state_outlier")]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 2.2), layout="constrained")
    axis.plot(np.arange(len(fd)), fd, color="k", linewidth=0.8, label="FD")
    if qc is not None:
        axis.axhline(qc["fd_threshold"], color="tab:red", linestyle="--",
                     label=f"threshold {qc['fd_threshold']:g} mm")
    marked = (frame[dummy].fillna(0).to_numpy() > 0).any(axis=1) if dummy else []
    for volume in np.flatnonzero(marked):
        axis.axvspan(volume - 0.5, volume + 0.5, color="tab:orange", alpha=0.4, linewidth=0)
    if len(np.flatnonzero(marked)):
        axis.plot([], [], color="tab:orange", alpha=0.4, linewidth=6, label="dummy scans")
    axis.set_xlabel("volume")
    axis.set_ylabel("FD (mm)")
    axis.legend(fontsize=7, loc="upper right")
    return figure_uri(figure, tight=False)


def design_figure(design: str) -> str:
    """nilearn's design-matrix plot."""
    from nilearn import plotting

    matrix = pd.read_csv(design, sep="\t", index_col=0)
    figure, axis = pyplot().subplots(figsize=(7, 5), layout="constrained")
    plotting.plot_design_matrix(matrix, axes=axis)
    return figure_uri(figure, tight=False)


def contrast_figure(design: str, contrast: str) -> str:
    """The contrast's weight on each column of the design (nilearn's plot)."""
    from nilearn import plotting

    matrix = pd.read_csv(design, sep="\t", index_col=0)
    figure, axis = pyplot().subplots(figsize=(7, 1.4))
    plotting.plot_contrast_matrix(contrast, matrix, colorbar=False, axes=axis)
    axis.set_title(f"contrast: {contrast}", fontsize=9, pad=40)
    return figure_uri(figure)


def registration_figure(bold: str, template: str | None, lesion_mask: str | None) -> str:
    """The mean BOLD with the template brain's outline (red) and the lesion's (yellow).

    The cuts pass through the lesion's centroid when there is one (where a lesion-masked
    registration is most likely to go wrong), else through the image's centre.
    """
    from nilearn import plotting

    # Streamed volume by volume: the whole series as float was 1 GB and 1.5 s at 2 mm.
    mean = mean_volume(bold)
    lesion = nib.load(lesion_mask) if lesion_mask else None
    inside = np.asarray(lesion.dataobj) > 0 if lesion is not None else None
    cut = None
    if inside is not None and inside.any():
        cut = nib.affines.apply_affine(lesion.affine, np.argwhere(inside).mean(axis=0))
    display = plotting.plot_anat(mean, display_mode="ortho", cut_coords=cut, dim=-0.5,
                                 black_bg=False, colorbar=False,
                                 title="mean BOLD, template outline, lesion")
    if template:
        display.add_contours(template_brain(template), levels=[0.5], colors="r", linewidths=1)
    if cut is not None:
        display.add_contours(lesion, levels=[0.5], colors="y", linewidths=1.5)
    uri = figure_uri(display.frame_axes.figure, tight=False)
    display.close()
    return uri


@functools.lru_cache(maxsize=2)
def template_brain(template: str) -> nib.Nifti1Image:
    """The template's brain (0/1), cropped to it, read once per process.

    Its outline, not every gyrus, is what the registration figure draws: a shifted or scaled
    BOLD shows at the brain's border.  Every session a worker draws shares the one copy.
    """
    image = read_whole(template)
    brain = np.asarray(image.dataobj) > 0
    box = nonzero_box(brain, margin=2) or tuple(slice(0, n) for n in brain.shape)
    affine = image.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(image.affine, [part.start for part in box])
    return nib.Nifti1Image(brain[box].astype(np.uint8), affine)


def roi_centroids(roi_masks: dict[tuple[str, str], np.ndarray],
                  affine: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """World (mm) centroid of each non-empty ROI mask."""
    return {key: nib.affines.apply_affine(affine, np.argwhere(mask).mean(axis=0))
            for key, mask in roi_masks.items() if mask.any()}


def centroid_cuts(centroids: dict[tuple[str, str], np.ndarray], spacing: float) -> list[float]:
    """Axial cuts through the centroids, one per group closer than ``spacing`` mm."""
    cuts: list[float] = []
    for z in sorted(float(c[2]) for c in centroids.values()):
        if not cuts or z - cuts[-1] >= spacing:
            cuts.append(round(z, 1))
    return cuts


def zmap_figure(z_map: str, roi_masks: dict[tuple[str, str], np.ndarray],
                colours: dict[str, str], template: str | None = None) -> tuple[str, list[float]]:
    """The z map at axial cuts through the ROIs' centroids, with the ROI outlines, over
    ``template`` (the MNI brain), as HTML: an inline SVG drawn by
    :mod:`hermesflow.derivatives.slices` (this runs once per session and atlas), or, for a
    map on a grid that is not axis-aligned, nilearn's ``plot_stat_map`` as an image."""
    z_img = read_map(z_map)
    voxel = float(np.abs(np.diag(z_img.affine)[:3]).max())
    cuts = centroid_cuts(roi_centroids(roi_masks, z_img.affine), spacing=voxel)
    title = f"move > rest (z > {Z_THRESHOLD})"
    stat = slices.AxialGrid.from_image(z_img)
    if stat is None:
        return image(_nilearn_zmap(z_img, cuts, roi_masks, colours, title), "z map"), cuts
    if not cuts:
        # No ROI to centre on: four cuts spread over the map's height.
        top = stat.origin[2] + stat.zooms[2] * (stat.data.shape[2] - 1)
        cuts = [round(float(z), 1) for z in np.linspace(stat.origin[2], top, 6)[1:-1]]
    outlines: dict[str, list[np.ndarray]] = {}
    for (roi, _side), mask in roi_masks.items():
        outlines.setdefault(colours[roi], []).append(slices.ras(mask, z_img.affine))
    svg = slices.axial_svg(stat, cuts, Z_THRESHOLD, title, outlines,
                           slices.background(template) if template else None)
    return svg, cuts


def _nilearn_zmap(z_img, cuts: list[float], roi_masks: dict[tuple[str, str], np.ndarray],
                  colours: dict[str, str], title: str) -> str:
    from nilearn import plotting

    display = plotting.plot_stat_map(z_img, threshold=Z_THRESHOLD, display_mode="z",
                                     cut_coords=cuts or 4, black_bg=False, title=title)
    for (roi, _side), mask in roi_masks.items():
        if mask.any():
            display.add_contours(nib.Nifti1Image(mask.astype(np.uint8), z_img.affine),
                                 levels=[0.5], colors=colours[roi], linewidths=1)
    uri = figure_uri(display.frame_axes.figure)
    display.close()
    return uri


def roi_wide_table(roi_table: pd.DataFrame) -> pd.DataFrame:
    """One row per ROI x hemisphere, one column per measure (lesion counts among them), in
    the order the long table gives them (a missing measure is NaN).  Built from plain dicts:
    pandas' ``pivot_table`` took longer than the rest of an atlas's page."""
    rows: dict[tuple, dict[str, float]] = {}
    measures: dict[str, None] = {}
    for roi, hemi, side, measure, value in zip(roi_table["roi"], roi_table["hemi"],
                                               roi_table["side"], roi_table["measure"],
                                               roi_table["value"], strict=True):
        rows.setdefault((roi, hemi, side), {})[measure] = value
        measures.setdefault(measure, None)
    return pd.DataFrame([[*key, *(values.get(m, np.nan) for m in measures)]
                         for key, values in rows.items()],
                        columns=["roi", "hemi", "side", *measures])


def _section(heading: str, draw, *args) -> str:
    """A titled figure; a figure that fails is reported in the page, not raised."""
    try:
        return f"<h2>{escape(heading)}</h2>{image(draw(*args), heading)}"
    except Exception as err:  # noqa: BLE001 - the numbers must not wait for a drawing
        LOGGER.warning("report: %s not drawn: %s", heading, err)
        return (f"<h2>{escape(heading)}</h2><p class=\"note\">not drawn: "
                f"{escape(type(err).__name__)}: {escape(err)}</p>")


def session_figures_html(figures: SessionFigures) -> str:
    """The atlas-independent top of the page: QC verdict, runs, FD, contrast, design,
    registration.  Drawn once per session and reused by every atlas's page."""
    body = qc_line(figures.qc) if figures.qc else ""
    if figures.glm:
        body += glm_line(figures.glm)
    if figures.confounds:
        body += _section("Framewise displacement", fd_figure, figures.confounds, figures.qc)
    if figures.design:
        if figures.contrast:
            body += _section("Contrast", contrast_figure, figures.design, figures.contrast)
        body += _section("Design matrix", design_figure, figures.design)
    if figures.bold:
        body += _section("Registration: mean BOLD over the template", registration_figure,
                         figures.bold, figures.template, figures.lesion_mask)
    return body


def session_report(path: str | Path, *, title: str, z_map: str,
                   roi_masks: dict[tuple[str, str], np.ndarray], roi_table: pd.DataFrame,
                   lesion_side: str, figures: SessionFigures | None = None,
                   header: str | None = None, template: str | None = None) -> Path:
    """Write one session's report page.

    Parameters
    ----------
    roi_masks
        ``(roi, side) -> mask`` on the z map's grid (inside the brain).
    roi_table
        The session's ROI measures (long: roi, hemi, side, measure, value).
    figures
        The inputs of the QC, design and registration figures; without them the page shows
        the z map and the ROI table only.
    header
        Those figures already drawn (:func:`session_figures_html`, cached per session); when
        given, ``figures`` is not used.
    template
        The background of the z map (the MNI brain); without it the map is drawn alone.
    """
    rois = sorted({roi for roi, _side in roi_masks})
    colours = {roi: PALETTE[i % len(PALETTE)] for i, roi in enumerate(rois)}
    body = header if header is not None else session_figures_html(figures or SessionFigures())
    cuts: list[float] = []
    if template is None and figures is not None:
        template = figures.template
    try:
        zmap, cuts = zmap_figure(z_map, roi_masks, colours, template)
    except Exception as err:  # noqa: BLE001 - the table below is still worth having
        LOGGER.warning("report: z map not drawn: %s", err)
        zmap = f'<p class="note">z map not drawn: {escape(err)}</p>'
    legend = ", ".join(f"{escape(roi)} {colours[roi].removeprefix('tab:')}" for roi in rois)
    cut_text = ", ".join(f"{z:g}" for z in cuts)
    body += (f"<h2>z map</h2><p>Lesion side: <b>{escape(lesion_side)}</b>; outlines: "
             f"{legend}; axial cuts through the ROI centroids at z = "
             f"<span id=\"cuts\">{cut_text}</span> mm.</p>{zmap}"
             f"<h2>ROI measures</h2>"
             f"<div class=\"wide\">{table(roi_wide_table(roi_table), table_id='roi')}</div>")
    # Drawn in a node's folder (a cache); the sink copies it to OUTPUT_DIR and flushes it.
    return write_text(path, page(title, body), sync=False)
