"""REST API for the gallery of known faces (contract 5): list, enrol, rename or flag for the
watchlist, delete (erase), and the report of an erasure.
Reading needs any role; changing the gallery and reading erasure reports need admin."""

from __future__ import annotations

from apiflask import APIBlueprint, abort
from flask import request, url_for

from core.errors import GalleryError
import services.erasure
import services.gallery
from services.gallery import NoWorkerAnswered
from web import gallery_views as service
from web.api import error_responses
from web.auth import token_auth
from web.context import farm
from web.schemas import EnrolIn, EnrolOut, ErasureOut, IdentityOut, IdentityPatchIn, NoQuery
from web.uploads import UploadRejected

identities = APIBlueprint("identities", __name__, url_prefix="/api/v1", tag="identities")


@identities.get("/identities")
@identities.auth_required(token_auth, roles=["viewer"])
@identities.input(NoQuery, location="query", arg_name="_query")
@identities.output(IdentityOut(many=True))
@identities.doc(summary="The enrolled identities", responses=error_responses(400))
def list_identities(_query):
    return service.identities()


@identities.post("/identities")
@identities.auth_required(token_auth, roles=["admin"])
@identities.input(EnrolIn, location="form_and_files", arg_name="form")
@identities.output(EnrolOut, status_code=201)
@identities.doc(summary="Enrol an identity from one or more face photos",
                description="A worker finds and embeds the faces (at most `VIDFARM_ENROL_TIMEOUT_S`).",
                responses=error_responses(400, 403, 413, 503))
def enrol(form):
    try:
        photos = service.read_photos(request.files.getlist("photos"))
        result = services.gallery.enroll(farm(), form["name"], photos)
    except UploadRejected as exc:
        abort(exc.status, exc.message)
    except NoWorkerAnswered as exc:
        abort(503, str(exc), headers={"Retry-After": "30"})
    except GalleryError as exc:
        abort(400, str(exc))
    return {"name": result["name"], "embeddings": result["embeddings"], "crops": len(result["crops"]),
            "crop_url": url_for("gallery.crop", name=result["name"])}


@identities.patch("/identities/<name>")
@identities.auth_required(token_auth, roles=["admin"])
@identities.input(IdentityPatchIn, location="json", arg_name="body")
@identities.output(IdentityOut)
@identities.doc(summary="Rename an identity, flag it for the watchlist, or both",
                responses=error_responses(400, 403, 404))
def change(name: str, body):
    if services.gallery.find_identity(farm(), name) is None:
        abort(404, f"no identity named {name!r}")
    try:
        name = services.gallery.change_identity(farm(), name, body.get("name"), body.get("watchlist"))
    except GalleryError as exc:
        abort(400, str(exc))
    return service.identity_view(services.gallery.find_identity(farm(), name))


@identities.delete("/identities/<name>")
@identities.auth_required(token_auth, roles=["admin"])
@identities.output(ErasureOut, status_code=202, headers={"Location": {"type": "string"}})
@identities.doc(summary="Erase an identity: from the gallery at once, then from every recording",
                description="Its embeddings and face crops are deleted now; a background task then "
                            "removes it from every job (results, older versions, per-segment "
                            "analyses, videos). The answer is the erasure's report so far; follow "
                            "`Location` for the rest.", responses=error_responses(403, 404))
def delete(name: str):
    report = services.gallery.delete_identity(farm(), name)
    if report is None:
        abort(404, f"no identity named {name!r}")
    return report, 202, {"Location": url_for("identities.erasure", erasure_id=report["id"])}


@identities.get("/erasures/<erasure_id>")
@identities.auth_required(token_auth, roles=["admin"])
@identities.output(ErasureOut)
@identities.doc(summary="What an erasure removed (status: queued, running or done)", responses=error_responses(403, 404))
def erasure(erasure_id: str):
    report = services.erasure.find(farm(), erasure_id)
    if report is None:
        abort(404, f"no erasure {erasure_id}")
    return report
