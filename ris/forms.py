"""The login form and the username limits shared with the token endpoint."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator

# The longest username there can be; django-axes records failed attempts in a varchar(255),
# so anything longer would otherwise end as a database error instead of a form error.
USERNAME_MAX_LENGTH = get_user_model()._meta.get_field("username").max_length or 150
AXES_USERNAME_MAX_LENGTH = 255


class LoginForm(AuthenticationForm):
    """AuthenticationForm sets ``max_length`` on its username field after the field is built,
    so the limit shows in the widget but is never validated: add the validator."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        field = self.fields["username"]
        field.max_length = USERNAME_MAX_LENGTH
        field.widget.attrs["maxlength"] = str(USERNAME_MAX_LENGTH)
        field.validators.append(MaxLengthValidator(USERNAME_MAX_LENGTH))


def axes_username(request, credentials=None) -> str | None:
    """AXES_USERNAME_CALLABLE: the username axes records, cut to what its table holds.

    A last line of defence for every login path (admin, API token, page): a 300-character
    username is still counted against the lockout, it just cannot overflow the column.
    """
    if credentials:
        username = credentials.get("username")
    else:
        data = getattr(request, "data", None) or request.POST
        username = data.get("username")
    if isinstance(username, str):
        return username[:AXES_USERNAME_MAX_LENGTH]
    return username
