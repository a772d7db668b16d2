"""A child started through ``core.orphan_guard`` gets its signal when its parent dies, however
the parent dies; it is the command itself (same pid, signals as subprocess leaves them); and a
parent that died before the death signal was set never gets the command started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from core.orphan_guard import guarded
from tests.conftest import repo_root
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# Writes the name of the signal that ends it to argv[1] (after "ready"), then waits.
CHILD = """
import signal, sys, time
out = sys.argv[1]
def note(signum, _frame):
    open(out, "a").write(signal.Signals(signum).name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, note)
open(out, "a").write("ready\\n")
time.sleep(60)
"""

# Starts CHILD guarded with argv[2] as its death signal, prints its pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
from core.orphan_guard import guarded
child = subprocess.Popen(guarded([sys.executable, "-c", sys.argv[1], sys.argv[3]], int(sys.argv[2])))
print(child.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE     # its new parent may not reap it
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_guarded_child_gets_its_signal_when_its_parent_is_killed(tmp_path, sig):
    notes = tmp_path / "notes"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(int(sig)), str(notes)],
                              stdout=subprocess.PIPE, text=True, cwd=repo_root())
    child = None
    try:
        child = int(parent.stdout.readline())
        wait_until(lambda: notes.exists() and "ready" in notes.read_text(), 10, "the child started")
        parent.kill()      # no clean-up of its own: only the kernel can tell the child
        parent.wait()
        wait_until(lambda: gone(child), 10, "the child ended with its parent")
        # SIGTERM reaches the child's handler (its graceful path); SIGKILL leaves no note.
        assert notes.read_text().split() == (["ready", "SIGTERM"] if sig == signal.SIGTERM else ["ready"])
    finally:
        parent.kill()
        parent.stdout.close()
        if child is not None and not gone(child):     # a failed test leaves nothing either
            psutil.Process(child).kill()


def test_the_guarded_command_is_the_child_itself_with_signals_as_subprocess_leaves_them(tmp_path):
    """Popen's pid is the command's (stop() and the supervisor signal it), and the signals
    Python ignores at its start (SIGPIPE: a pipe reader gone) are not ignored by the command."""
    show = ["sh", "-c", 'echo "$$"; grep -E "^(SigIgn|SigBlk)" /proc/self/status']
    bare = subprocess.run(show, capture_output=True, text=True, check=True).stdout.splitlines()
    child = subprocess.Popen(guarded(show), stdout=subprocess.PIPE, text=True)
    lines = child.communicate()[0].splitlines()
    assert child.returncode == 0
    assert int(lines[0]) == child.pid
    assert lines[1:] == bare[1:]


def test_a_child_whose_parent_died_before_the_signal_was_set_never_runs_the_command(tmp_path):
    """The race the prctl man page describes: the guard is told its parent's pid and finds
    another parent (here, one that never was its parent): it exits without starting anything."""
    marker = tmp_path / "ran"
    args = guarded(["touch", str(marker)])
    pid_at = args.index("--") - 2
    assert args[pid_at] == str(os.getpid())      # this process, as the parent
    args[pid_at] = "1"
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and not marker.exists(), done.stderr
    subprocess.run(guarded(["touch", str(marker)]), check=True, timeout=30)    # the real parent: it runs
    assert marker.exists()


def test_a_command_that_cannot_start_is_one_line_and_status_127():
    done = subprocess.run(guarded(["/nonexistent/redis-server"]), capture_output=True, text=True, timeout=30)
    assert done.returncode == 127
    assert done.stderr.startswith("orphan_guard: cannot run /nonexistent/redis-server: ")
    assert done.stderr.count("\n") == 1
