"""Where a figure or a notebook came from: package version, the dependency lock's hash, the seed.

``constraints.txt`` at the repository root pins every dependency that ``make setup`` installs; its SHA-256
(first 12 hex digits) names the environment. :func:`stamp` writes one line that figures' CSVs and the
notebooks record, so a figure made today can be remade bit-for-bit from the same commit, lock and seed.
"""

from __future__ import annotations

import hashlib
import platform
from functools import cache
from importlib import metadata
from pathlib import Path

#: The lock file, when the package runs from a checkout (an installed wheel has none).
LOCK_FILE = Path(__file__).resolve().parents[1] / "constraints.txt"


@cache
def lock_hash() -> str:
    """First 12 hex digits of the SHA-256 of ``constraints.txt``, or ``"unlocked"`` when there is none."""
    if not LOCK_FILE.is_file():
        return "unlocked"
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:12]


def version() -> str:
    """Return the installed ``workbench`` version."""
    try:
        return metadata.version("workbench")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def provenance(seed: int | str | None = None) -> dict[str, str]:
    """Return the package version, lock hash, Python version and ``seed``.

    ``seed`` is ``"-"`` when the result has none, or a string such as ``"per call"`` where a notebook passes its
    seeds call by call.

    Returns
    -------
    dict
        Keys ``workbench``, ``lock_sha256``, ``python``, ``seed``.
    """
    return {
        "workbench": version(),
        "lock_sha256": lock_hash(),
        "python": platform.python_version(),
        "seed": "-" if seed is None else str(seed),
    }


def stamp(seed: int | str | None = None) -> str:
    """One line: ``workbench 0.1.0 · lock sha256 1a2b3c4d5e6f · Python 3.11.7 · seed 0``."""
    p = provenance(seed)
    return (f"workbench {p['workbench']} · lock sha256 {p['lock_sha256']} · Python {p['python']} · "
            f"seed {p['seed']}")  # fmt: skip
