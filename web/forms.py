"""The UI's forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, MultipleFileField
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from core.accounts import MIN_PASSWORD, ROLES

# Analyzers a user may switch per job; the farm's defaults apply to the rest.
OPTIONAL_ANALYZERS = (("track", "Track faces"), ("recognize", "Recognise against the gallery"),
                      ("mask", "Mask classifier"), ("thermal", "Fever screening (radiometric input)"))


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class UploadForm(FlaskForm):
    file = FileField("Recording", validators=[FileRequired("choose a recording to upload")])
    track = BooleanField(OPTIONAL_ANALYZERS[0][1], default=True)
    recognize = BooleanField(OPTIONAL_ANALYZERS[1][1], default=True)
    mask = BooleanField(OPTIONAL_ANALYZERS[2][1], default=True)
    thermal = BooleanField(OPTIONAL_ANALYZERS[3][1], default=False)

    def options(self) -> dict:
        return {"analyzers": [name for name, _ in OPTIONAL_ANALYZERS if getattr(self, name).data]}


class ConfirmForm(FlaskForm):
    """A button that changes something (delete, revoke, log out): only the CSRF token."""


class EnrolForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    photos = MultipleFileField("Photos", validators=[FileRequired("choose one or more photos")])


class RenameForm(FlaskForm):
    new_name = StringField("New name", validators=[DataRequired(), Length(max=64)])


class UserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=256)])
    role = SelectField("Role", choices=list(ROLES), default="viewer")


class TokenForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=64)], default="api")
