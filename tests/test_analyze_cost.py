"""bench.analyze_cost's ``--confirm`` section: the chain without and with the second detector
(issue 14), with the second detector's runs beside the tracks."""

from __future__ import annotations

from bench import analyze_cost
from bench.shared_media import MEDIA
from tests.test_eval_benches import asked_of


def test_confirm_compares_the_chain_without_the_second_detector_with_the_default(monkeypatch):
    assert asked_of(monkeypatch, analyze_cost, "measure", ["--confirm"]) == (MEDIA, analyze_cost.CONFIRM_CHAINS)
    assert analyze_cost.CONFIRM_CHAINS["before"] == {"detect": {"second_look": {"confirm": "none"}}}


def test_the_confirm_section_shows_the_second_detectors_runs_beside_the_tracks():
    row = {"footage": "hamilton", "frames": 275, "before_ms_per_frame": 10.0, "after_ms_per_frame": 10.2,
           "ratio": 1.02, "before_faces": 632, "after_faces": 632, "tracks": "15 / 15", "confirm_runs": "0 / 4"}
    text = analyze_cost.without_with_markdown("--confirm", [row], (2.0, 2.5))
    assert text.startswith("## Second detector vouching for weak boxes: analyze cost on ordinary footage\n")
    assert "| tracks | second detector runs |" in text
    assert "| 1.02 | 632 | 632 | 15 / 15 | 0 / 4 |" in text
    # The other sections keep their one extra column.
    assert "second detector runs" not in analyze_cost.without_with_markdown("--gaps", [row], (2.0, 2.5))
