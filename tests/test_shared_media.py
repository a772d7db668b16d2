"""Every bench and test finds the test media in one place (``bench.shared_media``), which
``VIDFARM_MEDIA`` can move: a bench that looked elsewhere would drop the real footage from its
figures without a word."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import repo_root

ROOT = repo_root()


def test_vidfarm_media_moves_every_bench_to_a_copy_elsewhere(tmp_path):
    copy = tmp_path / "media copy"
    env = dict(os.environ, VIDFARM_MEDIA=str(copy))
    probe = ("import json, bench.eval, bench.busy, bench.quiet_hour, bench.encoder; "
             "print(json.dumps([str(bench.eval.MEDIA), str(bench.busy.HAMILTON), "
             "str(bench.quiet_hour.WALKING), str(bench.encoder.VIDEOS)]))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == [str(copy), str(copy / "videos" / "short_hamilton_clip.mp4"),
                               str(copy / "videos" / "intel_face-demographics-walking.mp4"),
                               str(copy / "videos")]


def test_no_bench_or_test_spells_the_media_folder_itself():
    spelled = [path.relative_to(ROOT) for folder in ("bench", "tests") for path in (ROOT / folder).rglob("*.py")
               if path.name not in {"shared_media.py", Path(__file__).name}
               and '"shared" / "media"' in path.read_text()]
    assert spelled == []
