"""Consent: before anything is generated the uploader picks one of three statements and types their name.

No choice, no generation. Optionally ("Verify it's me") a webcam selfie or a second photo is compared with
the chosen face in the portrait by face embedding; the distance is recorded in the audit log either way.
"""
from __future__ import annotations

import datetime as _dt
import unicodedata
from dataclasses import dataclass

import numpy as np

from safety.errors import ConsentError

__all__ = [
    "CONSENT_SELF", "CONSENT_PERMISSION", "CONSENT_PUBLIC_DOMAIN", "CONSENT_CHOICES", "CONSENT_KEYS", "EXAMPLE_NAME",
    "Consent", "ConsentError", "SelfieMatch", "record_consent", "verify_selfie",
]

CONSENT_SELF = "This is me"
CONSENT_PERMISSION = "I have the written permission of the person shown"
CONSENT_PUBLIC_DOMAIN = ("This is an artwork, a historical portrait in the public domain, "
                         "or a fictional character")
#: The three statements, in the order the app shows them.
CONSENT_CHOICES = (CONSENT_SELF, CONSENT_PERMISSION, CONSENT_PUBLIC_DOMAIN)
#: The name the demo's default example is attested with (with CONSENT_PUBLIC_DOMAIN): valid only with an example
#: portrait (``safety.gate.check_request(example_images=...)``), never with a visitor's own photo.
EXAMPLE_NAME = "Demo visitor"
#: Short, stable keys stored in the audit log.
CONSENT_KEYS = {CONSENT_SELF: "self", CONSENT_PERMISSION: "permission", CONSENT_PUBLIC_DOMAIN: "public_domain"}

NAME_MIN, NAME_MAX = 2, 100


@dataclass(frozen=True)
class Consent:
    """A completed consent step: the exact statement chosen, its key, the typed name, and when (UTC)."""

    choice: str
    key: str
    name: str
    time: str


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def record_consent(choice: str | None, name: str | None) -> Consent:
    """Check the uploader's consent choice and name and return the :class:`Consent` to log.

    ``choice`` must be one of :data:`CONSENT_CHOICES` (whitespace-insensitive) or its key from
    :data:`CONSENT_KEYS`. ``name`` is the uploader's own name: 2-100 characters, at least one letter, no
    control characters. Raises :class:`ConsentError` (a ``ValueError``) with a clear sentence otherwise.
    """
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        raise ConsentError("Please choose one of the three consent statements before generating a video.")
    if not isinstance(choice, str):
        raise ConsentError("The consent choice must be one of the three statements shown.")
    wanted = _normalise(choice)
    picked = None
    for statement, key in CONSENT_KEYS.items():
        if wanted == statement or wanted == key:
            picked = statement
            break
    if picked is None:
        raise ConsentError("The consent choice must be one of the three statements shown; "
                           "it was not recognised.")
    if name is None or not isinstance(name, str) or not name.strip():
        raise ConsentError("Please type your name to confirm the consent statement.")
    cleaned = _normalise(name)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in cleaned):
        raise ConsentError("Your name contains characters that cannot be recorded; please type it in plain text.")
    if not NAME_MIN <= len(cleaned) <= NAME_MAX:
        raise ConsentError(f"Please type your name ({NAME_MIN} to {NAME_MAX} characters).")
    if not any(c.isalpha() for c in cleaned):
        raise ConsentError("Please type your name in letters (it contains none).")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Consent(choice=picked, key=CONSENT_KEYS[picked], name=cleaned, time=now)


@dataclass(frozen=True)
class SelfieMatch:
    """Result of "Verify it's me": ``match`` when ``distance`` <= ``threshold`` (same person)."""

    match: bool
    distance: float
    threshold: float = 0.0


def verify_selfie(portrait_rgb: np.ndarray, selfie_rgb: np.ndarray, face_index: int | None = None,
                  embedder=None, detector=None, threshold: float | None = None,
                  portrait_faces: list | None = None) -> SelfieMatch:
    """Compare the uploader's selfie (or second photo) with the portrait's face by face embedding.

    The portrait face is ``face_index`` (reading order), or its only face; the selfie's largest face is
    used. The default threshold is the embedder's *block* threshold (dlib: 0.52), the distance below which
    the measured different-person pairs never fell — so a stranger's selfie should not verify.
    ``portrait_faces`` (``safety.likeness.FaceEmbedding`` list from the same embedder) skips re-analysing
    the portrait. Raises :class:`ConsentError` when either image has no usable face, or the portrait has several faces
    and ``face_index`` is not given.
    """
    from safety.likeness import analyze_faces, default_detector, default_embedder

    embedder = embedder or default_embedder()
    detector = detector or default_detector()
    if portrait_faces is None:
        portrait_faces = analyze_faces(portrait_rgb, embedder, detector)
    if not portrait_faces:
        raise ConsentError("No face was found in the portrait, so the selfie cannot be compared with it.")
    if face_index is None:
        if len(portrait_faces) > 1:
            raise ConsentError("The portrait shows several faces; pick the face to animate before verifying "
                               "the selfie.")
        face_index = 0
    if not 0 <= face_index < len(portrait_faces):
        raise ConsentError(f"The portrait has no face number {face_index}.")
    selfie_faces = analyze_faces(selfie_rgb, embedder, detector)
    if not selfie_faces:
        raise ConsentError("No face was found in the selfie; please take it facing the camera in good light.")
    selfie = max(selfie_faces, key=lambda f: f.face.area)
    distance = embedder.distance(portrait_faces[face_index].embedding, selfie.embedding)
    limit = float(embedder.thresholds.block if threshold is None else threshold)
    return SelfieMatch(match=bool(distance <= limit), distance=float(distance), threshold=limit)
