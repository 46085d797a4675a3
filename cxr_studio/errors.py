"""The one exception type for bad user input."""

from __future__ import annotations


class InputError(ValueError):
    """Raised for input the user can fix: the message says what was wrong and what is accepted.

    Every module of CXR Studio raises this (and only this) for bad images, masks, reports,
    parameters, model folders and datasets, so the app can show the message as a notification
    and scripts can catch one type.
    """
