"""A radiometric recording through the real farm: temperatures per frame and a fever alert."""

from __future__ import annotations

import json

import pytest

from cli.main import sidecar_options
from core.storage import output_key
from services import runtime
from services.submit import submit_file
from tests.conftest import wait_for_job
from tests.thermalclip import make_thermal_clip


@pytest.mark.parametrize("fever", [True, False], ids=["fever", "normal"])
def test_thermal_recording_reads_temperatures_and_flags_fever(farm, media_dir, tmp_path, fever):
    clip = make_thermal_clip(tmp_path / "thermal.mkv", media_dir / "thermal" / "fluke_pairs" / "IR_00121.csv",
                             fever_offset_c=2.5 if fever else 0.0)
    # the .thermal.json sidecar travels along, as the CLI sends it
    job_id = submit_file(runtime.farm(), clip.path, name="thermal.mkv", options=sidecar_options(clip.path))
    view = wait_for_job(job_id)
    assert view["status"] == "done", view["error"]
    results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
    assert len(results["frames"]) == clip.frames
    readings = [(f["faces"][0]["temperature_c"], truth) for f, truth in zip(results["frames"], clip.truth_c)
                if f["faces"]]
    assert len(readings) >= clip.frames - 2
    assert max(abs(read - truth) for read, truth in readings) <= 0.3
    fevers = [a for a in results["alerts"] if a["kind"] == "fever"]
    if fever:
        assert len(fevers) == 1 and 8 <= fevers[0]["frame"] < 16
        assert max(t["max_temperature_c"] for t in results["tracks"]) >= 37.5
    else:
        assert fevers == []
