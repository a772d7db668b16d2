"""The command line's numbers and output folder, checked before anything starts.

A bad one is one line and exit status 1 (as a bad file is), not an embedded farm with no
worker that waits for ever (``--workers 0``), a recording cut into nonsense
(``--segment-seconds -1``) or a traceback once the whole job has run (``--out`` naming a file).
"""

from __future__ import annotations

import math
from pathlib import Path


def option_problem(args) -> str | None:
    """What is wrong with the options of ``process``, ``watch`` or ``up``, or None. Options a
    command does not have are skipped (argparse leaves them out of ``args``)."""
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        return f"--workers must be at least 1 (got {workers})"
    for option, seconds in (("--segment-seconds", getattr(args, "segment_seconds", None)),
                            ("--for", getattr(args, "seconds", None))):
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            return f"{option} must be a positive number of seconds (got {seconds:g})"
    port = getattr(args, "port", None)
    if port is not None and not 1 <= port <= 65535:
        return f"--port must be a TCP port, 1 to 65535 (got {port})"
    out: Path | None = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():
        return f"{out}: not a folder (--out names the folder the results are written to)"
    return None


def make_out_folder(out: Path) -> str | None:
    """Makes ``--out`` (before any job is queued: a folder that cannot be made must not cost a
    whole job's run first); returns why it cannot be made, or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{out}: cannot make the output folder ({error.strerror or error})"
    return None
