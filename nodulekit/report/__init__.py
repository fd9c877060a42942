"""The per-scan report for a clinician: one self-contained HTML file, and the app around it.

- `build_report(scan, checkpoint=..., out=...)`: ranked findings with position, lung side,
  lobe where a lobe map tells it, size and probability; key slices with and without the heat
  map and its trust status; the model's validation figures and training data; intended use
  and limits. Images are embedded; the file opens offline.
- `nodulekit.report.app`: the explorer as a standalone page (``nodulekit app``, Voilà).

The report computes no metric itself: it calls `nodulekit.evaluate`, `nodulekit.explain` and
`nodulekit.viz`. Names load on first use (``import nodulekit.report`` imports no torch).
"""

from __future__ import annotations

from nodulekit._lazy import lazy_exports

_LAZY = {
    "build_report": "nodulekit.report.build",
    "Report": "nodulekit.report.build",
    "explain_findings": "nodulekit.report.build",
    "findings_table": "nodulekit.report.findings",
    "marks_of_scan": "nodulekit.report.findings",
    "lung_side": "nodulekit.report.anatomy",
    "lobe_at": "nodulekit.report.anatomy",
    "model_facts": "nodulekit.report.model_card",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
