"""Exceptions of the safety layer.

Every refusal is a ``SafetyError`` (a ``ValueError``) whose message is one complete, human sentence that
can be shown to the uploader as it is: it never contains a traceback, a file path on the server or the
name of a protected person.
"""
from __future__ import annotations

from vasa_core.errors import InputError, ValidationError  # noqa: F401  (ValidationError: raised by vasa_core.validate)


class SafetyError(InputError):
    """Base class of every refusal raised by the safety layer. ``str(err)`` is the public message."""


class ConsentError(SafetyError):
    """The consent step was not completed (no choice, no name, or a selfie that could not be checked)."""


class LikenessError(SafetyError):
    """Likeness screening could not run on the input (for example: no face found in a gallery photo)."""
