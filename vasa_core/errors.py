"""Errors a user can cause, each with a specific, human message.

Every exception the engine raises because of its *input* derives from `InputError`, so the app and the CLI
can show the message instead of a traceback.
"""
from __future__ import annotations


class InputError(ValueError):
    """Base class: the input cannot be used; the message says why and what to do."""


class ImageError(InputError):
    """The image file is missing, unreadable, corrupt, of the wrong type or too large."""


class NoFaceError(InputError):
    """No face was found in the portrait."""


class FaceTooSmallError(InputError):
    """The face is too small to animate well."""


class FaceCutOffError(InputError):
    """The face touches or crosses the image border."""


class ProfileFaceError(InputError):
    """The face is turned too far from the camera (profile view)."""


class AudioError(InputError):
    """The audio file is missing, unreadable, corrupt, empty or too long."""


class MotionError(InputError):
    """A motion file cannot be parsed or has values out of range."""


class ValidationError(InputError):
    """An uploaded image or audio file was refused (wrong type, damaged, too large, too long, no speech...).
    Raised by `vasa_core.validate`, the one decoder of uploads; the safety gate shows it as a refusal."""
