"""bench.farm_timeline reads Celery's own log lines: each task's span, the last job's tasks, and
how long each worker sat idle before and after the results."""

from bench.farm_timeline import idle, last_job, spans

LINE = ("[2026-12-06 03:13:{at}: INFO/ForkPoolWorker-1] Task vidfarm.{name}[35ac39f5-eb55] "
        "succeeded in {seconds}s: {value}")


def _log(path, tasks):
    path.write_text("\n".join([LINE.format(at=at, name=name, seconds=seconds, value=value)
                               for at, name, seconds, value in tasks] + ["[other line]"]) + "\n")


def test_idle_time_per_worker_before_and_after_the_results(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # worker1: a warm-up ingest, then the timed job's ingest (0-1 s), segment 0 (1-3 s), the
    # stitch (4-5 s), a drawing (5-6 s); worker2: segment 1 (1-4 s), nothing after the results.
    _log(logs / "worker1-1.log", [("00,500", "ingest", 0.5, "None"),
                                  ("11,000", "ingest", 1.0, "None"),
                                  ("13,000", "segment", 2.0, "{'index': 0, 'frames': 30}"),
                                  ("15,000", "stitch", 1.0, "{}"),
                                  ("16,000", "render_segment", 1.0, "{'index': 0}")])
    _log(logs / "worker2-2.log", [("14,000", "segment", 3.0, "{'index': 1, 'frames': 30}")])
    job = last_job(spans(logs))
    assert [(s.worker, s.name, s.index) for s in job] == [
        ("worker1", "ingest", None), ("worker1", "segment", 0), ("worker2", "segment", 1),
        ("worker1", "stitch", None), ("worker1", "render_segment", 0)]
    figures = idle(job)
    assert figures["results_s"] == 5.0 and figures["wall_s"] == 6.0
    assert figures["idle_s"] == {"worker1": {"to results": 1.0, "after results": 0.0},
                                 "worker2": {"to results": 2.0, "after results": 1.0}}
