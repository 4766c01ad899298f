"""``python -m workbench.app._server ARGS``: Voila with the app's settings.

- the websocket message limit as an integer (Voila's command line would pass a string);
- the ``workbench`` page template: Voila's ``lab`` template without its two Font Awesome stylesheets from a
  CDN, written at start into a private folder on ``JUPYTER_PATH``, so the page loads nothing from outside
  (the app uses no icons).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

#: Name of the page template.
TEMPLATE = "workbench"


def offline_template() -> Path:
    """Write the ``workbench`` template (Voila's ``lab`` one minus its CDN links).

    Return the folder to put on ``JUPYTER_PATH``.
    """
    from jupyter_core.paths import jupyter_path

    source = next((Path(p) / "lab" / "index.html.j2" for p in jupyter_path("voila", "templates")
                   if (Path(p) / "lab" / "index.html.j2").is_file()), None)  # fmt: skip
    if source is None:
        raise SystemExit("Voila's lab template was not found; reinstall voila")
    root = Path(tempfile.mkdtemp(prefix="workbench-voila-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    folder = root / "voila" / "templates" / TEMPLATE
    folder.mkdir(parents=True)
    lines = source.read_text().splitlines(keepends=True)
    (folder / "index.html.j2").write_text("".join(line for line in lines if "://cdn." not in line))
    (folder / "conf.json").write_text(json.dumps({"base_template": "lab"}))
    return root


def main(argv: list[str] | None = None) -> None:
    """Launch Voila with ``argv``, the offline template and a websocket message limit sized for uploads."""
    root = offline_template()
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("JUPYTER_PATH")) if p)
    from voila.app import Voila

    from workbench.app.upload import MAX_UPLOAD_BYTES

    # an upload travels over the kernel's websocket, base64 in JSON: room for the limit and a margin, so that
    # a file somewhat over it still arrives and gets its message instead of a dropped connection
    limit = 2 * MAX_UPLOAD_BYTES + (1 << 20)
    args = sys.argv[1:] if argv is None else argv
    Voila.launch_instance(argv=[*args, f"--template={TEMPLATE}"],
                          tornado_settings={"websocket_max_message_size": limit})  # fmt: skip


if __name__ == "__main__":
    main()
