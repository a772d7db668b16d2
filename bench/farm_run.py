"""One timed farm run: ``python -m bench.farm_run SRC WORKERS DATA_DIR OUT_DIR`` prints JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(src: Path, workers: int, data_dir: Path, out_dir: Path) -> dict:
    # This process is the farm's client: point its settings at the farm before importing tasks.
    from cli.farm import EmbeddedFarm

    with EmbeddedFarm(data_dir, workers=workers) as embedded:
        os.environ["VIDFARM_DATA_DIR"] = str(data_dir)
        os.environ["REDIS_URL"] = embedded.redis_url
        from tasks import runtime
        from tasks.app import app
        from tasks.jobs import output_key
        from tasks.submit import submit_file

        embedded.wait_ready(app)
        started = time.perf_counter()
        job_id = submit_file(src, name=src.name)
        while (view := runtime.records().job_view(job_id))["status"] not in ("done", "failed"):
            time.sleep(0.05)
        wall = time.perf_counter() - started
        if view["status"] != "done":
            raise RuntimeError(f"farm run failed: {view['error']}")
        results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
        segment_seconds = [s.seconds for s in runtime.records().segments(job_id)]
        out_dir.mkdir(parents=True, exist_ok=True)
        runtime.store().local_path(output_key(job_id, "annotated.mp4")).replace(out_dir / f"farm{workers}.mp4")
    compute = sum(segment_seconds) / workers
    stages = results["timing"]["stages"]
    return {"wall_s": wall, "segments": len(segment_seconds), "compute_s": compute,
            "split_s": stages["split"], "stitch_s": stages["stitch"],
            "overhead_s": max(0.0, wall - compute), "frames": len(results["frames"])}


if __name__ == "__main__":
    src, workers, data_dir, out_dir = sys.argv[1:5]
    print(json.dumps(main(Path(src), int(workers), Path(data_dir), Path(out_dir))))
