"""The UI's forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, MultipleFileField
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, EqualTo, Length

from core.accounts import MIN_PASSWORD, ROLES
from services.gallery import list_identities
from services.submit import analyzer_chain, default_analyzers, optional_analyzers
from web.context import farm

EXPIRED = "the form has expired; reload the page"
# The gallery's forms show their problems without field names (one page holds several forms,
# one per row): each message says which field it is about. Spaces alone count as empty.
NAME_REQUIRED = "type the person's name"
NAME_TOO_LONG = "a name has at most 64 characters"

# Labels for the analyzers the farm knows today; one registered later shows under its own name.
ANALYZER_LABELS = {"track": "Track faces", "recognize": "Recognise against the gallery",
                   "mask": "Mask classifier",
                   "thermal": "Fever screening (runs when the recording is radiometric thermal video)"}


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class UploadForm(FlaskForm):
    file = FileField("Recording", validators=[FileRequired("choose a recording to upload")])
    analyzers = SelectMultipleField("Analysis", widget=ListWidget(prefix_label=False),
                                    option_widget=CheckboxInput(), validate_choice=True)
    # Empty: the whole shared gallery. Some names: match against those people only.
    gallery = SelectMultipleField("Gallery", widget=ListWidget(prefix_label=False),
                                  option_widget=CheckboxInput(), validate_choice=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.analyzers.choices = [(n, ANALYZER_LABELS.get(n, n)) for n in optional_analyzers(farm().settings)]
        if self.analyzers.data is None:
            self.analyzers.data = default_analyzers(farm().settings)
        # By identity id: the job refers to the people ticked, it copies none of their data.
        self.gallery.choices = [(str(i["id"]), i["name"]) for i in list_identities(farm())]

    def options(self) -> dict:
        options = {"analyzers": analyzer_chain(farm().settings, self.analyzers.data or [])}
        if self.gallery.data:
            options["gallery_ids"] = sorted(int(choice) for choice in self.gallery.data)
        return options


class ConfirmForm(FlaskForm):
    """A button that changes something (delete, revoke, log out): only the CSRF token."""


class EnrolForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(NAME_REQUIRED), Length(max=64, message=NAME_TOO_LONG)])
    photos = MultipleFileField("Photos", validators=[FileRequired("choose one or more photos")])


class RenameForm(FlaskForm):
    new_name = StringField("New name", validators=[DataRequired("type the new name"),
                                                   Length(max=64, message=NAME_TOO_LONG)])


class UserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=256)])
    role = SelectField("Role", choices=list(ROLES), default="viewer")


class TokenForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=64)], default="api")


def problems_line(errors: dict, named: bool = True) -> str:
    """Validation problems as the one line a flash message or a JSON error shows.

    ``errors``: a WTForms form's (``{"name": ["This field is required."]}``) or APIFlask's, by
    request location (``{"files": {"file": ["Missing data for required field."]}}``) -> each
    field's problems, ``"file: Missing data for required field."``, fields joined by ", ".
    ``named=False`` leaves the field names out, for forms whose messages are written as
    sentences ("choose a recording to upload"). A bad CSRF token reads as an expired form."""
    parts = []
    for location, fields in errors.items():
        for field, problems in (fields.items() if isinstance(fields, dict) else [(location, fields)]):
            if field == "csrf_token":
                parts.append(EXPIRED)
                continue
            for name, text in _field_problems(field, problems):
                parts.append(f"{name}: {text}" if named else text)
    return ", ".join(parts)


def _field_problems(field: str, problems) -> list[tuple[str, str]]:
    """(name, problems) of a field; a list's items by index, ``analyzers[0]``, where marshmallow
    nests them (``{0: ["Must be one of: ..."]}``, which read as a Python dict in the line)."""
    if isinstance(problems, dict):
        return [item for key, nested in problems.items() for item in _field_problems(f"{field}[{key}]", nested)]
    return [(field, "; ".join(map(str, problems)) if isinstance(problems, list) else str(problems))]


class PhotoForm(FlaskForm):
    """One more photo of a person (the person page adds them one at a time)."""
    photo = FileField("Photo", validators=[FileRequired("choose a photo of the person's face")])


class TrackEnrolForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(NAME_REQUIRED), Length(max=64, message=NAME_TOO_LONG)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])
    new = PasswordField("New password", validators=[DataRequired(), Length(
        min=MIN_PASSWORD, max=256, message=f"a password needs {MIN_PASSWORD} to 256 characters")])
    repeat = PasswordField("New password again", validators=[EqualTo("new", "the two new passwords differ")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLES))
