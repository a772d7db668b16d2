"""``vidfarm`` with a real signal sent to itself the moment one module's first import has run
its body but not yet returned: where a stop signal that lands in the middle of an import cuts
it (a test's SIGTERM once did so under load, ``tests/test_shutdown.py``).

    python -m tests.signal_on_import MODULE SIGNAL -- VIDFARM_ARGS...

The import ends with the signal handler's exception, as it did then: Python forgets the
module, but what its body did (tables declared on the ORM's shared metadata) stays done.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import runpy
import signal
import sys


class SignalAfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, sig: int):
        self.module, self.sig = module, sig

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)          # once, and not for the look-up below
        spec = importlib.util.find_spec(name)
        run_body = spec.loader.exec_module

        def exec_module(module):
            run_body(module)
            os.kill(os.getpid(), self.sig)      # its handler runs here, before the import returns

        spec.loader.exec_module = exec_module
        return spec


def main(argv: list[str]) -> None:
    module, sig, separator, *args = argv
    if separator != "--":
        raise SystemExit("usage: python -m tests.signal_on_import MODULE SIGNAL -- VIDFARM_ARGS...")
    sys.meta_path.insert(0, SignalAfterImport(module, int(signal.Signals[sig])))
    sys.argv = ["vidfarm", *args]
    runpy.run_module("cli.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
