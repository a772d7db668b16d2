"""The command line's numbers and output folder, checked before anything starts.

A bad one is one line and exit status 1 (as a bad file is), not an embedded farm with no
worker that waits for ever (``--workers 0``), a recording cut into nonsense
(``--segment-seconds -1``) or a traceback once the whole job has run (``--out`` naming a file).
"""

from __future__ import annotations

import errno
import math
import socket
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


def taken_port_problem(ports: list[tuple[str, str, int, str]]) -> str | None:
    """``vidfarm up``'s ports, ``(what, host, port, how to choose another)`` each: why one
    cannot be listened on, or None. Checked before anything starts: a taken one used to start
    the whole farm, print its banner (and a new admin's password) and then end with
    "farm process exited: web"."""
    for what, host, port, other in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            # As the servers themselves bind: a port left in TIME_WAIT by a stopped farm is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except socket.gaierror as error:      # a host name that does not resolve
                return _not_this_machine(what, host, port, error)
            except OSError as error:
                if error.errno == errno.EADDRNOTAVAIL:    # an address, not one of this machine's
                    return _not_this_machine(what, host, port, error)
                return (f"{what} port {host}:{port} cannot be used ({error.strerror or error}): "
                        f"another `vidfarm up` or another server has it; choose another with {other}")
    return None


def _not_this_machine(what: str, host: str, port: int, error: OSError) -> str:
    """Only the web app's host is a setting (Flower listens on 127.0.0.1): no port would do."""
    return (f"{what} address {host}:{port} cannot be listened on ({error.strerror or error}): "
            f"not an address of this machine; set VIDFARM_WEB_HOST to one")
