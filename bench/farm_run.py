"""One timed farm run: ``python -m bench.farm_run SRC WORKERS DATA_DIR OUT_DIR [ANALYZERS]``
prints JSON (ANALYZERS: comma-separated, default: the farm's setting): the job's wall time and the
CPU time its farm's processes used meanwhile (``cpu_s``); ``python -m bench.farm_timeline DATA_DIR``
then shows which worker ran what when."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path


def main(src: Path, workers: int, data_dir: Path, out_dir: Path, analyzers: list[str] | None = None) -> dict:
    # This process is the farm's client: point its settings at the farm before importing tasks.
    from cli.farm import EmbeddedFarm
    from core.models import ENDED_STATES
    from tests.clipmaker import make_clip

    with EmbeddedFarm(data_dir, workers=workers) as embedded:
        os.environ["VIDFARM_DATA_DIR"] = str(data_dir)
        os.environ["REDIS_URL"] = embedded.redis_url
        from services import runtime
        from services.jobs import job_view
        from tasks.app import app
        from core.storage import output_key
        from services.submit import submit_file

        embedded.wait_ready(app)
        options = {"analyzers": analyzers} if analyzers else {}

        def run(path: Path) -> tuple[str, dict, float]:
            """Wall time from submit to the moment the records say the video drawn from the
            results is published (the job is done, with its results, before that): polling
            only finds out later (up to one poll interval, which would count against the farm)."""
            started = time.time()
            job_id = submit_file(runtime.farm(), path, name=path.name, options=options)
            while (view := job_view(runtime.records(), job_id))["status"] not in ENDED_STATES or (
                    view["status"] == "done" and view["video_version"] < view["results_version"]
                    and not view["video_error"]):
                time.sleep(0.05)
            video = runtime.records().video(job_id)
            return job_id, view, _ts(video.rendered_at if video else runtime.records().get_job(job_id).finished_at) - started

        # A running farm has done jobs before: the first one pays one-time costs (imports,
        # connections, the database's first writes, each pool process's first model runs)
        # that no later job pays, so it is not timed. Every worker must have run a segment of
        # it: a one-segment warm-up left the other worker's first model runs in the timed job.
        clip = make_clip(data_dir / "warm-up.mp4", seconds=2 * workers, fps=15, size=(320, 180), gop=15).path
        warmed: set[str] = set()
        for _ in range(3):      # its segments go to whichever worker is free: rarely all to one
            warm_up, _, _ = run(clip)
            warmed |= {s.worker for s in runtime.records().segments(warm_up)}
            if len(warmed) >= workers:
                break
        cpu_before = _farm_cpu_s()
        job_id, view, wall = run(src)
        cpu = _farm_cpu_s() - cpu_before
        if view["status"] != "done":
            raise RuntimeError(f"farm run failed: {view['error']}")
        results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
        segments = runtime.records().segments(job_id)
        job = runtime.records().get_job(job_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        runtime.store().local_path(output_key(job_id, "annotated.mp4")).replace(out_dir / f"farm{workers}.mp4")
        runtime.store().local_path(output_key(job_id, "results.json")).replace(out_dir / f"farm{workers}-results.json")
    stages = results["timing"]["stages"]
    return {"wall_s": wall, "cpu_s": cpu, "results_wall_s": _ts(job.finished_at) - _ts(job.created_at),
            "segments": len(segments), "warmed_workers": len(warmed), "split_s": stages["split"], "stages": stages,
            "stitch_s": stages["stitch"], "frames": len(results["frames"]),
            "faces": sum(len(frame["faces"]) for frame in results["frames"]),
            **timeline(job.created_at, job.finished_at, segments)}


def _farm_cpu_s() -> float:
    """CPU seconds the farm's processes (this one's descendants: Redis, the fork server, the
    workers and their pool processes) have used so far."""
    import psutil

    total = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:    # gone meanwhile
            continue
        total += times.user + times.system
    return total


def _ts(moment) -> float:
    from core.models import aware

    return aware(moment).timestamp()


def timeline(created, finished, segments) -> dict:
    """Where the farm's time went besides analysing segments.

    overhead = lead (submit -> first segment starts: upload, probe, split, queue)
             + tail (last segment ends -> done: chord callback, stitch, results)
             + the gaps a worker sat idle between two of its segments (queue latency),
               averaged over the workers.
    imbalance = how long one worker idled at the end while another finished its last segment
    (segments are equal in frames, not in work): reported, not hidden in overhead.
    """
    by_worker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in segments:
        by_worker[s.worker].append((_ts(s.started_at), _ts(s.finished_at)))
    spans = [sorted(v) for v in by_worker.values()]
    first_start = min(span[0][0] for span in spans)
    last_ends = [span[-1][1] for span in spans]
    gaps = sum(b[0] - a[1] for span in spans for a, b in zip(span, span[1:]))
    lead, tail = first_start - _ts(created), _ts(finished) - max(last_ends)
    return {"lead_s": lead, "tail_s": tail, "gaps_s": gaps / len(spans),
            "overhead_s": lead + tail + gaps / len(spans),
            "imbalance_s": max(last_ends) - min(last_ends), "job_wall_s": _ts(finished) - _ts(created)}


if __name__ == "__main__":
    src, workers, data_dir, out_dir = sys.argv[1:5]
    analyzers = sys.argv[5].split(",") if len(sys.argv) > 5 else None
    print(json.dumps(main(Path(src), int(workers), Path(data_dir), Path(out_dir), analyzers)))
