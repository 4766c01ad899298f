"""``python -m workbench.app._server ARGS``: Voila with the app's tornado settings (integers, which Voila's
command line would pass as strings)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Launch Voila with ``argv`` and a websocket message limit sized for uploads."""
    from voila.app import Voila

    from workbench.app.upload import MAX_UPLOAD_BYTES

    # an upload travels over the kernel's websocket, base64 in JSON: room for the limit and a margin, so that
    # a file somewhat over it still arrives and gets its message instead of a dropped connection
    limit = 2 * MAX_UPLOAD_BYTES + (1 << 20)
    Voila.launch_instance(argv=sys.argv[1:] if argv is None else argv,
                          tornado_settings={"websocket_max_message_size": limit})  # fmt: skip


if __name__ == "__main__":
    main()
