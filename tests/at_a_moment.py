"""``vidfarm`` with something real done to it at one chosen moment: a stop signal sent to
itself, or a pipe that breaks (``tests/test_shutdown.py``, ``tests/test_cli.py``).

    python -m tests.at_a_moment MOMENT WHAT -- VIDFARM_ARGS...

MOMENT: a module (the moment its first import has run its body but not yet returned: where a
stop signal that lands in the middle of an import cuts it, as a test's SIGTERM once did under
load), or MODULE:CLASS.METHOD / MODULE:FUNCTION (the moment its first call has returned).
WHAT: a signal's name (SIGTERM), sent to this process, whose handler runs right there; or
EPIPE: a write to a pipe whose reader has gone, whose BrokenPipeError is raised right there.

Cut short by the signal handler's exception, an import is forgotten, but what its body did
(tables declared on the ORM's shared metadata) stays done.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import runpy
import signal
import sys
from typing import Callable


def break_a_pipe() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        os.write(writer, b"x")      # Python ignores SIGPIPE: EPIPE, raised as BrokenPipeError
    finally:
        os.close(writer)


class AtAMoment(importlib.abc.MetaPathFinder):
    def __init__(self, moment: str, act: Callable[[], None]):
        self.module, _, self.function = moment.partition(":")
        self.act = act

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)          # once, and not for the look-up below
        spec = importlib.util.find_spec(name)
        run_body = spec.loader.exec_module

        def exec_module(module):
            run_body(module)
            if self.function:
                self.after_first_call(module)
            else:
                self.act()       # before the import returns

        spec.loader.exec_module = exec_module
        return spec

    def after_first_call(self, module) -> None:
        *outer, name = self.function.split(".")
        owner = functools.reduce(getattr, outer, module)
        original = getattr(owner, name)
        acted = []

        @functools.wraps(original)
        def then_act(*args, **kwargs):
            result = original(*args, **kwargs)
            if not acted:
                acted.append(True)
                self.act()
            return result

        setattr(owner, name, then_act)


def action(what: str) -> Callable[[], None]:
    if what == "EPIPE":
        return break_a_pipe
    sig = int(signal.Signals[what])
    return lambda: os.kill(os.getpid(), sig)


def main(argv: list[str]) -> None:
    moment, what, separator, *args = argv
    if separator != "--":
        raise SystemExit("usage: python -m tests.at_a_moment MOMENT WHAT -- VIDFARM_ARGS...")
    sys.meta_path.insert(0, AtAMoment(moment, action(what)))
    sys.argv = ["vidfarm", *args]
    runpy.run_module("cli.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
