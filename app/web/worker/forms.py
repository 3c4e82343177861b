"""The worker pages' forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.fields import TelField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3 has it; types-WTForms 3.2 lacks it
from wtforms.validators import DataRequired, Length

from app.web.worker.messages import PLATFORM_LABELS

# The first option of a choice the worker must make: nothing is chosen for them (issue 11, item 4).
PLEASE_CHOOSE = _l("Please choose")


def please_choose() -> SelectChoice:
    return SelectChoice("", PLEASE_CHOOSE)


class JoinForm(FlaskForm):
    form_key = HiddenField()
    name = StringField(
        _l("Your name"),
        validators=[
            DataRequired(message=_l("Please enter your name.")),
            Length(max=50, message=_l("Please use at most 50 characters.")),
        ],
    )
    phone = TelField(_l("Mobile phone"))
    platform = SelectField(
        _l("Platform you work for"),
        choices=[please_choose(), *(SelectChoice(p.value, label) for p, label in PLATFORM_LABELS.items())],
        validators=[DataRequired(message=_l("Please choose the platform you work for."))],
    )
    workplace = SelectField(
        _l("Your station"),
        choices=[],
        validate_choice=True,
        validators=[DataRequired(message=_l("Please choose your station."))],
    )
    consent = BooleanField(
        validators=[
            DataRequired(message=_l("Please read the notice and tick the box to continue.")),
        ]
    )
    # Only when an SMS provider abroad may send the code (poster.prepare removes it otherwise).
    cross_border = BooleanField(
        validators=[
            DataRequired(message=_l("Codes can only be sent through this provider: please tick this box too.")),
        ]
    )


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code"), validators=[DataRequired(message=_l("Please enter the code from the SMS."))])


class EmptyForm(FlaskForm):
    """A CSRF token and nothing else (the resend button)."""


class PhoneForm(FlaskForm):
    phone = TelField(_l("Mobile phone"))


class WithdrawForm(FlaskForm):
    confirm = BooleanField(validators=[DataRequired(message=_l("Tick the box to confirm."))])


class ChallengeForm(FlaskForm):
    answer = StringField(
        _l("Digits in the picture"), validators=[DataRequired(message=_l("Please type the digits in the picture."))]
    )
