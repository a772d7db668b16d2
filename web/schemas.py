"""Marshmallow schemas of the REST API; the OpenAPI document is generated from them. The pages
check their query parameters with QuerySchemas too (``web.page_query``)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, File, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from core.accounts import MIN_PASSWORD, ROLES
from core.models import JOB_STATES
from core.results import ALERT_KINDS
from services.submit import registered_analyzers

ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


class UploadIn(Schema):
    file = File(required=True, metadata={"description": "The recording (any container/codec FFmpeg reads)."})
    analyzers = List(String(validate=OneOf(registered_analyzers())),
                     metadata={"description": "Analyzers to run after detection (repeat the field; "
                                              "none given: the farm's default chain)."})


class JobOut(Schema):
    id = String(required=True)
    status = String(required=True, validate=OneOf(JOB_STATES))
    progress = Float(required=True, validate=Range(0, 1))
    chunks_done = Integer(required=True)
    chunks_total = Integer(required=True)
    error = String(required=True, allow_none=True)
    warning = String(allow_none=True, metadata={"description": "Set on a job done despite a damaged recording: "
                                                                "how many frames were damaged (results: damaged)."})
    source_name = String()
    created_at = String(allow_none=True)
    finished_at = String(allow_none=True)
    results_version = Integer(metadata={"description": "Latest results version (0: none yet); "
                                                     "earlier ones stay readable with ?version=N."})
    video_version = Integer(metadata={"description": "The results version the annotated video shows (0: none "
                                                   "yet). Below results_version: it is being drawn again."})
    video_error = String(allow_none=True, metadata={"description": "Why the video could not follow the results."})
    alerts = Integer(metadata={"description": "Alerts its latest results raise (listed at /api/v1/alerts?job=ID)."})


class JobCreated(JobOut):
    """The new job's view (as GET /jobs/{id} gives it), with ``name`` as this answer gave it first."""
    source_name = String(required=True, metadata={"description": "The stored label (the file name's last part)."})
    name = String(required=True, metadata={"description": "The same as source_name (kept for clients that read it)."})


class QuerySchema(Schema):
    """A request's query parameters; one it does not take is refused (400, naming it). Left to
    webargs, a query string's unknown names are dropped: a mistyped filter (``?statu=failed``)
    answered the whole list as if it were the filtered one."""

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def only_known_parameters(self, _data, original, **_kwargs):
        known = sorted(field.data_key or name for name, field in self.load_fields.items())
        unknown = sorted(set(original) - set(known))
        if unknown:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise ValidationError({name: [f"not a query parameter of this request ({takes})"] for name in unknown})


class NoQuery(QuerySchema):
    """A list that takes no query parameters: any is refused, as a filter it cannot apply."""


class PageNumber(QuerySchema):
    """A list shown a page at a time (the API's lists, and the pages': ``web.page_query``)."""
    page = Integer(load_default=1, validate=Range(min=1, max=1_000_000))


# How many rows a page of an API list may ask for (``per_page``), the same for every list.
PER_PAGE = Range(min=1, max=200)


class JobsPage(PageNumber):
    """The UI's Jobs page (a page of the jobs_per_page setting's size, as the Alerts page's)."""
    status = String(validate=OneOf(JOB_STATES))


class JobListQuery(JobsPage):
    # Omitted, the jobs_per_page setting: the UI's Jobs page and the API list the same jobs per page.
    per_page = Integer(validate=PER_PAGE, metadata={"description": "Jobs per page (default: the "
                                                                   "jobs_per_page setting, 20)."})


class ListedJob(JobOut):
    """A job in a page of jobs: JobOut's fields. A class of its own because apiflask adds each
    route's response schema by itself, the routes with shorter paths first: a JobOut nested in
    the page (``/jobs``) and the same class answering ``/jobs/<id>`` made it add JobOut twice
    (apispec's "already been added to the spec" warning, and a copy named JobOut1)."""


class JobPage(Schema):
    jobs = Nested(ListedJob, many=True, required=True)
    page = Integer(required=True)
    next_page = Integer(required=True, allow_none=True)


class ResultsQuery(QuerySchema):
    version = Integer(validate=Range(min=1), metadata={"description": "An earlier results version "
                                                                     "(each re-analysis adds one)."})
    download = Boolean(load_default=False, metadata={"description": "Answer with Content-Disposition: "
                                                                    "attachment (a browser saves the file)."})


class IdentityOut(Schema):
    name = String(required=True)
    embeddings = Integer(required=True)
    watchlist = Boolean(required=True, metadata={"description": "Recognising this person raises a watchlist alert."})
    created_at = String(allow_none=True)
    crop_url = String(allow_none=True, metadata={"description": "A face crop used for this identity."})


class EnrolIn(Schema):
    name = String(required=True, validate=Length(1, 64))
    photos = List(File(), required=True, validate=Length(min=1),
                  metadata={"description": "One or more photos, each showing exactly this person's face."})


class EnrolOut(Schema):
    name = String(required=True)
    embeddings = Integer(required=True)
    crops = Integer(required=True, metadata={"description": "Face crops used (one per photo)."})
    crop_url = String(required=True)


class IdentityPatchIn(Schema):
    """Rename, flag for the watchlist, or both (a field left out stays as it is)."""
    name = String(validate=Length(1, 64), metadata={"description": "A new name."})
    watchlist = Boolean(metadata={"description": "Raise a watchlist alert wherever this person is recognised."})


class ErasureJobOut(Schema):
    results_version = Integer(metadata={"description": "The results version published without the person."})
    versions_deleted = List(Integer(), metadata={"description": "Older results versions that named them."})
    segment_files_scrubbed = Integer()
    options_scrubbed = Boolean(metadata={"description": "The job no longer refers to the person."})
    video = String(metadata={"description": "queued, re-rendered (...), or why not"})
    video_of = Integer(metadata={"description": "The results version the video is drawn from again."})


class ErasureOut(Schema):
    """What an erasure removed. It never says whom: that is what it erased."""
    id = String(required=True)
    status = String(required=True, validate=OneOf(("queued", "running", "done")))
    identity_id = Integer(required=True)
    created_at = String(allow_none=True)
    finished_at = String(allow_none=True)
    embeddings_removed = Integer(required=True)
    crops_removed = Integer(required=True)
    jobs = Dict(keys=String(), values=Nested(ErasureJobOut), load_default=dict,
                metadata={"description": "Per job id: what was removed there."})
    jobs_republished = Integer(required=True)
    versions_deleted = Integer(required=True)
    segment_files_scrubbed = Integer(required=True)
    videos_rerendered = Integer(required=True)
    waiting_for_jobs = List(String(), metadata={"description": "Running jobs it waits for."})
    waiting_for_videos = List(String(), metadata={"description": "Jobs whose video is being drawn again."})
    database = String(metadata={"description": "How the database was made to forget the deleted rows."})


# A dict of fields: apiflask's output() turns it into the OpenAPI headers object (a ready-made
# headers object there came out as no headers at all).
NEXT_PAGE_HEADER = {"Link": String(metadata={"description": '`<URL>; rel="next"` when another page follows'})}


class PageQuery(PageNumber):
    per_page = Integer(load_default=20, validate=PER_PAGE)


class AppearanceOut(Schema):
    """One track of one recording that shows the person."""
    job = String(required=True)
    track = Integer(required=True)
    first_t = Float(required=True, metadata={"description": "Seconds from the recording's start."})
    last_t = Float(required=True)
    thumbnail = String(required=True, allow_none=True, metadata={"description": "URL of the track's face crop (JPEG)."})
    source_name = String(metadata={"description": "The recording's name."})
    recorded_at = String(allow_none=True)


class PhotoOut(Schema):
    id = Integer(required=True)
    source = String(required=True, metadata={"description": "The photo's file name, or the recording and track "
                                                          "it was enrolled from."})
    crop_url = String(required=True, allow_none=True)
    created_at = String(allow_none=True)


class TrackEnrolIn(Schema):
    name = String(required=True, validate=Length(1, 64),
                  metadata={"description": "A new person's name, or an enrolled person's (one more photo)."})


class DeliveryOut(Schema):
    url = String(required=True)
    status = String(required=True, validate=OneOf(("pending", "delivered", "failed")))
    attempts = Integer(required=True)
    status_code = Integer(allow_none=True)
    last_error = String(allow_none=True)
    delivered_at = String(allow_none=True)


class AlertOut(Schema):
    id = Integer(required=True)
    kind = String(required=True)
    job = String(required=True, allow_none=True,
                 metadata={"description": "null for a live camera's alert (raised before its recording was a job)"})
    camera = String(allow_none=True)
    track = Integer(required=True)
    t = Float(required=True)
    identity = String(allow_none=True)
    detail = String(allow_none=True)
    withdrawn = Boolean(required=True, metadata={"description": "The job's latest results no longer list it."})
    raised_at = String(allow_none=True)
    source_name = String(allow_none=True)
    captured_at = String(allow_none=True, metadata={"description": "A live camera's alert: when its frame was "
                                                                   "captured (null otherwise)."})
    repeat_of = Integer(required=True, allow_none=True, metadata={
        "description": "The id of the alert that rang about the same person (same kind, same job or live camera) "
                       "less than VIDFARM_ALERT_REPEAT_S before: this one was recorded, not sent to the webhooks. "
                       "null: it rang."})
    repeats = Integer(required=True, metadata={"description": "How many alerts are recorded as repeats of this one."})
    deliveries = Nested(DeliveryOut, many=True, required=True)


class AlertFilter(Schema):
    """Which alerts a list shows (the API's and the Alerts page's)."""
    job = String(validate=Length(1, 32), metadata={"description": "Only this job's alerts."})
    # Who had no mask, who was on the watchlist: one kind at a time, across every recording.
    kind = String(validate=OneOf(ALERT_KINDS), metadata={"description": "Only the alerts of this kind."})


class AlertQuery(PageQuery, AlertFilter):
    folded = Boolean(load_default=False, metadata={"description": "Only the alerts that rang (not repeats); "
                                                                  "`repeats` counts each one's repeats."})


class UserOut(Schema):
    id = Integer(required=True)
    username = String(required=True)
    role = String(required=True, validate=OneOf(ROLES))
    must_change_password = Boolean(required=True)
    created_at = String(allow_none=True)


class UserPatchIn(Schema):
    role = String(required=True, validate=OneOf(ROLES))


class PasswordResetOut(Schema):
    username = String(required=True)
    password = String(required=True, metadata={"description": "A one-time password, shown this once: the user "
                                                              "must choose a new one at their next login."})


class PasswordChangeIn(Schema):
    current_password = String(required=True, validate=Length(1, 256))
    new_password = String(required=True, validate=Length(MIN_PASSWORD, 256))
