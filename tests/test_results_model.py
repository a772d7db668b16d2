"""The results.json model (core/results.py): what it accepts, what it refuses, and that the API
document describes the results with it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.results import Results, openapi_components

FACE = {"box": [1, 2, 30, 40], "score": 0.9, "track": 1, "identity": None, "similarity": None, "mask": "no_mask",
        "mask_score": 0.8, "temperature_c": None}
RESULTS = {"schema": "vidfarm.results/1",
           "source": {"path": "a.mp4", "width": 64, "height": 48, "fps": 15.0, "frames": 1, "duration_s": 0.07,
                      "has_audio": False},
           "chunks": 1, "frames": [{"index": 0, "t": 0.0, "faces": [FACE]}],
           "tracks": [{"track": 1, "identity": None, "first_frame": 0, "last_frame": 0, "best_similarity": None,
                       "mask": "no_mask", "max_temperature_c": None, "embedding": None}],
           "alerts": [{"kind": "no_mask", "track": 1, "frame": 0, "t": 0.0, "detail": "face without a mask"}],
           "timing": {"wall_s": 1.0, "stages": {"split": 0.1}}}


def test_the_contract_passes_and_later_fields_are_kept():
    checked = Results.model_validate({**RESULTS, "added_later": [1]})
    assert checked.model_dump(by_alias=True)["added_later"] == [1] and checked.frames[0].faces[0].track == 1


@pytest.mark.parametrize("change", [
    {"schema": "vidfarm.results/2"},
    {"frames": [{"index": 0, "t": 0.0, "faces": [{**FACE, "box": [1, 2, 3]}]}]},
    {"frames": [{"index": 0, "t": 0.0, "faces": [{k: v for k, v in FACE.items() if k != "identity"}]}]},
    {"alerts": [{"kind": "teleport", "track": 1, "frame": 0, "t": 0.0, "detail": None}]},
    {"tracks": [{"track": 1}]},
], ids=["schema", "box", "identity missing", "alert kind", "track fields"])
def test_a_break_of_the_contract_is_refused(change):
    with pytest.raises(ValidationError):
        Results.model_validate({**RESULTS, **change})


def test_the_api_document_describes_results_with_the_model(tmp_path):
    from core.settings import Settings
    from web import create_app

    app = create_app(Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config"))
    with app.app_context():
        spec = app.spec
    response = spec["paths"]["/api/v1/jobs/{job_id}/results"]["get"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Results"}
    assert spec["components"]["schemas"]["ResultsFace"] == openapi_components()["ResultsFace"]
