"""The API matches its OpenAPI document: schemathesis generates requests from the document and
sends them over HTTP to the live app (real farm behind it), checking every response against it."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.web.conftest import BOOTSTRAP


@pytest.fixture(scope="session")
def api_schema(live_server):
    return schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json", headers=BOOTSTRAP)


# Uploads whose schema says "a binary file": whether the bytes are a video (or a photo with one
# face) only probing can tell, so schema-valid random bytes are rightly refused (415/400).
CONTENT_CHECKED = {("POST", "/api/v1/jobs"), ("POST", "/api/v1/identities")}


def excluded_for(operation) -> list:
    if (operation.method.upper(), operation.path) in CONTENT_CHECKED:
        return [schemathesis.checks.positive_data_acceptance]   # every other check still runs
    return []


# Operations on whichever user id Hypothesis picks would demote or lock out the test session's
# own users: checked below on a user made for it instead.
ON_A_THROWAWAY_USER = {("PATCH", "/api/v1/users/{user_id}"), ("POST", "/api/v1/users/{user_id}/password-reset")}


def operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


def fuzzed(api_schema) -> list:
    return [op for op in operations(api_schema) if (op.method.upper(), op.path) not in ON_A_THROWAWAY_USER]


# The suite runs the same examples every time (derandomized: a failure reproduces on each run, and
# CI cannot go red by chance); `make fuzz` sets VIDFARM_FUZZ_EXAMPLES to explore with random seeds,
# many more examples per operation, and schema-violating requests too.
FUZZ_EXAMPLES = int(os.environ.get("VIDFARM_FUZZ_EXAMPLES") or 0)
MODES = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if FUZZ_EXAMPLES else [])


def excluded_in(mode, operation) -> list:
    if mode == GenerationMode.NEGATIVE:
        # Unknown query parameters are ignored, as most APIs do, so a request "violating" the
        # document may rightly succeed; the answer must still be no 500 and a documented one.
        return [*excluded_for(operation), schemathesis.checks.negative_data_rejection]
    return excluded_for(operation)


def test_api_matches_its_openapi_document(api_schema):
    # schemathesis.pytest.from_fixture does not run under pytest 9, so each operation gets its
    # own Hypothesis run here; a failure names the operation and the case that broke it, and the
    # run goes on, so that one run names every operation that fails.
    checked, failures = [], []
    for operation in fuzzed(api_schema):
        name = f"{operation.method.upper()} {operation.path}"
        for mode in MODES:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=FUZZ_EXAMPLES or 30, derandomize=not FUZZ_EXAMPLES, deadline=None,
                      suppress_health_check=list(HealthCheck), database=None)
            def exercise(case):
                case.call_and_validate(headers=BOOTSTRAP, excluded_checks=excluded_in(mode, operation))

            try:
                exercise()
            except (Exception, BaseExceptionGroup) as failure:   # schemathesis raises a FailureGroup
                failures.append(f"{name} ({mode.value} requests): {failure}")
        checked.append(name)
    assert not failures, "\n\n".join(failures)
    assert len(checked) >= 6, checked


def test_document_covers_contract_5(live_server):
    import requests

    document = requests.get(f"{live_server}/api/v1/openapi.json", headers=BOOTSTRAP, timeout=10).json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/jobs"])
    for path in ("/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/results", "/api/v1/jobs/{job_id}/video"):
        assert "get" in paths[path]
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


def test_real_job_responses_match_the_document(api_schema, face_clip):
    # Random ids only reach the 404 answers; a real recording walks the 201, 200 and 206 ones.
    from tests.conftest import wait_for_job

    by_key = {(op.method.upper(), op.path): op for op in operations(api_schema)}
    upload = by_key[("POST", "/api/v1/jobs")].Case(
        media_type="multipart/form-data", body={"file": face_clip.path.read_bytes()})
    created = upload.call_and_validate(headers=BOOTSTRAP)
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert wait_for_job(job_id)["status"] == "done"
    for path, extra in (("/api/v1/jobs/{job_id}", {}), ("/api/v1/jobs/{job_id}/results", {}),
                        ("/api/v1/jobs/{job_id}/video", {"Range": "bytes=0-1023"})):
        response = by_key[("GET", path)].Case(path_parameters={"job_id": job_id}).call_and_validate(
            headers={**BOOTSTRAP, **extra})
        assert response.status_code == (206 if extra else 200)
    deleted = by_key[("DELETE", "/api/v1/jobs/{job_id}")].Case(path_parameters={"job_id": job_id})
    assert deleted.call_and_validate(headers=BOOTSTRAP).status_code == 204


def test_user_changes_match_the_document_on_a_throwaway_user(api_schema, web_app):
    from core.accounts import Accounts
    from services import runtime

    user = Accounts(runtime.records()).create_user("openapi-throwaway", "correct horse battery", "viewer")
    by_key = {(op.method.upper(), op.path): op for op in operations(api_schema)}
    changed = by_key[("PATCH", "/api/v1/users/{user_id}")].Case(
        path_parameters={"user_id": user.id}, body={"role": "operator"}, media_type="application/json")
    assert changed.call_and_validate(headers=BOOTSTRAP).json()["role"] == "operator"
    reset = by_key[("POST", "/api/v1/users/{user_id}/password-reset")].Case(path_parameters={"user_id": user.id})
    assert reset.call_and_validate(headers=BOOTSTRAP).json()["username"] == "openapi-throwaway"
    for key in ON_A_THROWAWAY_USER:      # and the 404 of a user that is not there
        missing = by_key[key].Case(path_parameters={"user_id": 10**9}, **(
            {"body": {"role": "viewer"}, "media_type": "application/json"} if key[0] == "PATCH" else {}))
        assert missing.call_and_validate(headers=BOOTSTRAP).status_code == 404


def test_document_names_each_schema_once(web_app):
    # A schema used as a response and nested in another one was once added twice (JobOut and
    # JobOut1, with apispec's "has already been added to the spec" warning).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with web_app.app_context():
            document = web_app._get_spec(force_update=True)
    names = set(document["components"]["schemas"])
    assert not {name for name in names if name[-1].isdigit() and name.rstrip("0123456789") in names}
    job = document["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"]["200"]["content"]
    assert job["application/json"]["schema"] == {"$ref": "#/components/schemas/JobOut"}
