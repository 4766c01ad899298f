"""Locations of the data files shipped with the workbench (``data/`` at the repository root)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: Folder of small shipped files (GPU table, model zoo, sites, default trace). Override with
#: ``WORKBENCH_SHIPPED_DATA`` when the package is installed outside its source tree.
DATA_DIR = Path(os.environ.get("WORKBENCH_SHIPPED_DATA", PACKAGE_DIR.parent / "data"))


def data_path(name: str) -> Path:
    """Return the path of a shipped data file, with a clear error when it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        from workbench.errors import WorkbenchError

        raise WorkbenchError(
            f"shipped data file {name!r} not found in {DATA_DIR}; "
            "set WORKBENCH_SHIPPED_DATA to the repo's data/ folder"
        )
    return path
