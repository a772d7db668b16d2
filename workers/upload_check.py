"""``python -m workers.upload_check PATH LIMITS_JSON``: ``media.check_upload`` in a process of
its own. The web process runs it as a child so that it never loads PyAV (or FFmpeg's decoders)
itself, and a file crafted to crash a demuxer takes down only this child. Prints one JSON line:
``{"error": null}`` or ``{"error": "one-line reason"}``."""

from __future__ import annotations

import json
import sys

from workers import media


def main(argv: list[str]) -> int:
    path, limits = argv[0], media.Limits(**json.loads(argv[1]))
    try:
        media.check_upload(path, limits)
    except media.MediaError as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    print(json.dumps({"error": None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
