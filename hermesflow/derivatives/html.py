"""The skeleton every hermesflow page shares: one stylesheet, tables, figures as data URIs.

Pages are self-contained (figures embedded as PNG data URIs, no scripts, no network), so they
open from a cluster's file system, travel by e-mail, and render the same in any browser.
matplotlib is imported only by the functions that draw, so building a page's text (the index)
costs no plotting import.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from hermesflow import __version__

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
img { max-width: 100%; }
div.wide { overflow-x: auto; }
.note { color: #666; font-size: 0.85em; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #b42318; font-weight: bold; }
"""
# ROI outline colours, given in ROI name order (matplotlib's tab10 without red and grey, which
# the z map and the control arm use).
PALETTE = ("tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan")
# Colours of the trial's arms in every group figure.
ARM_COLOURS = {"msc": "tab:red", "control": "tab:gray"}


def escape(value: object) -> str:
    return html.escape(str(value))


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_uri(figure, tight: bool = True) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed).

    ``tight`` crops the figure to its content, which costs a second drawing of it; figures
    laid out when made (``layout="constrained"``) do not need it.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight" if tight else None)
    pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image(uri: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="{uri}">'


def cell(value: object, digits: int = 3) -> str:
    """One table cell: numbers right-aligned with ``digits`` significant digits, text left."""
    if isinstance(value, (float, np.floating)):
        text = "n/a" if np.isnan(value) else f"{value:.{digits}g}"
        return f"<td>{text}</td>"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"<td>{value}</td>"
    return f'<td class="text">{escape(value)}</td>'


def table(frame: pd.DataFrame, digits: int = 3, table_id: str | None = None) -> str:
    """An HTML table of ``frame`` (its index is not shown)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = ["<tr>" + "".join(cell(v, digits) for v in record) + "</tr>"
            for record in frame.itertuples(index=False)]
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return (f"<table{ident}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def link(target: str | Path, text: str, start: str | Path) -> str:
    """A relative link from the folder ``start`` to ``target`` (pages move with OUTPUT_DIR)."""
    href = Path(os.path.relpath(target, start)).as_posix()
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def page(title: str, body: str) -> str:
    """A whole HTML document with the shared stylesheet."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}"
            f"<p class=\"note\">hermesflow {__version__}</p></body></html>\n")
