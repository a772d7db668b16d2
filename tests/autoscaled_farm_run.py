"""Runs one recording through an embedded farm with the local autoscaler (what `vidfarm up`
starts) and prints a JSON summary. A separate process, so that this farm's Celery connections
never mix with the test session's farm.

    python -m tests.autoscaled_farm_run CLIP DATA_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(clip: str, data_dir: str) -> int:
    from cli.farm import EmbeddedFarm
    from core.settings import get_settings
    from services import runtime
    from tasks.app import app, point_at
    from services.submit import submit_file
    from tests.conftest import wait_for_job

    farm = EmbeddedFarm(Path(data_dir), workers=2, autoscale=True, extra_env={"VIDFARM_SEGMENT_SECONDS": "3"})
    with farm:
        point_at(farm.redis_url)
        get_settings.cache_clear()
        runtime.reset()
        farm.wait_ready(app)
        view = wait_for_job(submit_file(runtime.farm(), Path(clip), name="autoscaled.mp4"))
        processes = list(farm.processes)
    print(json.dumps({"status": view["status"], "error": view["error"], "log_dir": str(farm.log_dir),
                      "all_stopped": not any(p.alive for p in processes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
