"""Likeness screening with real faces: detection, embeddings, the gallery, thresholds, CLI, facenet.

Only two real identities ship offline (skimage's astronaut, matplotlib's Grace Hopper); "a different
photo of the same person" is an augmented copy (see docs/safety-gate.md for what that means).
"""
from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import gradio
from safety import likeness
from tools.evals import likeness as evals_likeness   # the measurement harness
from safety.likeness import (DLIB_THRESHOLDS, DetectedFace, DlibEmbedder, FacenetEmbedder, Gallery, LikenessError,
                             Thresholds, analyze_faces, default_embedder, screen)

torch.set_num_threads(1)
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
TOWER = Path(gradio.__file__).parent / "media_assets" / "images" / "tower.jpg"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hopper():
    return np.asarray(Image.open(HOPPER).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut():
    return np.asarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def two_faces(hopper, astronaut):
    """Astronaut on the left, Grace Hopper on the right."""
    left = astronaut[20:320, 90:350]
    right = np.asarray(Image.fromarray(hopper).resize((260, 305)))[:300]
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def _other_photo_of_hopper(hopper):
    """The closest thing to a second photo available offline: cropped, resized, grayscale, dimmed, JPEG 40."""
    crop = hopper[60:460, 60:460]
    small = cv2.resize(crop, (230, 230), interpolation=cv2.INTER_AREA)
    gray = np.repeat(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    dim = (255 * (gray / 255.0) ** 1.5).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", dim, [cv2.IMWRITE_JPEG_QUALITY, 40])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def _jpeg_bytes(rgb, quality=90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- detection

def test_detects_one_face_in_each_real_portrait(hopper, astronaut):
    for img in (hopper, astronaut):
        faces = likeness.default_detector().detect(img)
        assert len(faces) == 1
        x0, y0, x1, y1 = faces[0].box
        assert 60 < x1 - x0 < 300 and faces[0].score > 0.95
    # the astronaut's face, not the badge on the suit that dlib's HOG detector also reports
    assert likeness.default_detector().detect(astronaut)[0].box[1] < 120


def test_two_faces_are_found_in_reading_order(two_faces):
    faces = likeness.default_detector().detect(two_faces)
    assert len(faces) == 2
    assert faces[0].box[0] < faces[1].box[0]


def test_numpy_mtcnn_equals_facenet_pytorch(hopper, astronaut, two_faces):
    """`vasa_core.mtcnn` runs facenet-pytorch's MTCNN networks and weights in numpy (so detection needs no torch):
    the same faces, boxes and points within a pixel, the same scores, on the portraits and the two-face image;
    and nothing where facenet-pytorch finds nothing."""
    from facenet_pytorch import MTCNN as FacenetMTCNN
    from vasa_core.faces import MIN_FACE
    from vasa_core.mtcnn import MTCNN
    ours, theirs = MTCNN(min_face_size=MIN_FACE), FacenetMTCNN(keep_all=True, device="cpu", min_face_size=MIN_FACE)
    tower = np.asarray(Image.open(TOWER).convert("RGB"))
    for img, n in ((astronaut, 1), (hopper, 1), (two_faces, 2), (tower, 0)):
        boxes, scores, points = ours.detect(img)
        with torch.no_grad():
            b, s, p = theirs.detect(img, landmarks=True)
        assert len(boxes) == n == (0 if b is None else len(b))
        if n:
            assert np.abs(boxes - b).max() < 1.0 and np.abs(points - p).max() < 1.0
            assert np.abs(scores - np.asarray(s, np.float32)).max() < 1e-3


def test_no_face_in_a_photo_of_a_tower():
    tower = np.asarray(Image.open(TOWER).convert("RGB"))
    assert likeness.default_detector().detect(tower) == []


@settings(max_examples=int(os.environ.get("SAFETY_FUZZ_EXAMPLES", "150")) // 10, deadline=None, database=None)
@given(h=st.integers(8, 2500), w=st.integers(8, 2500), kind=st.sampled_from(["noise", "flat", "stripes"]),
       seed=st.integers(0, 2**32 - 1))
def test_detector_survives_any_shape(h, w, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":
        img = np.full((h, w, 3), rng.integers(0, 256), np.uint8)
    else:
        img = np.zeros((h, w, 3), np.uint8)
        img[:, ::7] = 255
    faces = likeness.default_detector().detect(img)
    assert all(0 <= f.box[0] <= f.box[2] <= w and 0 <= f.box[1] <= f.box[3] <= h for f in faces)


def test_long_thin_images_do_not_break_the_detector(hopper):
    assert likeness.default_detector().detect(np.zeros((64, 5000, 3), np.uint8)) == []
    strip = np.zeros((620, 6000, 3), np.uint8)
    strip[10:610, 3000:3512] = hopper
    faces = likeness.default_detector().detect(strip)
    assert len(faces) == 1 and 3000 <= faces[0].box[0] < faces[0].box[2] <= 3512


# ------------------------------------------------------------------------------------------ embeddings

def test_dlib_embeddings_separate_the_two_real_people(hopper, astronaut):
    emb = default_embedder()
    assert isinstance(emb, DlibEmbedder) and emb.name == "dlib_resnet_v1"
    (h,), (a,) = analyze_faces(hopper), analyze_faces(astronaut)
    assert h.embedding.shape == (128,) and h.embedding.dtype == np.float32
    assert emb.distance(h.embedding, analyze_faces(hopper)[0].embedding) == pytest.approx(0.0, abs=1e-5)
    d = emb.distance(h.embedding, a.embedding)
    assert 0.6 < d < 0.75  # the documented 0.683, give or take the detector's box
    other = analyze_faces(_other_photo_of_hopper(hopper))
    assert len(other) == 1 and emb.distance(h.embedding, other[0].embedding) < DLIB_THRESHOLDS.block


def test_thresholds_decide_at_the_boundaries():
    t = Thresholds(block=0.5, review=0.6)
    assert [t.decide(x) for x in (0.0, 0.5, 0.5000001, 0.6, 0.61, None, float("inf"))] == [
        "block", "block", "review", "review", "allow", "allow", "allow"]


def test_chosen_thresholds_match_the_measurement():
    """The measured same-person pairs must all block, the different-person pairs must all stay out of block."""
    result = evals_likeness.measure()
    assert result["genuine"]["max"] <= DLIB_THRESHOLDS.block < result["impostor"]["min"]
    assert DLIB_THRESHOLDS.review <= 0.6 + 1e-9  # never weaker than dlib's LFW operating point
    row = next(r for r in result["rates"] if r["threshold"] == DLIB_THRESHOLDS.block)
    assert row["fnmr_all_pairs"] == 0.0 and row["fmr"] == 0.0
    assert len(result["detection_misses"]) <= 2
    table = evals_likeness._markdown(result)
    assert "| 0.52 | 0.000 | 0.000 | 0.000 |" in table


# --------------------------------------------------------------------------------------------- gallery

def test_enroll_from_one_photo_blocks_another_photo_and_passes_other_people(tmp_path, hopper, astronaut):
    gallery = Gallery(tmp_path / "gallery.db")
    assert gallery.add("Grace Hopper", [HOPPER]) == 1
    other = screen(_other_photo_of_hopper(hopper), gallery)
    assert other.decision == "block" and other.faces[0].matched_name == "Grace Hopper"
    assert other.faces[0].distance < DLIB_THRESHOLDS.block
    flipped = screen(np.ascontiguousarray(hopper[:, ::-1]), gallery)
    assert flipped.decision == "block"
    stranger = screen(astronaut, gallery)
    assert stranger.decision == "allow" and stranger.faces[0].distance > DLIB_THRESHOLDS.review
    assert stranger.gallery_size == 1


def test_enrolling_from_the_altered_photo_blocks_the_original(tmp_path, hopper):
    gallery = Gallery(tmp_path / "g.db")
    gallery.add("GH", [_other_photo_of_hopper(hopper)])
    assert screen(hopper, gallery).decision == "block"


def test_every_face_is_screened(tmp_path, two_faces):
    gallery = Gallery(tmp_path / "g.db")
    gallery.add("Grace Hopper", [HOPPER])
    result = screen(two_faces, gallery)
    assert [f.decision for f in result.faces] == ["allow", "block"]
    assert result.decision == "block"
    public = json.dumps(result.to_dict(public=True))
    assert "Hopper" not in public and "Hopper" in json.dumps(result.to_dict())


def test_review_band(tmp_path, astronaut):
    gallery = Gallery(tmp_path / "g.db")
    gallery.add("GH", [HOPPER])
    result = screen(astronaut, gallery, thresholds=Thresholds(block=0.3, review=0.75))
    assert result.decision == "review" and result.faces[0].matched_name == "GH"


def test_gallery_stores_names_and_embeddings_only(tmp_path, hopper):
    db = tmp_path / "gallery.db"
    gallery = Gallery(db)
    raw = HOPPER.read_bytes()
    gallery.add("Grace Hopper", [raw, HOPPER])  # same photo twice: one embedding
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    cols = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables if t != "sqlite_sequence"}
    blobs = [r[0] for r in con.execute("SELECT vector FROM embedding")]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert cols == {"person": ["id", "name", "created"],
                    "embedding": ["id", "person_id", "embedder", "dim", "vector", "source_sha256", "created"]}
    assert len(blobs) == 1 and len(blobs[0]) == 128 * 4
    stored = db.read_bytes()
    assert len(stored) < 64 * 1024
    for probe in (raw[200:264], hopper[300, 200:260].tobytes(), b"\xff\xd8\xff", b"\x89PNG"):
        assert probe not in stored


def test_gallery_list_remove_and_refusals(tmp_path, astronaut, two_faces):
    gallery = Gallery(tmp_path / "g.db")
    gallery.add("  Grace   Hopper ", [HOPPER])
    gallery.add("Eileen Collins", [astronaut])
    assert [p["name"] for p in gallery.list()] == ["Eileen Collins", "Grace Hopper"]
    assert gallery.list()[1]["embedders"] == ["dlib_resnet_v1"]
    assert screen(astronaut, gallery).decision == "block"
    assert gallery.remove("Eileen Collins") and not gallery.remove("Eileen Collins")
    assert screen(astronaut, gallery).decision == "allow"
    with pytest.raises(LikenessError, match="No face"):
        gallery.add("Tower", [TOWER])
    with pytest.raises(LikenessError, match="2 faces"):
        gallery.add("Group", [two_faces])
    gallery.add("Picked", [two_faces], face_index=1)  # the right-hand face: Hopper again
    names, mat = gallery.matrix("dlib_resnet_v1")
    assert sorted(names) == ["Grace Hopper", "Picked"] and mat.shape == (2, 128)
    with pytest.raises(LikenessError):
        gallery.add("", [HOPPER])


def test_empty_gallery_allows_with_no_distance(tmp_path, hopper):
    result = screen(hopper, Gallery(tmp_path / "empty.db"))
    assert result.decision == "allow" and result.faces[0].distance is None and result.gallery_size == 0


def test_default_gallery_lives_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VASA_DATA_DIR", str(tmp_path / "data"))
    assert Gallery().path == tmp_path / "data" / "gallery.db"


# --------------------------------------------------------------------------------------------- facenet

@pytest.fixture(scope="module")
def facenet_weights(tmp_path_factory):
    """Weights the test makes itself: a seeded, randomly initialised InceptionResnetV1 (nothing downloaded)."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(1234)
    model = InceptionResnetV1(pretrained=None)
    path = tmp_path_factory.mktemp("facenet") / "irv1.pt"
    torch.save(model.state_dict(), path)
    return path


def test_facenet_embedder_runs_from_a_local_weights_file(facenet_weights, hopper, tmp_path):
    emb = FacenetEmbedder(facenet_weights)
    assert emb.name.startswith("facenet_irv1:") and emb.dim == 512
    face = likeness.default_detector().detect(hopper)[0]
    v1, v2 = emb.embed(hopper, face), emb.embed(hopper, face)
    assert v1.shape == (512,) and np.allclose(v1, v2) and np.linalg.norm(v1) == pytest.approx(1.0, abs=1e-4)
    gallery = Gallery(tmp_path / "g.db")
    gallery.add("GH", [HOPPER], embedder=emb)
    assert screen(hopper, gallery, embedder=emb).faces[0].distance == pytest.approx(0.0, abs=1e-4)
    assert screen(hopper, gallery, embedder=emb).decision == "block"
    # dlib screening never compares against facenet vectors (and vice versa)
    assert screen(hopper, gallery).decision == "allow" and screen(hopper, gallery).faces[0].distance is None


def test_facenet_refuses_bad_weight_files(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"conv2d_1a.conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(LikenessError):
        FacenetEmbedder(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(LikenessError, match="could not be loaded"):
        FacenetEmbedder(junk)
    with pytest.raises(LikenessError, match="not found"):
        FacenetEmbedder(tmp_path / "missing.pt")


def test_custom_embedder_interface(tmp_path, hopper):
    class MeanColour(likeness.Embedder):
        name, dim, thresholds = "mean_colour", 3, Thresholds(block=1.0, review=2.0)

        def embed(self, rgb, face: DetectedFace):
            x0, y0, x1, y1 = face.box
            return rgb[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0).astype(np.float32)

    gallery = Gallery(tmp_path / "g.db")
    gallery.add("GH", [hopper], embedder=MeanColour())
    assert screen(hopper, gallery, embedder=MeanColour()).decision == "block"


# ------------------------------------------------------------------------------------------------- CLI

def test_cli_gallery_and_screen(tmp_path, monkeypatch, capsys, hopper, astronaut):
    monkeypatch.setenv("VASA_DATA_DIR", str(tmp_path))
    other = tmp_path / "other.jpg"
    other.write_bytes(_jpeg_bytes(_other_photo_of_hopper(hopper)))
    stranger = tmp_path / "stranger.png"
    Image.fromarray(astronaut).save(stranger)
    assert likeness.cli(["gallery", "add", "Grace Hopper", str(HOPPER)]) == 0
    assert "no photo was stored" in capsys.readouterr().out
    assert likeness.cli(["gallery", "list"]) == 0
    assert "Grace Hopper\t1 embedding(s)" in capsys.readouterr().out
    assert likeness.cli(["screen", str(other), "--json"]) == 4
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "block" and out["faces"][0]["matched_name"] == "Grace Hopper"
    assert likeness.cli(["screen", str(stranger)]) == 0
    assert "decision: allow" in capsys.readouterr().out
    assert likeness.cli(["gallery", "add", "Tower", str(TOWER)]) == 1
    assert "No face was found" in capsys.readouterr().err
    assert likeness.cli(["gallery", "remove", "Grace Hopper"]) == 0
    assert likeness.cli(["gallery", "remove", "Grace Hopper"]) == 1
    assert likeness.cli(["screen", str(other)]) == 0


def test_python_dash_m_safety_screen(tmp_path, astronaut):
    img = tmp_path / "a.webp"
    Image.fromarray(astronaut).save(img, quality=90)
    env = dict(os.environ, VASA_DATA_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    Gallery(tmp_path / "gallery.db").add("Astro", [img])  # the default gallery of that data dir
    res = subprocess.run([sys.executable, "-m", "safety", "screen", "--json", str(img)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 4, res.stderr
    assert json.loads(res.stdout)["faces"][0]["decision"] == "block"
