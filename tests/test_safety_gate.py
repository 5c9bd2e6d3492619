"""The whole gate with real files: validate -> consent -> likeness -> face choice -> selfie, and the audit row."""
from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import gradio
from safety.audit import AuditLog
from safety.consent import (CONSENT_CHOICES, CONSENT_PERMISSION, CONSENT_PUBLIC_DOMAIN, CONSENT_SELF, ConsentError,
                            record_consent, verify_selfie)
from safety.gate import MSG_BLOCKED, MSG_INTERNAL, MSG_NO_FACE, MSG_REVIEW, check_request
from safety.likeness import DlibEmbedder, Gallery, Thresholds

torch.set_num_threads(1)
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MEDIA = Path(gradio.__file__).parent / "media_assets"
SPEECH = MEDIA / "audio" / "cate_blanch_2.mp3"
MUSIC = MEDIA / "audio" / "cantina.wav"
TOWER = MEDIA / "images" / "tower.jpg"
PROTECTED_NAME = "Zelda Quuxworth"  # a name that cannot appear in any message by accident


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def hopper():
    return np.asarray(Image.open(HOPPER).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut_png():
    return _png(skimage.data.astronaut())


@pytest.fixture(scope="module")
def other_hopper(hopper):
    """A second 'photo' of Grace Hopper: cropped, smaller, grayscale, JPEG 50."""
    small = cv2.resize(hopper[40:480, 40:480], (260, 260), interpolation=cv2.INTER_AREA)
    gray = np.repeat(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "JPEG", quality=50)
    return buf.getvalue()


@pytest.fixture(scope="module")
def two_faces(hopper):
    left = skimage.data.astronaut()[20:320, 90:350]
    right = np.asarray(Image.fromarray(hopper).resize((260, 305)))[:300]
    return _png(np.concatenate([left, right], axis=1))


@pytest.fixture()
def env(tmp_path):
    audit = AuditLog(tmp_path / "audit.db")
    gallery = Gallery(tmp_path / "gallery.db")
    return {"audit": audit, "gallery": gallery}


@pytest.fixture()
def protected(env):
    env["gallery"].add(PROTECTED_NAME, [HOPPER])
    return env


# ---------------------------------------------------------------------------------------------- consent

def test_consent_wording_is_exact():
    assert CONSENT_CHOICES == (
        "This is me", "I have the written permission of the person shown",
        "This is an artwork, a historical portrait in the public domain, or a fictional character")


def test_record_consent_rules():
    c = record_consent("  I have the   written permission of the person shown ", "  Ada   Lovelace ")
    assert c.choice == CONSENT_PERMISSION and c.key == "permission" and c.name == "Ada Lovelace" and c.time
    assert record_consent("public_domain", "Bo").choice == CONSENT_PUBLIC_DOMAIN
    for choice, name, needle in [(None, "Ada", "choose one"), ("", "Ada", "choose one"),
                                 ("I agree", "Ada", "not recognised"), (CONSENT_SELF, None, "type your name"),
                                 (CONSENT_SELF, "   ", "type your name"), (CONSENT_SELF, "A", "2 to 100"),
                                 (CONSENT_SELF, "x" * 101, "2 to 100"), (CONSENT_SELF, "12345", "letters"),
                                 (CONSENT_SELF, "Ada\x00Lovelace", "plain text"), (3, "Ada", "one of the three")]:
        with pytest.raises(ConsentError, match=needle):
            record_consent(choice, name)
    assert issubclass(ConsentError, ValueError)


def test_verify_selfie_same_and_different_person(hopper):
    astro = skimage.data.astronaut()
    same = verify_selfie(astro, np.ascontiguousarray(cv2.resize(astro, (300, 300))[:, ::-1]))
    assert same.match and same.distance < same.threshold == pytest.approx(0.52)
    other = verify_selfie(astro, hopper)
    assert not other.match and other.distance > 0.6
    with pytest.raises(ConsentError, match="No face was found in the selfie"):
        verify_selfie(astro, np.asarray(Image.open(TOWER).convert("RGB")))


# ------------------------------------------------------------------------------------------------- gate

def test_allowed_request_is_logged_with_hashes_only(env):
    d = check_request(HOPPER, SPEECH, CONSENT_PUBLIC_DOMAIN, "Ada Tester", **env)
    assert d.allowed, d.reason
    assert d.chosen_face == 0 and len(d.faces) == 1 and d.faces[0]["decision"] == "allow"
    assert d.image.rgb.shape == (600, 512, 3) and d.audio.sample_rate == 16000 and d.audio.duration_s > 3
    rec = env["audit"].get(d.request_id)
    assert rec["allowed"] and rec["image_sha256"] == _sha(HOPPER) and rec["audio_sha256"] == _sha(SPEECH)
    assert rec["consent_choice"] == CONSENT_PUBLIC_DOMAIN and rec["consent_name"] == "Ada Tester"
    assert rec["screening"]["decision"] == "allow" and rec["chosen_face"] == 0
    # the row can later take the watermark and output hash
    env["audit"].update(d.request_id, watermark_payload="1234abcd", output_sha256="00" * 32)
    assert env["audit"].find_by_watermark("1234ABCD")[0]["id"] == d.request_id
    # no media in the log
    con = sqlite3.connect(env["audit"].path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    stored = env["audit"].path.read_bytes()
    assert HOPPER.read_bytes()[1000:1064] not in stored and SPEECH.read_bytes()[5000:5064] not in stored


def test_the_gate_decodes_the_audio_once_at_the_callers_rate(env):
    """The demo asks for its output rate (48 kHz) and uses the decision's samples: no second decoder."""
    d16 = check_request(HOPPER, SPEECH, CONSENT_PUBLIC_DOMAIN, "Ada Tester", **env)
    d48 = check_request(HOPPER, SPEECH, CONSENT_PUBLIC_DOMAIN, "Ada Tester", audio_sample_rate=48000, **env)
    assert d16.allowed and d48.allowed, d48.reason
    assert d16.audio.sample_rate == 16000 and d48.audio.sample_rate == 48000
    assert abs(d48.audio.duration_s - d16.audio.duration_s) < 0.002 and len(d48.audio.samples) > 3 * 48000
    assert d48.audio.speech_s == d16.audio.speech_s > 1.0     # the speech check runs on the same 16 kHz audio
    assert env["audit"].get(d48.request_id)["audio_sha256"] == _sha(SPEECH)


@pytest.mark.parametrize("choice,name,needle", [(None, "Ada", "choose one of the three consent statements"),
                                                (CONSENT_SELF, "", "type your name")])
def test_no_consent_no_generation(env, choice, name, needle):
    d = check_request(HOPPER, SPEECH, choice, name, **env)
    assert not d.allowed and needle in d.reason and d.chosen_face is None
    rec = env["audit"].get(d.request_id)
    assert not rec["allowed"] and rec["reason"] == d.reason and rec["image_sha256"] == _sha(HOPPER)


def test_invalid_uploads_are_refused_and_logged(env, tmp_path):
    fake = tmp_path / "portrait.jpg"
    fake.write_text("<html>not a picture</html>")
    d = check_request(fake, SPEECH, CONSENT_SELF, "Ada", **env)
    assert not d.allowed and "not a photo" in d.reason and d.image is None
    assert env["audit"].get(d.request_id)["image_sha256"] == _sha(fake)
    d = check_request(HOPPER, SPEECH, CONSENT_SELF, "Ada", max_audio_s=2, **env)
    assert not d.allowed and "too long" in d.reason and "limit here is 2 s" in d.reason
    d = check_request(HOPPER, MUSIC, CONSENT_SELF, "Ada", **env)
    assert not d.allowed and "No speech or singing" in d.reason
    d = check_request(None, SPEECH, CONSENT_SELF, "Ada", **env)
    assert not d.allowed and "upload a portrait" in d.reason
    assert len(env["audit"]) == 4 and not any(r["allowed"] for r in env["audit"].tail(10))


def test_image_without_a_face_is_refused(env):
    d = check_request(TOWER, SPEECH, CONSENT_PUBLIC_DOMAIN, "Ada", **env)
    assert not d.allowed and d.reason == MSG_NO_FACE


def test_face_too_small_to_screen_is_refused(env):
    tiny = _png(cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA))
    d = check_request(tiny, SPEECH, CONSENT_SELF, "Ada", **env)
    assert not d.allowed and "too small to check" in d.reason and len(d.faces) == 1


def test_protected_person_is_blocked_without_naming_them(protected, other_hopper, astronaut_png):
    d = check_request(other_hopper, SPEECH, CONSENT_PERMISSION, "Ada", **protected)
    assert not d.allowed and d.reason == MSG_BLOCKED
    assert d.faces == [{"index": 0, "box": d.faces[0]["box"], "decision": "block"}]
    public = d.reason + repr(d) + repr(d.faces)
    assert "Zelda" not in public and "Quux" not in public
    rec = protected["audit"].get(d.request_id)  # operators see who it was, and how close
    assert rec["screening"]["faces"][0]["matched_name"] == PROTECTED_NAME
    assert rec["screening"]["faces"][0]["distance"] < 0.52
    # other people pass
    ok = check_request(astronaut_png, SPEECH, CONSENT_SELF, "Eileen", **protected)
    assert ok.allowed, ok.reason


def test_review_band_holds_the_request(env, astronaut_png):
    env["gallery"].add(PROTECTED_NAME, [HOPPER])

    class Strict(DlibEmbedder):
        thresholds = Thresholds(block=0.3, review=0.75)  # puts the 0.68 stranger into the review band

    d = check_request(astronaut_png, SPEECH, CONSENT_SELF, "Eileen", embedder=Strict(), **env)
    assert not d.allowed and d.reason == MSG_REVIEW and d.faces[0]["decision"] == "review"
    assert "Zelda" not in d.reason


def test_several_faces_need_a_choice_and_all_are_screened(env, protected, two_faces):
    fresh = AuditLog(env["audit"].path.parent / "audit2.db")
    empty = Gallery(env["audit"].path.parent / "empty.db")
    d = check_request(two_faces, SPEECH, CONSENT_PERMISSION, "Ada", audit=fresh, gallery=empty)
    assert not d.allowed and "shows 2 faces" in d.reason and len(d.faces) == 2
    d = check_request(two_faces, SPEECH, CONSENT_PERMISSION, "Ada", face_index=0, audit=fresh, gallery=empty)
    assert d.allowed and d.chosen_face == 0 and fresh.get(d.request_id)["chosen_face"] == 0
    d = check_request(two_faces, SPEECH, CONSENT_PERMISSION, "Ada", face_index=" 1", audit=fresh, gallery=empty)
    assert d.allowed and d.chosen_face == 1  # as a UI dropdown may send it
    for bad in (2, -1, "x", True, 0.5):
        d = check_request(two_faces, SPEECH, CONSENT_PERMISSION, "Ada", face_index=bad, audit=fresh, gallery=empty)
        assert not d.allowed and "no face number" in d.reason
    # picking the unprotected face does not get a protected face in the same picture through
    d = check_request(two_faces, SPEECH, CONSENT_PERMISSION, "Ada", face_index=0, **protected)
    assert not d.allowed and d.reason == MSG_BLOCKED
    assert [f["decision"] for f in d.faces] == ["allow", "block"]


def test_selfie_verification(env, astronaut_png, hopper):
    astro = skimage.data.astronaut()
    selfie = _png(cv2.resize(astro[0:300, 100:360], (200, 230))[:, ::-1])
    d = check_request(astronaut_png, SPEECH, CONSENT_SELF, "Eileen", selfie=selfie, **env)
    assert d.allowed and d.selfie.match and "selfie verified" in d.reason
    assert env["audit"].get(d.request_id)["selfie_distance"] == pytest.approx(d.selfie.distance)
    assert env["audit"].get(d.request_id)["selfie_sha256"] == hashlib.sha256(selfie).hexdigest()
    d = check_request(astronaut_png, SPEECH, CONSENT_SELF, "Eileen", selfie=HOPPER, **env)
    assert not d.allowed and "does not match" in d.reason and d.selfie.distance > 0.6
    assert env["audit"].get(d.request_id)["selfie_distance"] > 0.6
    d = check_request(astronaut_png, SPEECH, CONSENT_SELF, "Eileen", selfie=b"garbage", **env)
    assert not d.allowed and d.reason.startswith("The selfie was refused.")


def test_internal_errors_fail_closed_and_are_logged(env):
    class Broken(DlibEmbedder):
        def embed(self, rgb, face):
            raise RuntimeError("model exploded at /secret/path")

    d = check_request(HOPPER, SPEECH, CONSENT_SELF, "Ada", embedder=Broken(), **env)
    assert not d.allowed and d.reason == MSG_INTERNAL and "/secret" not in d.reason
    assert env["audit"].get(d.request_id)["extra"]["internal_error"] == "RuntimeError"


def test_unrecordable_request_is_refused(tmp_path):
    class FullDisk(AuditLog):
        def start(self, **kw):
            raise OSError("disk full")

    d = check_request(HOPPER, SPEECH, CONSENT_SELF, "Ada", audit=FullDisk(tmp_path / "a.db"),
                      gallery=Gallery(tmp_path / "g.db"))
    assert not d.allowed and "audit log" in d.reason and d.request_id == ""
