"""The web app: the explorers of the notebooks on one page, served by Voila (``make app``, ``workbench app``).

:func:`command` builds the Voila command line and :func:`serve` runs it. Safe by default: it listens on
127.0.0.1 only (``expose=True`` / ``--expose`` listens on every interface, with a warning), serves no static
files but the page's own, never shows tracebacks, and takes uploads up to
:data:`~workbench.app.upload.MAX_UPLOAD_BYTES` parsed from memory (:mod:`workbench.app.upload`). Each visitor
gets a kernel of their own, so a malformed or oversized upload shows its error in that page while the app
keeps serving everyone else. The page itself is :mod:`workbench.app.ui`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The notebook Voila renders (one cell: ``workbench.app.ui.build()``).
NOTEBOOK = Path(__file__).with_name("workbench_app.ipynb")
#: Default port.
PORT = 8866


def command(port: int = PORT, *, expose: bool = False, open_browser: bool = False) -> list[str]:
    """Return the Voila command line serving the app on ``port`` (localhost unless ``expose``)."""
    from workbench.config import require_int

    require_int("port", port)
    return [
        sys.executable, "-m", "workbench.app._server", str(NOTEBOOK),
        f"--port={port}",
        f"--Voila.ip={'0.0.0.0' if expose else '127.0.0.1'}",
        "--Voila.open_browser=" + ("True" if open_browser else "False"),
        "--VoilaConfiguration.file_allowlist=(?!)",  # no static files from the package folder
        "--VoilaConfiguration.show_tracebacks=False",
        "--theme=light",
    ]  # fmt: skip


def serve(port: int = PORT, *, expose: bool = False, open_browser: bool = False) -> int:
    """Run the app until interrupted; return Voila's exit code."""
    if expose:
        print("warning: --expose listens on every network interface; anyone who can reach this machine "
              "can use the app and its CPU", file=sys.stderr)  # fmt: skip
    print(f"workbench app: http://{'<this-host>' if expose else '127.0.0.1'}:{port}/  (Ctrl-C stops it)")
    try:
        return subprocess.call(command(port, expose=expose, open_browser=open_browser))
    except KeyboardInterrupt:
        return 0
