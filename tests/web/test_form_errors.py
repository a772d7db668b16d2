"""Validation problems (WTForms forms, APIFlask request bodies) as the one line people see."""

from __future__ import annotations

from flask import Flask
from werkzeug.datastructures import MultiDict

from web.forms import EXPIRED, EnrolForm, RenameForm, TrackEnrolForm, UserForm, problems_line


def test_apiflask_problems_by_location_name_each_field():
    detail = {"files": {"file": ["Missing data for required field."]},
              "form": {"name": ["Too long.", "Not a name."], "role": "Unknown role."}}
    assert problems_line(detail) == ("file: Missing data for required field., name: Too long.; Not a name., "
                                     "role: Unknown role.")
    assert problems_line({"json": ["Invalid input type."]}) == "json: Invalid input type."


def test_a_list_items_problems_name_the_item_not_a_python_dict(client):
    """`-F analyzers=bogus` was answered "analyzers: {0: ['Must be one of: mask, ...']}"."""
    from tests.web.conftest import BOOTSTRAP

    response = client.post("/api/v1/jobs", headers=BOOTSTRAP, content_type="multipart/form-data",
                           data={"analyzers": ["mask", "bogus"]})
    assert response.status_code == 400
    assert "analyzers[1]: Must be one of: " in response.json["error"]
    assert "{" not in response.json["error"] and "[\'" not in response.json["error"]


def test_form_problems_with_and_without_field_names():
    errors = {"name": ["This field is required."], "photos": ["choose one or more photos"]}
    assert problems_line(errors) == "name: This field is required., photos: choose one or more photos"
    assert problems_line(errors, named=False) == "This field is required., choose one or more photos"
    assert problems_line({"csrf_token": ["The CSRF token has expired."], "file": ["choose a recording"]},
                         named=False) == f"{EXPIRED}, choose a recording"
    assert problems_line({}) == ""


def test_real_wtforms_errors_flatten_to_one_line():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False)
    with app.test_request_context(method="POST", data={"username": "x" * 65, "password": "short"}):
        form = UserForm(formdata=MultiDict({"username": "x" * 65, "password": "short"}))
        assert not form.validate()
        line = problems_line(form.errors)
        assert line.startswith("username: Field cannot be longer than 64 characters., password: Field must be")
        assert "\n" not in line
    with app.test_request_context(method="POST"):
        form = EnrolForm(formdata=MultiDict())
        assert not form.validate()
        assert problems_line(form.errors, named=False) == "type the person's name, choose one or more photos"


def test_the_gallery_forms_say_which_field_without_field_names():
    """The gallery's forms show problems without field names: "This field is required." at the
    top of a page of many forms (a name of spaces only, say) said nothing of which one."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False)
    for form_class, field in ((EnrolForm, "name"), (TrackEnrolForm, "name"), (RenameForm, "new_name")):
        for value in ("   ", "x" * 65):
            with app.test_request_context(method="POST"):
                form = form_class(formdata=MultiDict({field: value}))
                assert not form.validate()
                line = problems_line({field: form.errors[field]}, named=False)
                assert "name" in line and "This field" not in line and "Field cannot" not in line, line
