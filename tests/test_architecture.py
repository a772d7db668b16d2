"""The house rules that keep the web process light and the floors apart (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from core.settings import BUILTIN_ANALYZERS
from tests.conftest import child_env, repo_root

HEAVY = ("onnxruntime", "cv2", "av", "insightface", "workers.analytics")


def test_creating_the_web_app_loads_no_model_codec_or_analyzer(tmp_path):
    code = ("import json, sys, web; web.create_app(); "
            f"print(json.dumps(sorted(m for m in sys.modules if m in {HEAVY!r} or m.startswith('workers.analytics.'))))")
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_CONFIG_DIR=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root(), env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_web_process_knows_every_builtin_analyzer_by_name():
    # The web validates analyzer names from core.settings; the registry is filled on import.
    from workers import pipeline  # noqa: F401  (registers the analyzers)
    from workers.analytics.registry import ANALYZERS

    shipped = {name for name, cls in ANALYZERS.items() if cls.__module__.startswith("workers.")}
    assert set(BUILTIN_ANALYZERS) == shipped     # plugins a test loaded register beside them
