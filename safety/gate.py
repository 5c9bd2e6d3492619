"""The safety gate: the one call the app and the pipeline make before generating anything.

``check_request`` runs, in order: upload validation (image, then audio) -> consent (choice and name) ->
likeness screening of EVERY face against the protected-people gallery -> face choice when there are several
faces -> optional selfie verification; and records the request in the audit log whatever the outcome
(hashes only, never the media). It never raises for bad input: every refusal comes back as
``GateDecision(allowed=False, reason=<one sentence for the user>)``. Public reasons never name who was
matched; the audit log (operator-only) keeps the distances and the nearest protected name.
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safety.audit import AuditLog, process_identity
from safety.consent import EXAMPLE_NAME, Consent, SelfieMatch, record_consent, verify_selfie
from safety.errors import InputError
from safety.likeness import (BLOCK, MIN_SCREEN_FACE, REVIEW, DetectedFace, Embedder, FaceDetector, FaceEmbedding, Gallery, Screening,
                             screen)
from vasa_core.validate import (AUDIO_SAMPLE_RATE, MAX_AUDIO_BYTES, MAX_IMAGE_BYTES, ValidatedAudio, ValidatedImage,
                             input_sha256, validate_audio, validate_image)

__all__ = ["GateDecision", "check_request", "MSG_BLOCKED", "MSG_REVIEW", "MSG_NO_FACE", "MSG_INTERNAL",
           "MSG_EXAMPLE_ONLY"]

log = logging.getLogger(__name__)

MSG_BLOCKED = ("This image cannot be animated here: a face in it matches a person on this service's protected "
               "list.")
MSG_REVIEW = ("This image cannot be animated now: a face in it closely resembles a person on this service's "
              "protected list, so the request has been held for review by the operator.")
MSG_NO_FACE = ("No face was found in the portrait; please upload a photo, painting or drawing in which one face "
               "is clearly visible.")
MSG_INTERNAL = "The safety check could not be completed because of an internal error, so nothing was generated."
MSG_NOT_RECORDED = "The request could not be recorded in the audit log, so it was refused."
MSG_EXAMPLE_ONLY = (f"The example's statement (\"{EXAMPLE_NAME}\") covers only the example portrait; please choose "
                    "whose face this is and type your own name.")


@dataclass(frozen=True)
class GateDecision:
    """Outcome of :func:`check_request`.

    allowed: generation may go ahead (with ``image``, ``audio`` and face ``chosen_face``).
    reason: one human sentence; safe to show to the public (never names a protected person).
    request_id: the audit-log id of this request (pass it on to ``AuditLog.update`` with the watermark).
    image / audio: the validated inputs (None when that input was refused or not reached).
    faces: every detected face, public view: [{'index', 'box', 'decision'}] in reading order.
    chosen_face: the face to animate (None unless allowed).
    consent / selfie: the recorded consent and the selfie check (None when not reached / not given).
    screening: the full screening for operators (distances, nearest names); never show it publicly.
    """

    allowed: bool
    reason: str
    request_id: str
    image: ValidatedImage | None = field(default=None, repr=False)
    audio: ValidatedAudio | None = field(default=None, repr=False)
    faces: list = field(default_factory=list)
    chosen_face: int | None = None
    consent: Consent | None = None
    selfie: SelfieMatch | None = None
    screening: Screening | None = field(default=None, repr=False, compare=False)

    @property
    def face(self):
        """The chosen face as the detector found it (`vasa_core.faces.Face`: box and 5 points in the image's
        pixels), to hand to the pipeline (`face_box=`) so the face is found once; None unless allowed."""
        if not self.allowed or self.chosen_face is None or self.screening is None:
            return None
        return self.screening.faces[self.chosen_face].source


def _raw_sha256(source: Any, limit: int) -> str | None:
    """SHA-256 of an upload's bytes (for logging refusals), or None when it cannot be read."""
    if isinstance(source, (ValidatedImage, ValidatedAudio)):
        return source.sha256
    return input_sha256(source, limit)


def _as_index(value) -> int | None:
    """A face number from an int, a numpy integer or a string of digits (as a UI may send it); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() and len(text) < 6 else None
    try:
        return operator.index(value)
    except TypeError:
        return None


class _Refusal(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _header_pixels(source: Any) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding its pixels; None if unreadable;
    (0, 0) when PIL itself calls it a decompression bomb (over twice its own limit)."""
    if not isinstance(source, (str, Path, bytes, bytearray)):
        return None
    try:
        import io
        import warnings

        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fh = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
            with fh:
                try:
                    with Image.open(fh, formats=["PNG", "JPEG", "WEBP"]) as im:
                        return int(im.size[0]), int(im.size[1])
                except Image.DecompressionBombError:
                    return (0, 0)
    except Exception:
        return None


def check_request(image, audio, consent_choice, consent_name, selfie=None, face_index=None,
                  max_audio_s: float = 60, *, audit: AuditLog | None = None, gallery: Gallery | None = None,
                  embedder: Embedder | None = None, detector: FaceDetector | None = None,
                  require_speech: bool = True, max_image_mp: float | None = None,
                  live: bool = False, audio_sample_rate: int = AUDIO_SAMPLE_RATE,
                  example_images: frozenset[str] | set[str] = frozenset()) -> GateDecision:
    """Run validate -> consent -> likeness (-> face choice -> selfie) and log the request.

    image / audio / selfie: paths, bytes, or already validated objects. consent_choice: one of
    ``safety.consent.CONSENT_CHOICES``; consent_name: the uploader's name. face_index: which face to animate
    when the image shows several (reading order, 0 = leftmost); every face is screened regardless, and a
    blocked or held face anywhere in the image refuses the request. max_audio_s: the audio length limit.
    ``audit``/``gallery``/``embedder``/``detector`` default to the data directory's log and gallery and the
    default dlib models. max_image_mp: a host's lower bound on the portrait's size in megapixels, read from
    the file's header before anything decodes it. live: a live session (no audio file: the microphone's
    audio is bounded by the session, `max_audio_s`). audio_sample_rate: the rate (Hz) of the decision's
    validated audio (default 16 kHz; a caller that writes the audio out asks for its output rate, so that the
    upload is decoded once). example_images: SHA-256 digests of the portraits that may go with the example's
    own attestation (the name ``safety.consent.EXAMPLE_NAME``); with any other portrait that name is refused,
    so a visitor's own photo needs the visitor's own statement. Never raises for bad input; see
    :class:`GateDecision`. An allowed request's audit row names its process (``extra.process``), so a start
    after a crash can tell its requests were abandoned.
    """
    state: dict[str, Any] = {"image": None, "audio": None, "consent": None, "screening": None, "selfie": None,
                             "faces": [], "chosen": None, "selfie_sha": None}
    extra: dict[str, Any] = {"max_audio_s": max_audio_s}
    if live:
        extra["live"] = True
    allowed = False
    try:
        reason = _run(state, extra, image, audio, consent_choice, consent_name, selfie, face_index,
                      max_audio_s, gallery, embedder, detector, require_speech, max_image_mp, live,
                      audio_sample_rate, example_images)
        allowed = True
        extra["process"] = process_identity()
    except _Refusal as refusal:
        reason = refusal.reason
    except Exception as err:  # fail closed, never a traceback for the user
        log.exception("safety gate internal error")
        extra["internal_error"] = type(err).__name__
        reason = MSG_INTERNAL

    img, aud, consent, scr = state["image"], state["audio"], state["consent"], state["screening"]
    try:
        request_id = (audit if audit is not None else AuditLog()).start(
            allowed=allowed, reason=reason,
            image_sha256=img.sha256 if img else _raw_sha256(image, MAX_IMAGE_BYTES),
            audio_sha256=aud.sha256 if aud else _raw_sha256(audio, MAX_AUDIO_BYTES),
            selfie_sha256=state["selfie_sha"] or (None if selfie is None else _raw_sha256(selfie, MAX_IMAGE_BYTES)),
            consent_choice=consent.choice if consent else (consent_choice[:200] if isinstance(consent_choice, str) else None),
            consent_name=consent.name if consent else (consent_name[:200] if isinstance(consent_name, str) else None),
            screening=scr.to_dict(public=False) if scr else None,
            selfie_distance=state["selfie"].distance if state["selfie"] else None,
            chosen_face=state["chosen"], extra=extra)
    except Exception:
        log.exception("audit log write failed")
        return GateDecision(False, MSG_NOT_RECORDED, "", faces=state["faces"])
    return GateDecision(allowed=allowed, reason=reason, request_id=request_id,
                        image=img, audio=aud, faces=state["faces"],
                        chosen_face=state["chosen"] if allowed else None,
                        consent=consent, selfie=state["selfie"], screening=scr)


def _run(state, extra, image, audio, consent_choice, consent_name, selfie, face_index, max_audio_s,
         gallery, embedder, detector, require_speech, max_image_mp=None, live=False,
         audio_sample_rate=AUDIO_SAMPLE_RATE, example_images=frozenset()) -> str:
    # 1. validation
    if image is None:
        raise _Refusal("Please upload a portrait image.")
    if audio is None and not live:
        raise _Refusal("Please upload an audio clip.")
    for source, what in ((image, "portrait"), (selfie, "selfie")):
        size = _header_pixels(source) if max_image_mp and source is not None else None
        if size == (0, 0):
            raise _Refusal(f"The {what} has far too many pixels; the limit here is {max_image_mp:g} megapixels. "
                           "Please upload a smaller image.")
        if size and size[0] * size[1] > max_image_mp * 1e6:
            raise _Refusal(f"The {what} is too large ({size[0]}x{size[1]} pixels, "
                           f"{size[0] * size[1] / 1e6:.0f} megapixels); the limit here is {max_image_mp:g} "
                           "megapixels. Please upload a smaller image.")
    try:
        state["image"] = image if isinstance(image, ValidatedImage) else validate_image(image)
    except InputError as err:
        raise _Refusal(str(err)) from None
    try:
        if live:
            pass
        elif isinstance(audio, ValidatedAudio):
            if audio.duration_s > max_audio_s:
                raise _Refusal(f"The audio is too long ({audio.duration_s:.1f} s); the limit here is "
                               f"{max_audio_s:g} s. Please trim it and upload it again.")
            state["audio"] = audio
        else:
            state["audio"] = validate_audio(audio, max_seconds=float(max_audio_s), require_speech=require_speech,
                                            sample_rate=audio_sample_rate)
    except InputError as err:
        raise _Refusal(str(err)) from None

    # 2. consent
    try:
        state["consent"] = record_consent(consent_choice, consent_name)
    except InputError as err:
        raise _Refusal(str(err)) from None
    if (state["consent"].name.casefold() == EXAMPLE_NAME.casefold()
            and state["image"].sha256 not in example_images):
        raise _Refusal(MSG_EXAMPLE_ONLY)

    # 3. likeness: every face, whatever face the user picks
    scr = screen(state["image"].rgb, gallery=gallery, embedder=embedder, detector=detector)
    state["screening"] = scr
    state["faces"] = [f.to_dict(public=True) for f in scr.faces]
    for f in state["faces"]:
        f.pop("distance", None)
        f.pop("detector_score", None)
    if not scr.faces:
        raise _Refusal(MSG_NO_FACE)
    if scr.decision == BLOCK:
        raise _Refusal(MSG_BLOCKED)
    if scr.decision == REVIEW:
        raise _Refusal(MSG_REVIEW)

    # 4. which face to animate
    n = len(scr.faces)
    if face_index is None:
        if n > 1:
            raise _Refusal(f"This image shows {n} faces; please pick the one to animate "
                           f"(face 0 is the leftmost, face {n - 1} the rightmost).")
        chosen = 0
    else:
        chosen = _as_index(face_index)
        if chosen is None or not 0 <= chosen < n:
            raise _Refusal(f"There is no face number {str(face_index)[:20]} in this image; it shows {n} "
                           f"face{'s' if n > 1 else ''} (numbered from 0).")
    x0, y0, x1, y1 = scr.faces[chosen].box
    if min(x1 - x0, y1 - y0) < MIN_SCREEN_FACE:
        raise _Refusal(f"The face is too small to check ({x1 - x0} pixels wide); please upload a photo in which "
                       f"the face is at least {MIN_SCREEN_FACE} pixels wide.")
    state["chosen"] = chosen

    # 5. optional "Verify it's me"
    if selfie is not None:
        try:
            selfie_img = selfie if isinstance(selfie, ValidatedImage) else validate_image(selfie)
        except InputError as err:
            raise _Refusal(f"The selfie was refused. {err}") from None
        state["selfie_sha"] = selfie_img.sha256
        try:
            known = [FaceEmbedding(DetectedFace(f.box, f.detector_score), f.embedding) for f in scr.faces]
            match = verify_selfie(state["image"].rgb, selfie_img.rgb, face_index=chosen,
                                  embedder=embedder, detector=detector, portrait_faces=known)
        except InputError as err:
            raise _Refusal(str(err)) from None
        state["selfie"] = match
        if not match.match:
            raise _Refusal("The selfie does not match the face in the portrait, so it could not verify that this is "
                           "you; nothing was generated.")

    parts = [f"face {chosen}" if n > 1 else "the face"]
    if state["selfie"] is not None:
        parts.append("selfie verified")
    return f"Allowed: uploads valid, consent recorded ({state['consent'].key}), {', '.join(parts)} screened clear."
