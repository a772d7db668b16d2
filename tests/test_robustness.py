"""Every crafted file ends with a correct result or a clear error, and the farm carries on."""

from __future__ import annotations

import json

import pytest

from core.storage import output_key
from services import runtime
from services.submit import submit_file
from tests.clipmaker import count_video_frames
from tests.conftest import wait_for_job
from tests.crafted import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_crafted_input(farm, tmp_path, case):
    path = case.make(tmp_path)
    view = wait_for_job(submit_file(runtime.farm(), path, name=path.name))
    assert view["status"] == case.outcome, view["error"]
    if case.outcome == "failed":
        assert case.reason in view["error"] and "\n" not in view["error"]
    else:
        results = json.loads(runtime.store().local_path(output_key(view["id"], "results.json")).read_text())
        frames = count_video_frames(path)
        assert len(results["frames"]) == frames
        assert count_video_frames(runtime.store().local_path(output_key(view["id"], "annotated.mp4"))) == frames
    assert not farm.dead_processes()


def test_file_names_are_labels_never_paths(farm, face_clip):
    for name in ("../../etc/passwd", "caf\udce9.mp4", "a/b\\c:d*?.mp4", "x" * 1000):
        job_id = submit_file(runtime.farm(), face_clip.path, name=name)
        job = runtime.records().get_job(job_id)
        assert job.source_key == f"jobs/{job_id}/source"
        assert wait_for_job(job_id)["status"] == "done"


def test_robustness_doc_lists_every_case():
    from tests.crafted import DOC, render_docs

    text = DOC.read_text()
    assert text.endswith(render_docs()), "regenerate: python -m tests.crafted"
    assert "## Faults" in text.split("## Crafted inputs")[0]      # the faults table stays above
