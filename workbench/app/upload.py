"""Trace uploads of the web app: size-limited, parsed from memory, never stored under the user's file name.

The browser sends the file's bytes; :func:`parse_upload` checks the size and the extension, writes the bytes to
a private temporary file whose name the app chooses (in ``/dev/shm``, i.e. memory, where it exists), loads it
with :func:`workbench.traces.load` and deletes it at once. The user's file name is used only as the trace's
display name, after stripping everything but letters, digits, ``-``, ``_`` and ``.``. Any problem is one
:class:`~workbench.errors.WorkloadError` whose message names the upload (never the temporary path), for the
page to show.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError, WorkloadError
from workbench.traces.schema import Trace

#: Largest accepted upload (bytes); override with ``WORKBENCH_APP_MAX_UPLOAD_MB``.
MAX_UPLOAD_BYTES = int(float(os.environ.get("WORKBENCH_APP_MAX_UPLOAD_MB", "50")) * 1024 * 1024)
#: File kinds :func:`workbench.traces.load` reads.
EXTENSIONS = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet")
_MEMORY_DIR = Path("/dev/shm")


def display_name(filename: str) -> str:
    """Return the upload's name as shown in the page: the base name's stem, reduced to safe characters."""
    stem = Path(filename.replace("\\", "/")).name
    for ext in EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "upload"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


def parse_upload(filename: str, content: bytes, *, limit: int | None = None) -> Trace:
    """Load an uploaded trace from its bytes.

    Parameters
    ----------
    filename
        The name the browser gave (only its extension and a sanitised stem are used).
    content
        The file's bytes.
    limit
        Largest accepted size in bytes (default :data:`MAX_UPLOAD_BYTES`).

    Returns
    -------
    Trace
        The validated trace, named after the upload.

    Raises
    ------
    WorkloadError
        Too large, empty, an unsupported extension, or anything :func:`~workbench.traces.load` rejects; the
        message names the upload.
    """
    limit = MAX_UPLOAD_BYTES if limit is None else limit
    name = display_name(filename)
    suffix = Path(filename).suffix.lower()
    if len(content) > limit:
        raise WorkloadError(
            f"upload is {_size(len(content))}; the limit is {_size(limit)} "
            "(set WORKBENCH_APP_MAX_UPLOAD_MB to change it, or use the Python API for large traces)",
            file=filename,
        )
    if not content:
        raise WorkloadError("upload is empty", file=filename)
    if suffix not in EXTENSIONS:
        kinds = ", ".join(EXTENSIONS)
        raise WorkloadError(
            f"unsupported file type {suffix or '(none)'!r}; upload one of {kinds}", file=filename
        )
    from workbench import traces

    where = _MEMORY_DIR if _MEMORY_DIR.is_dir() and os.access(_MEMORY_DIR, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="workbench-upload-", dir=where) as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(content)
        try:
            return traces.load(path, name=name)
        except WorkbenchError as exc:
            raise WorkloadError(str(exc).replace(str(path), filename).replace(tmp, "")) from None
        except Exception as exc:  # a reader's own error on garbage input: still one message, no traceback
            raise WorkloadError(
                f"could not read the upload: {type(exc).__name__}: {exc}", file=filename
            ) from None
