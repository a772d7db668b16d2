"""Where one farm job's wall time went, worker by worker: ``python -m bench.farm_timeline DATA_DIR``
reads the embedded farm's worker logs (``DATA_DIR/logs/worker*.log``, as ``bench.farm_run``
leaves them) and prints every task of the last job (from its ingest on) with its start and end,
and how long each worker sat idle, before the results (the stitch) and after (the drawing).

Celery logs when a task was received and when it succeeded, with how long it ran: the start is
the end less that. The stamps are the workers' own, to the millisecond; no timing code in the
farm is needed for this.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_DONE = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/ForkPoolWorker-\d+\] Task vidfarm\.(?P<name>\w+)\[[^\]]+\] "
                   r"succeeded in (?P<seconds>[\d.e-]+)s: (?P<value>.*)$")
_INDEX = re.compile(r"'index': (\d+)")


@dataclass(frozen=True)
class Span:
    worker: str
    name: str
    index: int | None
    start: float
    end: float


def spans(log_dir: Path) -> list[Span]:
    """Every task the workers ran (ingest, segment, stitch, render_segment, join_video...), by start."""
    out = []
    for log in sorted(log_dir.glob("worker*.log")):
        worker = log.stem.split("-")[0]
        for line in log.read_text(errors="replace").splitlines():
            if not (match := _DONE.match(line)):
                continue
            end = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            index = _INDEX.search(match["value"])
            out.append(Span(worker, match["name"], int(index[1]) if index else None,
                            end - float(match["seconds"]), end))
    return sorted(out, key=lambda s: s.start)


def last_job(all_spans: list[Span]) -> list[Span]:
    """The tasks from the last ingest on (bench.farm_run's timed job follows its warm-up job)."""
    ingests = [i for i, s in enumerate(all_spans) if s.name == "ingest"]
    return all_spans[ingests[-1]:] if ingests else all_spans


def idle(job: list[Span]) -> dict:
    """Per worker, seconds not running a task of the job: before the stitch ended (results) and
    after it (drawing and join), from the job's first task's start to its last task's end."""
    start, end = job[0].start, max(s.end for s in job)
    stitched = max((s.end for s in job if s.name == "stitch"), default=end)
    out = {}
    for worker in sorted({s.worker for s in job}):
        busy = [(s.start, s.end) for s in job if s.worker == worker]
        out[worker] = {"to results": round(_free(busy, start, stitched), 3),
                       "after results": round(_free(busy, stitched, end), 3)}
    return {"results_s": round(stitched - start, 3), "wall_s": round(end - start, 3), "idle_s": out}


def _free(busy: list[tuple[float, float]], start: float, end: float) -> float:
    taken = sum(max(0.0, min(b, end) - max(a, start)) for a, b in busy)
    return max(0.0, end - start - taken)


def report(data_dir: Path) -> str:
    job = last_job(spans(Path(data_dir) / "logs"))
    origin = job[0].start
    lines = [f"{s.worker:8} {s.name:15} {'' if s.index is None else s.index:>3} "
             f"{s.start - origin:7.3f} {s.end - origin:7.3f} ({s.end - s.start:.3f} s)" for s in job]
    return "\n".join(lines + [str(idle(job))])


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
