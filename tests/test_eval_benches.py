"""The command line of the benches that run the eval's clips of one part (``bench.eval_split``):
``[MEDIA_DIR] [--part tuning|test]`` as their docstrings write it, ``--part test`` as two words
included (it was once taken for MEDIA_DIR)."""

from __future__ import annotations

import pytest

from bench.shared_media import MEDIA


class Asked(Exception):
    """Raised where a bench first uses its media folder and part: what was asked is all a test
    of its command line needs."""


def asked_of(monkeypatch, bench, first_use: str, argv: list[str]) -> tuple:
    """What ``bench.main(argv)`` passes to ``first_use``, where it first uses its folder and part
    (and any option it takes beside them)."""
    def ask(*args):
        raise Asked(*args)

    monkeypatch.setattr(bench, first_use, ask)
    with pytest.raises(Asked) as asked:
        bench.main(argv)
    return asked.value.args


@pytest.mark.parametrize("argv", [["--part", "test"], ["--part=test"]])
def test_eval_mask_votes_takes_the_part_as_its_docstring_writes_it(monkeypatch, argv):
    from bench import eval_mask_votes

    assert asked_of(monkeypatch, eval_mask_votes, "record", argv) == (MEDIA, "test")


@pytest.mark.parametrize("argv", [["--part", "test", "--scales", "close-up"], ["--part=test", "--scales=close-up"]])
def test_eval_misses_takes_the_part_as_its_docstring_writes_it(monkeypatch, argv):
    from bench import eval_misses

    assert asked_of(monkeypatch, eval_misses, "mask_split", argv) == (MEDIA / "masks" / "with_mask", "test")
    # The detector it wrapped is the process's shared one: a bench that failed leaves it bare.
    from bench.eval_clips import pipeline_config
    from bench.eval_masks import CANDIDATES, CHOSEN
    from workers import pipeline

    config = pipeline_config(("detect", "track", "mask"), CANDIDATES[CHOSEN])
    detector = pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)[0]
    assert not {"_look", "begin"} & set(vars(detector))


@pytest.mark.parametrize("argv", [["--part", "test"], ["--part=test"]])
def test_eval_mask_band_takes_the_part_as_its_docstring_writes_it(monkeypatch, argv):
    from bench import eval_mask_band

    assert asked_of(monkeypatch, eval_mask_band, "record", argv) == (MEDIA, "test")


def test_eval_mask_band_nulls_only_the_votes_under_the_floor():
    from bench.eval_mask_band import rescored

    clips = [{"scale": "40 px", "truth": "mask", "vote": ["mask", 0.55]},
             {"scale": "40 px", "truth": "mask", "vote": ["no_mask", 0.9]},
             {"scale": "40 px", "truth": "no_mask", "vote": [None, None]}]       # not judged at all
    assert rescored(clips, 0.0) == {"40 px": (2, 1, 3)}
    assert rescored(clips, 0.6) == {"40 px": (1, 0, 3)}


@pytest.mark.parametrize("argv", [["--part", "test", "--gain", "0.25"], ["--part=test", "--gain=0.25"]])
def test_eval_mask_quality_takes_the_part_and_gain_as_its_docstring_writes_them(monkeypatch, argv):
    from bench import eval_mask_quality

    assert asked_of(monkeypatch, eval_mask_quality, "record_clips", argv) == (MEDIA, "test", 0.25)


def test_eval_mask_quality_drops_only_the_samples_under_the_contrast_floor():
    import numpy as np

    from bench.eval_mask_quality import darkened, rescored

    dark, lit = {"vote": ["mask", 0.9], "contrast": 5.0}, {"vote": ["no_mask", 0.6], "contrast": 40.0}
    clips = [{"scale": "80 px", "truth": "no_mask", "samples": [dark, dark, lit]},
             {"scale": "80 px", "truth": "no_mask", "samples": [dark]},
             {"scale": "80 px", "truth": "mask", "samples": []}]
    assert rescored(clips, 0) == {"80 px": (2, 0, 3)}          # the dark votes outweigh the lit one
    assert rescored(clips, 12) == {"80 px": (1, 1, 3)}         # only the lit vote left; the dark clip unjudged
    assert darkened(np.full((2, 2, 3), 200, np.uint8), 0.12).max() == 24


@pytest.mark.parametrize("argv, wide", [(["--part", "test"], False), (["--part=test", "--wide"], True)])
def test_eval_off_face_takes_the_part_as_its_docstring_writes_it(monkeypatch, argv, wide):
    from bench import eval_off_face
    from bench.eval_masks import CANDIDATES, CHOSEN

    assert asked_of(monkeypatch, eval_off_face, "record", argv) == (MEDIA, "test", wide, CANDIDATES[CHOSEN], False)
    assert asked_of(monkeypatch, eval_off_face, "record", argv + ["--features"])[4] is True
    # --second-look: settings over the chosen configuration's.
    configs = asked_of(monkeypatch, eval_off_face, "record", argv + ["--second-look", '{"still_threshold": 0}'])[3]
    assert configs["detect"]["second_look"] == {"still_threshold": 0}


def test_eval_off_face_counts_what_a_rule_drops_and_the_face_frames_it_costs():
    from bench.eval_off_face import RULES, after_rule

    def det(frame, on, score, track):
        return {"scale": "40 px", "photo": "a.jpg", "seed": 0, "frame": frame, "on": on, "score": score, "track": track}

    detections = [det(0, True, 0.9, None),          # the first frame: not counted as found
                  det(1, True, 0.31, None), det(2, True, 0.6, 3), det(2, False, 0.32, None), det(3, False, 0.4, None)]
    assert after_rule(detections, lambda d: False) == (2, {"40 px": 2})
    assert after_rule(detections, RULES["untracked, score < 0.33"]) == (1, {"40 px": 1})
    assert after_rule(detections, RULES["untracked, any score"]) == (0, {"40 px": 1})


@pytest.mark.parametrize("n", [1, 2, 4, 6, 14, 15, 16, 17])
def test_eval_off_face_wide_puts_every_photo_on_every_scene_whatever_the_folders_size(n):
    from bench.eval_off_face import SCENES, wide_seeds

    for index in range(n):
        seeds = wide_seeds(index, n)
        assert sorted(seed % len(SCENES) for seed in seeds) == list(range(len(SCENES))), (index, seeds)
        assert seeds[0] == index                            # the eval's own clip first
        if n % 2:                                           # the seeds it used where those covered (15 a part)
            assert seeds == [index + k * n for k in range(len(SCENES))]


@pytest.mark.parametrize("argv", [["--part", "test", "--crf", "28"], ["--part=test", "--crf=28"]])
def test_eval_dark_recognition_takes_the_part_and_crf_as_its_docstring_writes_them(monkeypatch, argv):
    from bench import eval_dark_recognition

    assert asked_of(monkeypatch, eval_dark_recognition, "record", argv) == (MEDIA, "test", 28)


def test_eval_dark_recognition_names_as_the_gallery_does_and_drops_only_probes_under_the_floor():
    import numpy as np

    from bench.eval_dark_recognition import exposed, h264, named, rescored

    def probe(truth, genuine, impostor, contrast, judged=True):
        return {"truth": truth, "genuine": genuine, "impostor": impostor, "contrast": contrast, "judged": judged}

    probes = [probe("obama", 0.70, 0.20, 40.0),          # named right
              probe("obama", 0.30, 0.36, 5.0),           # a stranger outscores him over 0.34: a false name
              probe("obama", 0.25, 0.30, 6.0),           # outscored, but under every threshold: nobody
              probe(None, None, 0.40, 30.0),             # a stranger named
              probe("obama", 0.9, 0.1, 2.0, judged=False)]
    assert [named(p, 0.34) for p in probes[:4]] == ["right", "false", None, "false"]
    assert named(probes[3], 0.427) is None
    assert rescored(probes, 0, 0.34) == {"probes": 5, "judged": 4, "known": 3, "rank1": 1, "right": 1, "false": 2}
    assert rescored(probes, 12, 0.34) == {"probes": 5, "judged": 2, "known": 1, "rank1": 1, "right": 1, "false": 1}
    assert exposed(np.full((2, 2, 3), 200, np.uint8), 0.25, 96).max() == 146
    face = np.random.default_rng(0).integers(0, 256, (40, 38, 3), np.uint8)
    coded = h264(face, 28)
    assert coded.shape == (40, 38, 3) and 0 < np.abs(coded.astype(int) - face).mean() < 128


def test_a_part_that_is_neither_is_refused():
    from bench.eval_split import part_arguments

    with pytest.raises(SystemExit):
        part_arguments("bench", "").parse_args(["--part", "tst"])     # mask_split would take it for test


@pytest.mark.parametrize("argv", [["--part", "test", "--variants", "retinaface@0.4@320"],
                                  ["--part=test", "--variants=retinaface@0.4@320"]])
def test_eval_confirm_takes_the_part_and_variants_as_its_docstring_writes_them(monkeypatch, argv):
    from bench import eval_confirm

    assert asked_of(monkeypatch, eval_confirm, "measure", argv) == (MEDIA, "test", "retinaface@0.4@320")
    assert eval_confirm.second_look("retinaface@0.4@320") == {"confirm": "retinaface", "confirm_threshold": 0.4,
                                                              "confirm_input": 320}
    assert eval_confirm.second_look("none") == {"confirm": "none"}
