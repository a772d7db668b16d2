"""Each default vidfarm has, written once. ``core.settings`` (what the environment may change)
and the workers' own configs (``workers.media.Limits``, ``workers.render.RenderConfig``, the
recogniser's and the thermal analyzer's) both read them here. No imports: any process may."""

# Within the gap between impostor and genuine similarities that `make eval` measures on the
# tuning split (docs/accuracy.md, "Recognition at scale": 0.303-0.636 in its last run, against
# 725 identities, midpoint 0.47); VIDFARM_RECOGNITION_THRESHOLD overrides it.
RECOGNITION_THRESHOLD = 0.34
FEVER_C = 37.5

# What ingest accepts (VIDFARM_MIN_SIDE, VIDFARM_MAX_WIDTH ...). A frame rate or frame count
# past these is no camera's: such a file (a million tiny packets, say) would only tie up the
# workers and the memory of whoever reads it.
MIN_SIDE = 16
MAX_WIDTH = 7680
MAX_HEIGHT = 4320
MAX_DURATION_S = 6 * 3600.0
MAX_FPS = 240.0
MAX_FRAMES = 2_000_000
PROBE_BUDGET_S = 600.0

# The annotated video's encoder.
X264_PRESET = "veryfast"
X264_CRF = 23
# subme=1: a cheaper sub-pixel search than veryfast's (about a fifth off its time); aq-strength=0.5
# (adaptive quantisation at half strength: fewer bytes at the same PSNR, and without the blocks in
# dark flat areas that aq-mode=0 shows) and partitions=i4x4 (no 8x8 partitions in P-frames) take
# another 14-21 % off for 2-16 % fewer bytes at the same PSNR on busy footage (docs/benchmarks.md,
# "Busy path: the encoder's options").
X264_PARAMS = "subme=1:aq-strength=0.5:partitions=i4x4"

# Radiometric (16-bit) video: degrees C per raw step, and degrees C at raw value 0 (TLinear,
# centikelvin: what most radiometric cameras write).
THERMAL_GAIN = 0.01
THERMAL_OFFSET = -273.15

# The face models (files in the model folder) and the detector's input and score threshold.
DETECTOR_MODEL = "scrfd_500m_bnkps.onnx"
RECOGNIZER_MODEL = "w600k_mbf.onnx"
DETECTOR_INPUT = 640
DETECTOR_THRESHOLD = 0.5

# The motion gate (VIDFARM_MOTION_GATE, VIDFARM_RECHECK_FRAMES): the detector runs only where
# something moves, and looks at a found face again at least every this many frames.
MOTION_GATE = True
RECHECK_FRAMES = 15

# Live cameras (VIDFARM_LIVE_DETECT_FPS): the detector looks at most this many frames a second
# of a camera, the frames between carry the faces of its last look (Frigate's detect fps).
# 0: every frame. 7.5 rather than Frigate's 5: on the audience footage of bench/live_frame_cost.py
# it keeps about 98 % of every-frame detection's faces for two thirds of the CPU; 5 keeps about
# 94 % for 53 % (docs/benchmarks.md, "Live frame cost").
LIVE_DETECT_FPS = 7.5

# The annotated video copies the source's GOPs that have nothing to draw (VIDFARM_STREAM_COPY).
STREAM_COPY = True

# Mean absolute difference (0-255) of two 32x18 grayscale thumbnails that marks a scene cut.
SCENE_CUT = 20.0

# The S3 blob store (VIDFARM_S3_*): the region when none is set; the read-through cache's size;
# tries of one request (standard backoff: a server restarting for a few seconds is ridden out);
# multipart part size (S3's smallest part is 5 MiB); connect and read timeout of one request.
S3_REGION = "us-east-1"
S3_CACHE_BYTES = 2 * 1024**3
S3_MAX_ATTEMPTS = 8
S3_MULTIPART_BYTES = 8 * 1024**2
S3_TIMEOUT_S = 20.0
# How often each machine's S3 read cache is checked against the bucket: copies of deleted or
# rewritten objects (a job deleted, a person erased, by any pod) go within about this long.
S3_CACHE_SWEEP_S = 30.0
