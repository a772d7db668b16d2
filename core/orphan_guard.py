"""Children that die with the process that started them, however it dies.

A command that starts processes (``vidfarm up``, ``vidfarm process``) stops them on its way out
(``cli/signals.py``), but a command killed outright (SIGKILL, the OOM killer, a crash) has no
way out: its redis-server would keep its port and data folder, its web app, beat, Flower and
autoscaler would run on. Linux sends a child a signal of its choice when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), a setting that survives ``exec``; ``guarded(args)`` is the
command line that runs ``args`` with it set:

    python -I -S core/orphan_guard.py PARENT_PID SIGNAL -- ARGS...

sets the death signal, checks that its parent is still ``PARENT_PID`` (a parent that died
between the fork and the ``prctl`` sent no signal: the child ends at once instead), then
becomes ``ARGS`` (``exec``: same pid, same session, the command line that ``ps`` shows).

Why this and not the alternatives: ``subprocess``'s ``preexec_fn`` is unsafe in a parent with
threads (the CLI has the progress bar's, the autoscaler its metrics server's) and makes Python
fork instead of using vfork; ``setpriv --pdeathsig`` (util-linux) cannot make the parent check.
It costs one interpreter start before the exec (isolated, without site: less than a bare
``python -c pass``).

The signal comes when the *thread* that started the child ends, not the process: start guarded
children from the main thread (the CLI and the autoscaler do), or from a thread that lives as
long as the process. A child started from a thread that ends gets its signal then.
Elsewhere than Linux ``guarded`` returns ``args`` unchanged.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guarded(args: list[str], sig: int = signal.SIGTERM) -> list[str]:
    """The command line running ``args`` as a child that gets ``sig`` when this process dies
    (or the thread starting it ends, see above). Run it from the process that will be its
    parent (its pid goes on the command line)."""
    if not sys.platform.startswith("linux"):
        return list(args)
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), str(int(sig)), "--", *args]


def die_with_parent(sig: int, parent: int) -> bool:
    """Get ``sig`` when the parent dies. False when ``parent`` is no longer our parent: it
    died before the death signal was set, which then never comes. (Not on Linux: nothing to
    set, only the check.)"""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)    # libc's, already loaded
    except (OSError, AttributeError):
        pass
    return os.getppid() == parent


def main(argv: list[str]) -> int:
    """``PARENT_PID SIGNAL -- ARGS...``: see the module's docstring."""
    if len(argv) < 4 or argv[2] != "--":
        print("usage: orphan_guard.py PARENT_PID SIGNAL -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    parent, sig, args = int(argv[0]), int(argv[1]), argv[3:]
    if not die_with_parent(sig, parent):
        return 1    # orphaned already: the command must not start at all
    # What subprocess restores for a command it starts (restore_signals): Python ignores these
    # at its start, and an ignored signal stays ignored across exec.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvp(args[0], args)
    except OSError as error:
        print(f"orphan_guard: cannot run {args[0]}: {error}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
