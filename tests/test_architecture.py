"""The house rules that keep the web process light and the floors apart (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from core.settings import BUILTIN_ANALYZERS
from tests.conftest import child_env, repo_root

HEAVY = ("onnxruntime", "cv2", "av", "insightface", "workers.analytics")


# Loaded only where the settings choose the S3 blob store (core/s3_storage.py).
ONLY_FOR_S3 = ("boto3", "botocore")


def test_creating_the_web_app_loads_no_model_codec_or_analyzer(tmp_path):
    code = ("import json, sys, web; web.create_app(); "
            f"print(json.dumps(sorted(m for m in sys.modules if m in {HEAVY + ONLY_FOR_S3!r} "
            "or m.startswith('workers.analytics.'))))")
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_CONFIG_DIR=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root(), env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


# What a worker needs neither to start nor for its first job: the models load and run through
# onnxruntime alone (models.without_prelu and recognizer.ArcFace read the ONNX files with
# workers/onnx_wire.py, recognizer.align_face aligns faces), where importing onnx (and so
# ml_dtypes), insightface and scikit-image took about 0.7 s of the fork server's start, on
# the serial path of every embedded farm's (docs/benchmarks.md, "The embedded farm's start").
NOT_FOR_A_JOB = ("onnx", "ml_dtypes", "insightface", "skimage")

WORKER_START_AND_FIRST_SEGMENT = """
import json, sys
from pathlib import Path
from tasks import forkserver
assert forkserver.prepare() is None
loaded = sorted(m for m in sys.modules if m.split(".")[0] in NOT_FOR_A_JOB)
from tests.clipmaker import make_clip
from workers import media, pipeline
clip = make_clip(Path(sys.argv[1]) / "face.mp4", seconds=1, fps=15, size=(480, 270), face_windows=[(0, 1)])
from tasks.common import _pipeline_config
config = _pipeline_config({})          # the configuration a job without options gets
result = pipeline.analyse_segment(clip.path, pipeline.whole_file(media.probe(clip.path)), config)
assert any(face["mask"] for frame in result.frames for face in frame), "no face was recognised and classified"
print(json.dumps([loaded, sorted(m for m in sys.modules if m.split(".")[0] in NOT_FOR_A_JOB)]))
"""


def test_the_fork_server_and_a_first_segment_import_no_onnx_insightface_or_scikit_image(tmp_path):
    """The fork server's whole load (settings, analyzer configs, tasks, Celery, the models on
    one thread, as the embedded farm's workers run), then a segment of a clip with a face
    through every analyzer: none of those libraries is imported on the way."""
    code = f"NOT_FOR_A_JOB = {NOT_FOR_A_JOB!r}\n" + WORKER_START_AND_FIRST_SEGMENT
    (tmp_path / "data").mkdir()      # the farm makes it before it starts the fork server
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path / "data"), VIDFARM_CONFIG_DIR=str(tmp_path / "config"),
                    VIDFARM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          cwd=repo_root(), env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "models loaded" in done.stderr, done.stderr       # the fork server's log: it loaded them
    assert json.loads(done.stdout.splitlines()[-1]) == [[], []]


def test_the_web_process_knows_every_builtin_analyzer_by_name():
    # The web validates analyzer names from core.settings; the registry is filled on import.
    from workers import pipeline  # noqa: F401  (registers the analyzers)
    from workers.analytics.registry import ANALYZERS

    shipped = {name for name, cls in ANALYZERS.items() if cls.__module__.startswith("workers.")}
    assert set(BUILTIN_ANALYZERS) == shipped     # plugins a test loaded register beside them


# CLI commands that are themselves camera processes: they decode (and analyse) video by design.
CAMERA_COMMANDS = {("cli.live", "tasks.camera_ingest"), ("cli.live", "tasks.live_watch")}


def _heavy(module: str) -> set[str]:
    from tests.import_graph import reachable

    return {m for m in reachable(module) | {module} if m in HEAVY or m.startswith("workers.analytics.")}


def test_no_import_cycle_among_product_modules():
    from tests.import_graph import cycles

    assert cycles() == []


def test_web_and_cli_import_no_task_module_that_loads_models():
    from tests.import_graph import graph

    loaded = {(module, target): sorted(_heavy(target)) for module, targets in graph().items()
              if module.split(".")[0] in ("web", "cli") for target in targets
              if target.startswith("tasks") and (module, target) not in CAMERA_COMMANDS}
    assert {edge: heavy for edge, heavy in loaded.items() if heavy} == {}


def test_the_use_cases_load_no_model_either():
    from tests.import_graph import modules

    services = [name for name in modules() if name.split(".")[0] == "services"]
    assert services and {name: sorted(_heavy(name)) for name in services if _heavy(name)} == {}


# Where the settings are parsed: each process's entry point, and the per-process holder they
# configure (which parses them itself only where no entry point of ours ran: tests, notebooks).
ENTRY_POINTS = {"core.settings", "services.runtime", "web.wsgi", "tasks.worker", "tasks.forkserver"}
# Preparing the mask models is a command of its own (`python -m ...`, run at install); called
# without a cache folder, it takes the environment's. The farm passes the folder down.
MODEL_PREPARATION = {"workers.analytics.mask_convert", "workers.analytics.mask_train"}


def _parses_settings(path) -> list[int]:
    import ast

    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("get_settings", "Settings")]


def test_nothing_below_the_entry_points_parses_the_settings():
    from tests.import_graph import modules

    below = {name: lines for name, path in modules().items()
             if name not in ENTRY_POINTS | MODEL_PREPARATION and not name.startswith("cli")
             and (lines := _parses_settings(path))}
    assert below == {}


def test_the_settings_check_sees_a_call():
    from tests.import_graph import modules

    assert _parses_settings(modules()["web.wsgi"]) and _parses_settings(modules()["services.runtime"])


# Floors (docs/architecture.md): what no module of a floor may import.
FORBIDDEN = {
    "core": {"services", "tasks", "web", "cli", "workers", "autoscaler"},
    "workers": {"services", "tasks", "web", "cli", "autoscaler"},
    "autoscaler": {"services", "tasks", "web", "cli", "workers"},
    "services": {"web", "cli", "workers"},
    "tasks": {"web", "cli"},
    "web": {"cli", "workers"},
}
# The producers' way into tasks/: the Celery app, the client that sends by name, and the
# leases, whose reclaim the local supervisor (cli.farm) runs when it restarts a dead worker
# (it sends the work again by name).
PRODUCER_SIDE = {"tasks.app", "tasks.client", "tasks.leases"}


def test_each_floor_imports_only_what_it_may():
    from tests.import_graph import graph

    crossings = sorted((module, target) for module, targets in graph().items() for target in targets
                       if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], ()))
    assert crossings == []


def test_web_and_cli_reach_tasks_only_through_the_producer_side():
    from tests.import_graph import graph

    reached = sorted((module, target) for module, targets in graph().items() for target in targets
                     if module.split(".")[0] in ("web", "cli") and target.split(".")[0] == "tasks"
                     and target not in PRODUCER_SIDE and (module, target) not in CAMERA_COMMANDS)
    assert reached == []


# The analysis tasks take one typed message (core.segment_job.SegmentJob), never the job's
# media unpacked into positional arguments; the live view's drawing task likewise takes one
# core.view_job.ViewJob.
TYPED_TASKS = {"vidfarm.segment": "SegmentJob", "vidfarm.live_segment": "SegmentJob", "vidfarm.live_view": "ViewJob"}


def _typed_sends(path) -> list[tuple[int, bool]]:
    """(line, sends one ``.to_message()``) of every send_task/signature naming a typed task."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("send_task", "signature", "send", "call") and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in TYPED_TASKS):
            args = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "args"), None)
            one_message = (isinstance(args, ast.Tuple) and len(args.elts) == 1 and isinstance(args.elts[0], ast.Call)
                           and getattr(args.elts[0].func, "attr", None) == "to_message")
            found.append((node.lineno, one_message))
    return found


def test_typed_tasks_are_sent_one_message():
    from tests.import_graph import modules

    sends = {name: lines for name, path in modules().items() if (lines := _typed_sends(path))}
    # the check sees them:
    assert {"tasks.client", "tasks.leases", "tasks.live_watch", "tasks.live_view"} <= set(sends)
    assert {name: [line for line, ok in lines if not ok] for name, lines in sends.items()
            if not all(ok for _, ok in lines)} == {}


def test_the_typed_tasks_read_their_message_through_its_class():
    import inspect

    from tasks.jobs import process_segment
    from tasks.live import live_segment
    from tasks.live_view import live_view

    for task in (process_segment, live_segment, live_view):
        source = inspect.getsource(task.run)
        assert f"{TYPED_TASKS[task.name]}.from_message(" in source, task.name


# The use cases take their farm (settings, records, store, queue) as an argument: only the
# per-process holder (services.runtime) and the Farm's own constructor reach for them.
FARM_BUILDERS = {"services.runtime", "services.farm"}
# Entry points of the web process: the factory builds the app's farm, wsgi configures the process.
WEB_ENTRY_POINTS = {"web", "web.wsgi"}


def test_the_use_cases_take_their_dependencies_as_arguments():
    from tests.import_graph import graph

    reaching = sorted((module, target) for module, targets in graph().items() for target in targets
                      if module.split(".")[0] == "services" and module not in FARM_BUILDERS
                      and target in ("services.runtime", "tasks.client", "tasks"))
    assert reaching == []


def test_web_routes_use_the_app_s_farm_not_the_process_s():
    from tests.import_graph import graph

    reaching = sorted(module for module, targets in graph().items()
                      if module.split(".")[0] == "web" and module not in WEB_ENTRY_POINTS and "services.runtime" in targets)
    assert reaching == []


def test_every_use_case_takes_the_farm_or_the_settings_first():
    import inspect

    from services import erasure, gallery, jobs, people, submit
    from services.farm import Farm

    taking_nothing = {"check_name", "display_name", "reader_environment", "registered_analyzers", "report_of",
                      "gallery_option", "job_views", "job_view", "new_job_id"}    # pure, or given their records
    for module in (erasure, gallery, jobs, people, submit):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_") or name in taking_nothing:
                continue
            first = next(iter(inspect.signature(function).parameters.values()))
            assert (first.name, first.annotation) in (("farm", "Farm"), ("settings", "Settings")), \
                f"{module.__name__}.{name}{inspect.signature(function)}"
    assert Farm.__dataclass_fields__.keys() == {"settings", "records", "store", "queue"}
