"""Input rules shared by services: each failure names the input field it concerns."""

from __future__ import annotations

import re

from gql_chat.errors import BadUserInput

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not our business.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
PASSWORD_LENGTH = (8, 1024)
DISPLAY_NAME_LENGTH = (1, 100)


def normalize_email(value: str, field: str = "email") -> str:
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(email):
        raise BadUserInput(field, "Enter a valid email address.")
    return email


def check_password(value: str, field: str = "password") -> str:
    low, high = PASSWORD_LENGTH
    if not low <= len(value) <= high:
        raise BadUserInput(field, f"Password must be {low} to {high} characters.")
    return value


def check_text(value: str, field: str, low: int, high: int, label: str) -> str:
    """Trim and check a length range."""
    text = value.strip()
    if not low <= len(text) <= high:
        raise BadUserInput(field, f"{label} must be {low} to {high} characters.")
    return text


def check_display_name(value: str, field: str = "displayName") -> str:
    return check_text(value, field, *DISPLAY_NAME_LENGTH, label="Display name")
