"""`nodulekit app`: the explanation explorer as a standalone web page, served by Voilà.

Voilà runs a notebook and shows only its widgets, never its code (``--strip_sources``, its
default), in a page of its own. It is the Jupyter project's own server for notebooks as apps:
it uses the same kernels and the same ipywidgets 8 front end as JupyterLab 4 (so every
nodulekit widget works unchanged, ipyniivue included), ships its JavaScript in the wheel (the
page opens with no network), and is one ``pip install`` (the ``app`` extra). Panel or
Streamlit would need the widgets rewritten in their own toolkits.

The notebook (``app.ipynb`` beside this module) holds two lines: it builds
`nodulekit.widgets.report_app.ReportApp` from the environment variables this launcher sets
(`ROOT_VARIABLE`, `CHECKPOINT_VARIABLE`). The server is bound to 127.0.0.1 unless told
otherwise: a kernel runs code, so the page is for this machine only by default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nodulekit.errors import NodulekitError

NOTEBOOK = Path(__file__).with_name("app.ipynb")
ROOT_VARIABLE = "NODULEKIT_APP_ROOT"
CHECKPOINT_VARIABLE = "NODULEKIT_APP_CHECKPOINT"
REPORTS_VARIABLE = "NODULEKIT_APP_REPORTS"


@dataclass(frozen=True)
class AppInputs:
    """What the app shows: the scans of ``data`` (a LUNA16 root) scored by ``checkpoint``."""

    data: Path
    checkpoint: Path


def resolve_inputs(root: str | os.PathLike, checkpoint: str | os.PathLike | None) -> AppInputs:
    """The LUNA16 root and checkpoint of ``root``: a LUNA16 root (``checkpoint`` needed), or a
    ``nodulekit demo`` folder (``data/`` and ``run/best.pt`` inside it)."""
    from nodulekit.data.luna16 import is_luna16_root

    root = Path(root).expanduser()
    if not root.is_dir():
        raise NodulekitError(f"{root}: no such folder; give a LUNA16 root or a demo folder")
    data = root if is_luna16_root(root) else root / "data"
    if not is_luna16_root(data):
        raise NodulekitError(
            f"{root}: neither a LUNA16 root (annotations.csv, subsetN/) nor a demo folder "
            "(data/ and run/best.pt); run `nodulekit demo` or give a LUNA16 root"
        )
    chosen = Path(checkpoint).expanduser() if checkpoint else root / "run" / "best.pt"
    if not chosen.is_file():
        raise NodulekitError(
            f"{chosen}: no checkpoint there; give --checkpoint RUN/best.pt (a trained classifier)"
        )
    return AppInputs(data=data.resolve(), checkpoint=chosen.resolve())


def voila_command(host: str, port: int, *, notebook: Path = NOTEBOOK) -> list[str]:
    """The Voilà command line: no browser opened, sources stripped, bound to ``host``."""
    return [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", "--strip_sources=True",
        f"--Voila.ip={host}", f"--port={int(port)}", "--Voila.port_retries=0",
        "--theme=light", "--show_tracebacks=False",
    ]  # fmt: skip


def serve(
    root: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8866,
    reports: str | os.PathLike | None = None,
) -> int:
    """Run the app until interrupted (Ctrl-C); returns Voilà's exit status."""
    import importlib.util

    if importlib.util.find_spec("voila") is None:
        raise NodulekitError(
            "the app needs Voilà: pip install 'nodulekit[app]' (or pip install voila)"
        )
    inputs = resolve_inputs(root, checkpoint)
    env = {
        **os.environ,
        ROOT_VARIABLE: str(inputs.data),
        CHECKPOINT_VARIABLE: str(inputs.checkpoint),
        REPORTS_VARIABLE: str(Path(reports or Path.cwd() / "nodulekit-reports").resolve()),
    }
    if not NOTEBOOK.is_file():  # pragma: no cover - a broken installation
        raise NodulekitError(f"{NOTEBOOK}: the app's notebook is missing; reinstall nodulekit")
    process = subprocess.Popen(voila_command(host, port), env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
