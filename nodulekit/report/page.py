"""The report as one HTML string: inline CSS, images as base64 PNG, no script, no link out.

Every value that comes from a file (a table, a config, a checkpoint) passes through `esc`
(`html.escape`), so markup in a file name or a config value is shown, never run.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1100px;
color:#1d1d1f;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.limits{background:#fff4e5;border:1px solid #f0b35a;padding:.6em 1em;border-radius:6px}
.trust{background:#eef5ff;border-left:4px solid #3b7dd8;padding:.4em .8em;margin:.5em 0}
.trust.fail{background:#fdecea;border-left-color:#c62828}
.planes{display:flex;gap:8px;flex-wrap:wrap;align-items:flex-start}
.planes figure{margin:0}.planes figcaption{font-size:.85em;color:#555}
img{image-rendering:pixelated;max-width:100%}.muted{color:#666;font-size:.9em}
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def img(png: bytes, alt: str, *, width: int | None = None) -> str:
    """An ``<img>`` holding the PNG itself (a ``data:`` URI: the file opens offline)."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{int(width)}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{size}>'


def table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = ()
) -> str:
    """A plain ``<table>``; the columns ``numeric`` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(v)}</td>' if i in numeric else f"<td>{esc(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def mm(value: Any) -> str:
    """A length in mm with one decimal, or "not available"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "not available"
    return f"{number:.1f}" if math.isfinite(number) else "not available"


@dataclass
class FindingView:
    """The pictures and words of one explained finding."""

    rank: int
    context_png: list[tuple[str, bytes]] = field(default_factory=list)
    plain_png: bytes = b""
    heat_png: bytes = b""
    colorbar_png: bytes = b""
    legend: str = ""


def findings_section(findings: pd.DataFrame, threshold: float | None) -> str:
    """The ranked findings table (rank links to the finding's pictures)."""
    if findings.empty:
        return "<p>The detector proposed no candidate in this scan's lungs.</p>"
    rows = []
    for f in findings.itertuples(index=False):
        above = (
            "not available"
            if threshold is None
            else ("yes" if f.probability >= threshold else "no")
        )
        rows.append((int(f.rank), f"{f.coordX:.1f}, {f.coordY:.1f}, {f.coordZ:.1f}", f.side, f.lobe,
                     mm(f.diameter_mm), f"{f.probability:.3f}", above))  # fmt: skip
    limit = "not available" if threshold is None else f"{threshold:.3f}"
    sources = ", ".join(sorted(set(findings["diameter_source"].astype(str))))
    return (
        table(
            [
                "rank",
                "position x, y, z (mm, LPS)",
                "lung side",
                "lobe",
                "diameter (mm)",
                "probability",
                f"above the validation threshold ({limit})",
            ],
            rows,
            numeric=(0, 4, 5),
        )
        + f'<p class="muted">Diameter from: {esc(sources)}. Positions are world coordinates of '
        "the scan (LPS: x grows to the patient's left, y to the back, z to the head). Side is "
        "read against the body's midline on the finding's slice. Probability is the model's "
        "score that the region looks like an annotated nodule of its training data, not a "
        "risk of cancer.</p>"
    )


def finding_block(
    view: FindingView, row: Any, method: str, status: str, passed: bool | None
) -> str:
    """One finding: three whole-scan planes through it, then its crop without and with the map."""
    context = "".join(
        f"<figure>{img(png, f'{plane} slice through finding {view.rank}', width=300)}"
        f"<figcaption>{esc(plane)}</figcaption></figure>"
        for plane, png in view.context_png
    )
    css = "trust" if passed is not False else "trust fail"
    side = f"{row.side} side" if row.side in ("left", "right") else row.side
    return (
        f'<h3 id="finding-{view.rank}">Finding {view.rank}: probability {row.probability:.3f}, '
        f"{esc(side)}, {esc(row.lobe)}</h3>"
        f'<div class="planes">{context}</div>'
        '<p class="muted">Whole slices through the finding (dotted cross: its centre; circle: its '
        "estimated size), superior up, patient's right on the left of axial and coronal images."
        "</p>"
        '<div class="planes">'
        f"<figure>{img(view.plain_png, f'finding {view.rank} without heat map')}"
        "<figcaption>around the finding: axial | coronal | sagittal</figcaption></figure>"
        f"<figure>{img(view.heat_png, f'finding {view.rank} with heat map')}"
        f"<figcaption>the same, with the {esc(method)} heat map over the "
        "crop the model saw</figcaption></figure>"
        "</div>"
        f"<p>{img(view.colorbar_png, 'colour bar', width=256)}<br>"
        f'<span class="muted">{esc(view.legend)}</span></p>'
        f'<div class="{css}"><b>Can this heat map be trusted?</b> {esc(status)}</div>'
    )


def page(title: str, sections: Sequence[tuple[str, str]], *, header: str) -> str:
    """The whole document: a title, a header paragraph, then ``(heading, html)`` sections."""
    body = "".join(
        (f'<h2 id="{esc(anchor_of(h))}">{esc(h)}</h2>' if h else "") + content
        for h, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{header}{body}</body></html>\n"
    )


def anchor_of(heading: str) -> str:
    """A fragment name for a heading: lowercase words joined by dashes."""
    return "-".join("".join(c if c.isalnum() else " " for c in heading.lower()).split())
