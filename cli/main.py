"""The ``vidfarm`` command.

    vidfarm process VIDEO --out DIR [--gallery DIR] [--workers N]   one recording through the farm
    vidfarm watch URL --out DIR [--for S] [--gallery DIR] [--workers N]   a live camera through the farm
    vidfarm ingest                                                    watch the farm's registered cameras
    vidfarm enroll NAME IMAGE...                                      add photos of a person to the gallery
    vidfarm up [--workers N] [--port P]                               the embedded farm with the web app
    vidfarm user NAME [--role admin|operator|viewer]                  a web user (password and token once)
    vidfarm db upgrade|current|history                                the database schema (migrations)
    vidfarm autoscale --backend kubernetes|local                      the queue-length autoscaler
    vidfarm autoscale simulate TRACE.json                             our policy against a KEDA/HPA model
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from pydantic import ValidationError
from pydantic_settings import SettingsError

from cli import autoscale as autoscale_command
from cli import live as live_commands
from cli.option_checks import make_out_folder, option_problem, taken_port_problem
from cli.reader_gone import closed_by_reader, quiet_after_reader_left
from cli.signals import StopSignals, Stopped, stop_on_signals
from core.errors import SchemaOutOfDate, problems
from core.settings import get_settings
from core.storage import BlobStoreUnavailable
from core.words import counted


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(argv)
    except BrokenPipeError:
        # Its reader went away (`vidfarm db history | head -1`): nothing more to say, and no
        # traceback. Any other pipe (a child's, a socket) broke: a failure, with its traceback.
        gone = closed_by_reader()
        if not gone:
            raise
        quiet_after_reader_left(gone)
        return 1


def run_command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="vidfarm", description="Face analytics video farm.")
    commands = parser.add_subparsers(dest="command", required=True)

    process = commands.add_parser("process", help="run one recording through the farm")
    process.add_argument("video", type=Path)
    process.add_argument("--out", type=Path, required=True, help="folder for annotated.mp4 and results.json")
    process.add_argument("--workers", type=int, default=2,
                         help="worker processes of the embedded farm (ignored with REDIS_URL)")
    process.add_argument("--segment-seconds", type=float, default=None, help="target segment length")
    process.add_argument("--gallery", type=Path, default=None,
                         help="folder of known faces for this job: a sub-folder per person, or loose photos "
                              "named after the person (default: the enrolled gallery)")

    live_commands.add_parsers(commands)

    enroll = commands.add_parser("enroll", help="add photos of a person to the gallery")
    enroll.add_argument("name")
    enroll.add_argument("images", type=Path, nargs="+")

    user = commands.add_parser("user", help="add a web user (prints a random password and an API token once)")
    user.add_argument("username")
    user.add_argument("--role", choices=("admin", "operator", "viewer"), default="viewer")

    up = commands.add_parser(
        "up", help="start the embedded farm and the web app",
        # What a second farm on one machine must change is in the environment, not in options:
        # say so where a user looks first.
        epilog="One `vidfarm up` runs per data folder (VIDFARM_DATA_DIR, default ~/.local/share/vidfarm). "
               "Its Redis takes a free port of its own; the web app listens on VIDFARM_WEB_HOST "
               "(127.0.0.1) and VIDFARM_WEB_PORT (8000), Flower on VIDFARM_FLOWER_PORT (5555). "
               "Ctrl-C, SIGTERM or SIGHUP stops every process it started.")
    up.add_argument("--workers", type=int, default=2,
                    help="most CPU workers the local autoscaler starts while segments wait, and the workers it may add "
                         "to the one live worker it keeps, live first (default 2)")
    up.add_argument("--port", type=int, default=None,
                    help="port of the web app and the REST API (default VIDFARM_WEB_PORT, 8000)")

    db = commands.add_parser("db", help="the database schema: upgrade it, show its revision or the history")
    db.add_argument("action", choices=("upgrade", "current", "history"))

    autoscale_command.add_parser(commands)

    args = parser.parse_args(argv)
    # What vidfarm and the processes it starts write (database, blobs, logs) shows people:
    # no access for others, whatever the shell's umask.
    os.umask(0o027)
    try:
        # Every command reads them: a bad one is one line here, not a traceback later.
        settings = get_settings()
    except (ValidationError, SettingsError) as error:
        return bad_settings(error)
    if problem := option_problem(args):     # before anything starts or is made
        return fail(problem)
    from services import runtime

    runtime.configure(settings)
    try:
        if args.command in STORE_COMMANDS:
            runtime.store().check()     # a wrong bucket or endpoint: one line now, not a failed job later
        if uses_the_farm(args) and settings.redis_url:
            from cli.redis_server import unreachable

            if problem := unreachable(settings.redis_url):
                return fail(problem)
        if args.command == "ingest":
            return live_commands.run_ingest(get_settings(), fail)
        if args.command == "autoscale":
            return run_autoscale(args)
        if args.command == "enroll":
            return run_enroll(args)
        if args.command == "user":
            return run_user(args)
        if args.command == "db":
            return run_db(args)
        # These start child processes: every stop signal must unwind them (cli/signals.py).
        with stop_on_signals() as stops:
            if args.command == "watch":      # a stop while it watches ends the watch, results written
                return live_commands.run_watch(args, get_settings(), fail)
            return run_process(args, stops) if args.command == "process" else run_up(args)
    except Stopped as stop:
        print(f"vidfarm: stopped ({stop})", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("vidfarm: interrupted", file=sys.stderr)
        return 130
    except BlobStoreUnavailable as error:    # a wrong S3 endpoint, bucket or key: one line
        return fail(f"blob store: {error}")
    except SchemaOutOfDate as error:        # an old schema it may not upgrade, or a newer vidfarm's
        return fail(str(error))
    finally:
        runtime.reset()   # main() may run inside another process (the tests): leave it as it was


# The commands that read or write blobs (not db, user or autoscale: the migration Job and the
# autoscaler need no access to the bucket).
STORE_COMMANDS = frozenset({"process", "up", "ingest", "watch", "enroll"})
# The commands that use the farm REDIS_URL names, when it names one.
FARM_COMMANDS = frozenset({"process", "ingest", "watch"})


def uses_the_farm(args) -> bool:
    """Whether the command works on the farm REDIS_URL names (``autoscale simulate`` replays
    a trace file, no farm)."""
    return args.command in FARM_COMMANDS or (
        args.command == "autoscale" and getattr(args, "autoscale_command", None) != "simulate")


def fail(message: str, code: int = 1) -> int:
    print(f"vidfarm: error: {message}", file=sys.stderr)
    return code


def bad_settings(error: ValidationError | SettingsError) -> int:
    """Every problem with the settings (the environment), as one line; exit status 2. A
    SettingsError is a value pydantic-settings could not even parse (malformed JSON)."""
    found = ([f"{where}: {what}" if where else what for where, what in problems(error)]
             if isinstance(error, ValidationError) else [str(error)])
    line = " ".join("; ".join(found).split())    # one line, whatever a validator's message holds
    return fail(f"bad setting{'s' if len(found) > 1 else ''} {line}", code=2)


def run_user(args) -> int:
    """A user from the command line: how the first web login is made where `vidfarm up` does
    not run (on Kubernetes: kubectl exec into the web pod)."""
    from core.accounts import AccountError, Accounts
    from services import runtime

    get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(runtime.records())
    password = secrets.token_urlsafe(12)
    try:
        created = accounts.create_user(args.username, password, args.role)
    except AccountError as error:
        return fail(str(error))
    print(f"user    : {created.username} / {password}   ({created.role}; shown once)")
    print(f"token   : {accounts.create_token(created.id, 'cli')}")
    return 0


def run_db(args) -> int:
    """Operators' view of the schema; on Kubernetes the chart's hook Job runs `vidfarm db upgrade`."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from core import schema

    settings = get_settings()
    if args.action == "history":
        for revision, follows, doc in schema.history():
            print(f"{revision}  (after {follows or 'nothing'})  {doc}{'  [head]' if revision == schema.head() else ''}")
        return 0
    settings.data_dir.mkdir(parents=True, exist_ok=True)   # the SQLite file lives there
    try:
        if args.action == "current":
            engine = create_engine(settings.sqlalchemy_url)
            revision = schema.current(engine)
            engine.dispose()
            state = ("current" if revision == schema.head() else "newer than this vidfarm"
                     if schema.newer_than_known(revision) else f"behind: this vidfarm needs {schema.head()}")
            print(f"{revision or 'none (an empty database, or one made before migrations)'}  ({state})")
            return 0
        before = schema.upgrade(settings.sqlalchemy_url)
    except SQLAlchemyError as error:
        return fail(database_problem(error))
    print(f"database at {schema.head()}" + ("" if before == schema.head() else f" (was {before or 'none'})"))
    return 0


def database_problem(error) -> str:
    """A database error (SQLAlchemy's) as the end of one line: the driver's own words, where
    the driver raised it (only those errors carry ``orig``)."""
    return f"database: {' '.join(str(getattr(error, 'orig', None) or error).split())}"


def run_autoscale(args) -> int:
    from autoscaler.backends import ScaleError
    from autoscaler.simulate import TraceError

    try:
        return autoscale_command.run_autoscale(args, get_settings())
    except (ScaleError, TraceError, autoscale_command.UsageError) as error:
        return fail(str(error))


def bad_analyzer_config() -> int | None:
    """The exit status of a bad analyzer config (checked before any worker starts), or None."""
    from workers.analyzer_configs import AnalyzerConfigError, check

    try:
        check(get_settings().analyzer_configs(), get_settings().plugins)
    except AnalyzerConfigError as error:
        return fail(f"bad setting {error}", code=2)
    return None


def run_process(args, stops: StopSignals) -> int:
    from cli.farm import EmbeddedFarm
    from cli.gallery_option import folder_problem
    from core.processes import FarmStartError

    video: Path = args.video
    if video.is_dir():
        return fail(f"{video}: a folder, not a video file")
    if not video.is_file():
        return fail(f"{video}: no such file")
    if problem := folder_problem(args.gallery):     # before a farm starts for nothing
        return fail(problem)
    settings = get_settings()
    # An embedded farm's fork server checks the analyzer configs (one line and status 2 from
    # farm.started() if one is bad, before any worker or job exists).
    if settings.redis_url and (status := bad_analyzer_config()) is not None:
        return status
    farm = None if settings.redis_url else EmbeddedFarm(settings.data_dir, workers=args.workers)
    # Started first: its workers load while this process does its own imports, reads the
    # gallery and stores the recording.
    with farm or nullcontext():
        from cli.gallery_option import gallery_options
        from core.errors import GalleryError
        from core.storage import output_key
        from services import runtime
        from services.submit import MediaError, check_recording, new_job_id, submit_file, withdraw_job
        from sqlalchemy.exc import SQLAlchemyError
        from tasks import app as celery_app

        options = {"segment_seconds": args.segment_seconds} if args.segment_seconds else {}
        try:
            options.update(gallery_options(args.gallery), **sidecar_options(video))
        except GalleryError as exc:
            return fail(str(exc))
        except ValueError as exc:   # e.g. an unusable thermal calibration sidecar
            return fail(f"{video}: {exc}")
        try:   # refused at the door, as an upload is: no failed job, no wait for workers
            check_recording(settings, video)
        except MediaError as exc:
            return fail(f"{video}: {exc}")
        if problem := make_out_folder(args.out):
            return fail(problem)
        if farm is not None:
            celery_app.point_at(farm.redis_url)
            try:
                farm.started()
            except FarmStartError as error:
                return fail(str(error), code=2)
        # Chosen before its record is written: a stop at any moment of the submit (not held:
        # Ctrl-C must not wait for the recording's copy) knows the job it may leave behind.
        job_id, submitted = new_job_id(), False
        try:
            try:
                # Named by its file name, as an upload is: the folders it sits in (the user's
                # home, say) are no label for the shared jobs list.
                submit_file(runtime.farm(), video.resolve(), name=video.name, options=options, job_id=job_id)
            except ValueError as exc:
                return fail(f"{video}: {exc}")
            submitted = True
            # Held: a stop raised mid-import (the job view's) would leave end_stopped_job a
            # module it cannot import again (cli/signals.py).
            with stops.held():
                view = follow_job(job_id, farm, stops.check)
        except KeyboardInterrupt as stop:     # Stopped too: a stop signal
            signal_name = str(stop) or "SIGINT"
            try:
                # Stopped as it was submitted, before its progress showed: taken back, as a
                # failed submit is, unless a worker has begun it.
                withdrawn = not submitted and withdraw_job(runtime.farm(), job_id)
                # A running farm (REDIS_URL) runs a submitted job on; the embedded farm's workers
                # stop with this command: nothing else would end the job.
                if farm is not None and not withdrawn:
                    end_stopped_job(job_id, signal_name)
            except (SQLAlchemyError, BlobStoreUnavailable) as error:     # one line, as any stop's
                problem = database_problem(error) if isinstance(error, SQLAlchemyError) else str(error)
                return fail(f"stopped ({signal_name}), but its job {job_id} could not be ended and may stay listed "
                            f"as unfinished until a watchdog fails it: {problem}",
                            code=128 + getattr(stop, "signum", signal.SIGINT))
            raise
        if view["status"] != "done":
            return fail(f"{video}: {view['error']}")
        for name in ("annotated.mp4", "results.json"):
            shutil.copyfile(runtime.store().local_path(output_key(job_id, name)), args.out / name)
    print(done_line(view, json.loads((args.out / "results.json").read_text()), args.out))
    return 0


def end_stopped_job(job_id: str, signal_name: str) -> None:
    """A job whose embedded farm stops with `vidfarm process` says so, instead of showing as
    running (or its video as being drawn) in the shared jobs list until a watchdog gives up."""
    from services import runtime
    from services.jobs import job_view

    records = runtime.records()
    stopped = f"stopped ({signal_name}) before it was finished: the `vidfarm process` that ran it was stopped"
    records.fail_job(job_id, f"{stopped}; submit it again")
    view = job_view(records, job_id)
    if view["status"] == "done" and view["video_version"] < view["results_version"]:
        records.set_video_error(job_id, f"the video was {stopped}")


def done_line(view: dict, summary: dict, out: Path) -> str:
    named = sorted({t["identity"] for t in summary["tracks"] if t["identity"]})
    return (f"done: {counted(view['chunks_total'], 'segment')}, {counted(len(summary['tracks']), 'track')}"
            f"{' (' + ', '.join(named) + ')' if named else ''}, {counted(len(summary['alerts']), 'alert')} "
            f"-> {out / 'annotated.mp4'}, {out / 'results.json'}"
            f"{'; warning: ' + view['warning'] if view.get('warning') else ''}")


def sidecar_options(video: Path) -> dict:
    """A thermal calibration sidecar beside a recording (``VIDEO.thermal.json``) travels with
    its job; raises ``CalibrationError`` (a ValueError) when the sidecar is unusable."""
    from workers.analytics import thermal

    if not thermal.sidecar_path(video).is_file():
        return {}
    calibration = thermal.load_calibration(video, get_settings())
    return {"thermal": {"gain": calibration.gain, "offset": calibration.offset}}


def run_enroll(args) -> int:
    from core.errors import GalleryError
    from services import runtime
    from services.gallery import enroll
    from workers.enrolment import PhotoEmbedder

    folders = [str(p) for p in args.images if p.is_dir()]
    if folders:     # "no such file" would send the user looking for a path that is there
        return fail(f"a folder, not a photo: {', '.join(folders)} (name the photos in it)")
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        return fail(f"no such file: {', '.join(missing)}")
    try:
        # The faces are found and embedded here: enrolling from the command line needs no farm.
        result = enroll(runtime.farm(), args.name, [(p.name, p.read_bytes()) for p in args.images], largest_face=True,
                        embed=PhotoEmbedder.from_settings(get_settings()))
    except GalleryError as exc:
        return fail(str(exc))
    print(f"enrolled {result['name']}: {result['embeddings']} photo(s) in the gallery")
    return 0


def follow_job(job_id: str, farm, check_stop: Callable[[], None]) -> dict:
    """Show a progress bar of segments done until the job ends and, when done, its video is
    drawn from its results; returns its final view. ``check_stop`` raises to end it (between
    looks at the job, where nothing is half done)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.models import ENDED_STATES
    from services import runtime
    from services.jobs import job_view

    records = runtime.records()
    columns = (TextColumn("{task.fields[status]:<10}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("segments"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("job", total=None, status="queued")
        while True:
            view = job_view(records, job_id)
            drawing = view["status"] == "done" and view["video_version"] < view["results_version"]
            bar.update(task, completed=view["chunks_done"], total=view["chunks_total"] or None,
                       status="drawing" if drawing else view["status"])
            if view["status"] == "done" and view["video_error"]:
                return {**view, "status": "failed", "error": view["video_error"]}
            if view["status"] in ENDED_STATES and not drawing:
                return view
            # A dead worker is restarted and its segment given to a live one.
            gone = farm.supervise() if farm is not None else []
            if gone:
                return {**view, "status": "failed", "error": f"farm processes died: {', '.join(gone)}"}
            check_stop()
            time.sleep(0.2)


def run_up(args) -> int:
    from cli.data_dir_lock import DataDirInUse, holding_data_dir

    settings = get_settings()
    port = args.port or settings.web_port
    # One `up` per data folder (its Redis's AOF lives there), held until this process ends.
    ports = [("web", settings.web_host, port, "--port or VIDFARM_WEB_PORT"),
             ("Flower", "127.0.0.1", settings.flower_port, "VIDFARM_FLOWER_PORT")]
    try:
        with holding_data_dir(settings.data_dir):
            if problem := taken_port_problem(ports):
                return fail(problem)
            return serve_up(args, settings, port)
    except DataDirInUse as error:
        return fail(str(error))


def always_on_workers() -> str:
    """`up`'s always-on workers in words, e.g. "1 always-on worker (queues ingest)"."""
    from cli.farm import ALWAYS_ON_QUEUES

    return f"{counted(len(ALWAYS_ON_QUEUES), 'always-on worker')} (queues {'; '.join(ALWAYS_ON_QUEUES)})"


def serve_up(args, settings, port: int) -> int:
    """`vidfarm up` once it holds its data folder: runs the farm until a signal or a death."""
    from cli.farm import EmbeddedFarm
    from core.accounts import Accounts
    from core.processes import FarmStartError
    from services import runtime
    from tasks import app as celery_app

    flower_password = settings.flower_password or secrets.token_urlsafe(12)
    with EmbeddedFarm(settings.data_dir, workers=args.workers, web_port=port, web_host=settings.web_host,
                      autoscale=True, beat=True, cameras=True, flower_port=settings.flower_port,
                      flower_auth=f"{settings.flower_user}:{flower_password}", defer_extras=True,
                      keep_redis=True,      # a restarted `up` still has its cameras
                      report=lambda line: print(f"vidfarm: {line}", file=sys.stderr)) as farm:
        # While the farm's processes load (the schema's upgrade is locked: they may race for it).
        first_admin = Accounts(runtime.records()).ensure_admin()
        celery_app.point_at(farm.redis_url)     # its supervisor gives a dead worker's work to others
        try:
            farm.started()      # the analyzer configs checked by the workers' fork server
        except FarmStartError as error:
            return fail(str(error), code=2)
        print(f"vidfarm is up: {always_on_workers()}, and the local autoscaler's live workers (at least 1, "
              f"sized by the cameras' latency and floor) and CPU workers, {args.workers + 1} at most together, "
              f"live first; Redis at {farm.redis_url}")
        print(f"  web/API : http://localhost:{port}/   (API under /api/v1, OpenAPI at /api/v1/openapi.json)")
        if first_admin:
            username, password, token = first_admin
            print(f"  admin   : {username} / {password}   (created now; shown once)")
            print(f"  token   : {token}")
        else:
            print("  admin   : exists (its password and token were shown when it was created)")
        print(f"  flower  : http://127.0.0.1:{settings.flower_port}/   "
              f"(user {settings.flower_user}, password {flower_password})")
        print(f"  metrics : http://localhost:{port}/metrics   (Prometheus; with a token, as the API)")
        print(f"  beat    : {beat_duties(settings)}")
        print("  cameras : POST /api/v1/cameras registers one; the ingester watches it (segments on the live queue)")
        print(f"  logs    : {farm.log_dir}")
        print("Ctrl-C (or SIGTERM, SIGHUP) stops every process.")
        while True:
            dead = farm.supervise()
            if dead:
                return fail(f"farm process exited: {', '.join(dead)} (see {farm.log_dir})")
            time.sleep(1)


def beat_duties(settings) -> str:
    """What `up`'s beat does that an operator would wait for (its sweeps run unseen)."""
    duties = "re-identifies stored recordings after the gallery changes"
    if settings.reanalyse_hours:
        duties += (f"; re-analyses the last {settings.reanalyse_hours:g} h each day at "
                   f"{settings.reanalyse_at_hour:02d}:00 UTC")
    return duties


if __name__ == "__main__":
    sys.exit(main())
