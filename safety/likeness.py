"""Likeness screening: every face in an upload is compared with a protected-people gallery.

Pieces, each small and replaceable:

* :class:`FaceDetector` finds faces with `vasa_core.faces` (the detector the engine uses too): facenet-pytorch's
  MTCNN (weights bundled in the package), with dlib's HOG frontal-face detector as a fallback.
* :class:`Embedder` turns one detected face into an identity vector. :class:`DlibEmbedder` (default) is
  dlib's ResNet descriptor from face-recognition-models (public-domain weights, 128-d, Euclidean distance,
  faces aligned with dlib's 5-point model, which is not licence-restricted). :class:`FacenetEmbedder` runs
  facenet-pytorch's InceptionResnetV1 from a weights file the *operator supplies* (nothing is downloaded).
* :class:`Gallery` is a SQLite file in the data directory holding names and embeddings only — never photos.
  Embeddings are tagged with the embedder that made them; screening only compares like with like.
* :func:`screen` embeds every face, finds the nearest protected person for each, and decides per face
  ``allow`` / ``review`` / ``block`` from the embedder's thresholds; the overall decision is the worst one.

Thresholds for the default embedder were chosen from the rates measured by ``python -m safety measure``
(see docs/safety-gate.md for the table and for what the small set of identities means for those rates).

CLI (through ``python -m safety``)::

    gallery add NAME IMG [IMG ...] [--face K]   enroll a person (one face per photo, or pick it with --face)
    gallery list                                names and number of embeddings
    gallery remove NAME
    screen IMG [--json]                         every face: decision, distance, nearest protected name

The error-rate measurement (``python -m safety measure``) lives in ``tools.evals.likeness``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.util
import json
import sqlite3
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from safety.datadir import connect_db, data_dir, init_private_db
from safety.errors import LikenessError, ValidationError
from vasa_core import models
from vasa_core.faces import Face

__all__ = [
    "DetectedFace", "FaceDetector", "Embedder", "DlibEmbedder", "FacenetEmbedder", "Thresholds",
    "FaceEmbedding", "Gallery", "ScreenedFace", "Screening", "analyze_faces", "screen",
    "default_embedder", "default_detector", "DLIB_THRESHOLDS", "cli", "LikenessError",
]

ALLOW, REVIEW, BLOCK = "allow", "review", "block"
#: Faces narrower than this (pixels) give unreliable embeddings (a 22-pixel face of the same person measured
#: 0.44-0.54 from other copies); the measurement leaves them out and the gate refuses to animate one.
MIN_SCREEN_FACE = 32
_RANK = {ALLOW: 0, REVIEW: 1, BLOCK: 2}


@dataclass(frozen=True)
class Thresholds:
    """Distance thresholds of one embedder: ``distance <= block`` -> block, ``<= review`` -> review."""

    block: float
    review: float

    def decide(self, distance: float | None) -> str:
        if distance is None or not np.isfinite(distance):
            return ALLOW
        if distance <= self.block:
            return BLOCK
        if distance <= self.review:
            return REVIEW
        return ALLOW


# Chosen from `python -m safety measure` (table in docs/safety-gate.md): every augmented same-person pair fell
# at or below 0.45 and every different-person pair at or above 0.55, so block sits between the two (0.52:
# measured FNMR 0 and FMR 0). Review extends up to 0.60, dlib's own same-person operating point across
# *different* photos (99.38% on LFW): real second photos of a person land farther away than augmented copies,
# and a protected person who slips through is the costly error, so that band goes to a human, not to "allow".
DLIB_THRESHOLDS = Thresholds(block=0.52, review=0.60)
# Unmeasured defaults for FacenetEmbedder (VGGFace2-style weights: unit vectors, same person ~<1.0).
# Operators who supply weights must re-measure with `python -m safety measure --facenet-weights PATH`.
FACENET_THRESHOLDS = Thresholds(block=0.9, review=1.1)


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LikenessError("The face-recognition-models package is not installed, so faces cannot be screened.")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


# -------------------------------------------------------------------------------------------- detection

@dataclass(frozen=True)
class DetectedFace:
    """A face found in an image: box (x0, y0, x1, y1) in pixels, detector confidence, detector name."""

    box: tuple[int, int, int, int]
    score: float
    detector: str = "mtcnn"
    # the engine's face as the detector found it (unclipped box + 5 points): handed on to portrait analysis,
    # so the face the gate screened is the face that is animated, found once
    source: Face | None = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(0, x1 - x0) * max(0, y1 - y0)


class FaceDetector:
    """The gate's view of `vasa_core.faces` (MTCNN, dlib HOG as a fallback when MTCNN finds no face, the same
    models the engine uses): boxes rounded and clipped to the image, faces too small to embed dropped.

    Faces are returned in reading order (left to right, then top to bottom) so that a face index chosen by
    the user is stable. Images larger than ``max_side`` are detected on a downscaled copy.
    """

    def __init__(self, min_prob: float = 0.90, min_face: int = 20, max_side: int = 1280,
                 hog_min_score: float = 0.3):
        self.min_prob = min_prob
        self.min_face = min_face
        self.max_side = max_side
        self.hog_min_score = hog_min_score

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        from vasa_core.faces import detect_faces

        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        found, scale = detect_faces(rgb, max_side=self.max_side, min_prob=self.min_prob, fallback=True,
                                    hog_min_score=self.hog_min_score)
        faces = [self._face(f.box, f.score, f.detector, w, h, f) for f in found]
        # faces smaller than min_face pixels (at detection scale) cannot be embedded reliably
        faces = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) * scale >= self.min_face]
        faces.sort(key=lambda f: ((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2))
        return faces

    @staticmethod
    def _face(box, score, name, w, h, source: Face | None = None) -> DetectedFace:
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = max(0.0, min(x0, x1)), min(float(w), max(x0, x1))
        y0, y1 = max(0.0, min(y0, y1)), min(float(h), max(y0, y1))
        return DetectedFace((int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))), score, name, source)


def _check_rgb(rgb) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise LikenessError("The image must be an RGB picture of at least 8x8 pixels.")
    if arr.dtype != np.uint8:
        raise LikenessError("The image must have 8-bit colour values.")
    return np.ascontiguousarray(arr[:, :, :3])


# -------------------------------------------------------------------------------------------- embedders

class Embedder(ABC):
    """Turns one detected face into an identity vector; smaller ``distance`` = more alike.

    Subclasses set ``name`` (stored with every gallery embedding, so vectors from different models or
    weights are never compared), ``dim`` and ``thresholds``.
    """

    name: str = "abstract"
    dim: int = 0
    thresholds: Thresholds = DLIB_THRESHOLDS

    @abstractmethod
    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """float32 vector of length ``dim`` for ``face`` in ``rgb`` ((H, W, 3) uint8)."""

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance between two embeddings."""
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

    def distances(self, query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Euclidean distance from one embedding to each row of ``matrix``."""
        if matrix.size == 0:
            return np.zeros(0)
        return np.linalg.norm(matrix.astype(np.float64) - np.asarray(query, np.float64)[None, :], axis=1)


class DlibEmbedder(Embedder):
    """dlib's ResNet face descriptor (128-d; same person across different photos below ~0.6 on LFW).

    Faces are aligned with dlib's 5-point landmark model (both files ship in face-recognition-models).
    """

    name = "dlib_resnet_v1"
    dim = 128
    thresholds = DLIB_THRESHOLDS

    def __init__(self, models_dir: str | Path | None = None):
        self._dir = Path(models_dir) if models_dir else None
        self._sp = None
        self._rec = None
        self._lock = threading.Lock()

    def _load(self):
        if self._rec is None:
            import dlib

            d = self._dir or _models_dir()
            self._sp = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
            self._rec = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        import dlib

        rgb = _check_rgb(rgb)
        x0, y0, x1, y1 = face.box
        with self._lock:
            self._load()
            shape = self._sp(rgb, dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
            vec = self._rec.compute_face_descriptor(rgb, shape, 0, 0.25)
        return np.asarray(vec, dtype=np.float32)


class FacenetEmbedder(Embedder):
    """facenet-pytorch InceptionResnetV1 loaded from a local weights file (a state dict), never downloaded.

    The face is cropped like facenet-pytorch's MTCNN does (box plus ``margin`` pixels at 160x160, standardised
    as (x - 127.5) / 128) and the 512-d output is L2-normalised. ``name`` includes a hash of the weights, so
    a gallery never mixes vectors from different weights. Thresholds default to ``FACENET_THRESHOLDS``
    (unmeasured): re-measure with ``python -m safety measure --facenet-weights PATH`` and pass ``thresholds``.
    """

    dim = 512

    def __init__(self, weights_path: str | Path, thresholds: Thresholds | None = None, margin: int = 14,
                 image_size: int = 160):
        import torch
        from facenet_pytorch import InceptionResnetV1

        path = Path(weights_path)
        if not path.is_file():
            raise LikenessError("The facenet weights file was not found.")
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()[:16]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise LikenessError("The facenet weights file could not be loaded (expected a PyTorch state dict).") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model = InceptionResnetV1(pretrained=None, classify=False)
        try:
            model.load_state_dict(state, strict=False)
            missing = [k for k in model.state_dict() if k not in state and not k.startswith("logits.")]
        except Exception:
            raise LikenessError("The facenet weights file does not fit InceptionResnetV1.") from None
        if missing:
            raise LikenessError(f"The facenet weights file lacks {len(missing)} of the model's tensors.")
        model.eval()
        self._model = model
        self._lock = threading.Lock()
        self.name = f"facenet_irv1:{digest}"
        self.thresholds = thresholds or FACENET_THRESHOLDS
        self.margin = margin
        self.image_size = image_size

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        import torch
        from facenet_pytorch.models.utils.detect_face import extract_face
        from PIL import Image

        rgb = _check_rgb(rgb)
        crop = extract_face(Image.fromarray(rgb), list(face.box), image_size=self.image_size, margin=self.margin)
        x = ((crop.float() - 127.5) / 128.0).unsqueeze(0)
        with self._lock, torch.no_grad():
            out = self._model(x)[0].numpy().astype(np.float32)
        norm = float(np.linalg.norm(out))
        return out / norm if norm > 0 else out


def default_detector() -> FaceDetector:
    """The process-wide FaceDetector (in the one model registry, `vasa_core.models`; models load on first use)."""
    return models.get("likeness_detector", FaceDetector)


def default_embedder() -> DlibEmbedder:
    """The process-wide DlibEmbedder (in the one model registry; models load on first use)."""
    return models.get("dlib_embedder", DlibEmbedder)


@dataclass(frozen=True)
class FaceEmbedding:
    """One detected face and its identity vector."""

    face: DetectedFace
    embedding: np.ndarray = field(repr=False)


def analyze_faces(rgb: np.ndarray, embedder: Embedder | None = None,
                  detector: FaceDetector | None = None) -> list[FaceEmbedding]:
    """Detect every face in ``rgb`` and embed each one (reading order)."""
    embedder = embedder or default_embedder()
    detector = detector or default_detector()
    rgb = _check_rgb(rgb)
    return [FaceEmbedding(f, embedder.embed(rgb, f)) for f in detector.detect(rgb)]


# ---------------------------------------------------------------------------------------------- gallery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS person (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embedding (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    source_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (person_id, embedder, source_sha256)
);
CREATE INDEX IF NOT EXISTS embedding_by_embedder ON embedding(embedder);
"""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise LikenessError("A protected person's name must be text.")
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 200 or any(ord(c) < 32 for c in cleaned):
        raise LikenessError("A protected person's name must be 1 to 200 printable characters.")
    return cleaned


class Gallery:
    """The protected-people gallery: SQLite at ``data_dir()/gallery.db`` with names and embeddings only.

    No photo, crop or thumbnail is ever stored; each embedding keeps the SHA-256 of the photo it came from
    (so re-adding the same photo is a no-op) and the name of the embedder that made it.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else data_dir() / "gallery.db"
        init_private_db(self.path, _SCHEMA, self._connect)
        self._cache: dict[str, tuple[float, list[str], np.ndarray]] = {}

    def _connect(self) -> sqlite3.Connection:
        return connect_db(self.path)

    # -- operator actions
    def add_embeddings(self, name: str, embeddings: Iterable[np.ndarray], embedder_name: str,
                       source_sha256s: Sequence[str]) -> int:
        """Store embeddings for ``name`` (creating the person); returns how many were new."""
        name = _clean_name(name)
        embeddings = [np.asarray(e, dtype=np.float32).reshape(-1) for e in embeddings]
        if len(embeddings) != len(source_sha256s):
            raise ValueError("one source hash per embedding")
        added = 0
        con = self._connect()
        try:
            with con:
                con.execute("INSERT OR IGNORE INTO person(name, created) VALUES (?, ?)", (name, _now()))
                pid = con.execute("SELECT id FROM person WHERE name = ?", (name,)).fetchone()[0]
                for vec, sha in zip(embeddings, source_sha256s):
                    if not np.isfinite(vec).all():
                        raise LikenessError("An embedding contained invalid values.")
                    cur = con.execute(
                        "INSERT OR IGNORE INTO embedding(person_id, embedder, dim, vector, source_sha256, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (pid, embedder_name, int(vec.size), vec.astype("<f4").tobytes(), sha, _now()))
                    added += cur.rowcount
        finally:
            con.close()
        self._cache.clear()
        return added

    def add(self, name: str, images: Sequence, embedder: Embedder | None = None,
            detector: FaceDetector | None = None, face_index: int | None = None) -> int:
        """Enroll ``name`` from photos (paths, bytes, or validated/RGB arrays); returns embeddings added.

        Each photo must show exactly one face, unless ``face_index`` picks one. Photos go through
        ``vasa_core.validate.validate_image`` first. Only the embeddings are kept.
        """
        from vasa_core.validate import ValidatedImage, validate_image

        embedder = embedder or default_embedder()
        vecs, shas = [], []
        if not images:
            raise LikenessError("Give at least one photo of the person to enroll.")
        for i, img in enumerate(images, 1):
            if isinstance(img, ValidatedImage):
                rgb, sha = img.rgb, img.sha256
            elif isinstance(img, np.ndarray):
                rgb = _check_rgb(img)
                sha = hashlib.sha256(rgb.tobytes() + repr(rgb.shape).encode()).hexdigest()
            else:
                v = validate_image(img)
                rgb, sha = v.rgb, v.sha256
            faces = analyze_faces(rgb, embedder, detector)
            if not faces:
                raise LikenessError(f"No face was found in photo {i}.")
            if face_index is None and len(faces) > 1:
                raise LikenessError(f"Photo {i} shows {len(faces)} faces; pick one with --face (0 = leftmost).")
            k = 0 if face_index is None else face_index
            if not 0 <= k < len(faces):
                raise LikenessError(f"Photo {i} has no face number {k} (it shows {len(faces)}).")
            vecs.append(faces[k].embedding)
            shas.append(sha)
        return self.add_embeddings(name, vecs, embedder.name, shas)

    def remove(self, name: str) -> bool:
        """Delete a person and all their embeddings; False when the name is not in the gallery."""
        name = _clean_name(name)
        con = self._connect()
        try:
            with con:
                cur = con.execute("DELETE FROM person WHERE name = ?", (name,))
                removed = cur.rowcount > 0
        finally:
            con.close()
        self._cache.clear()
        return removed

    def list(self) -> list[dict]:
        """[{'name', 'embeddings', 'embedders', 'created'}] sorted by name."""
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT p.name, p.created, COUNT(e.id), GROUP_CONCAT(DISTINCT e.embedder) "
                "FROM person p LEFT JOIN embedding e ON e.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        finally:
            con.close()
        return [{"name": n, "created": c, "embeddings": k, "embedders": sorted((e or "").split(",")) if e else []}
                for n, c, k, e in rows]

    def __len__(self) -> int:
        return len(self.list())

    def matrix(self, embedder_name: str) -> tuple[list[str], np.ndarray]:
        """(names, vectors) of every stored embedding made by ``embedder_name`` (one row per embedding)."""
        mtime = self.path.stat().st_mtime_ns if self.path.exists() else 0
        wal = Path(str(self.path) + "-wal")
        stamp = mtime + (wal.stat().st_mtime_ns if wal.exists() else 0)
        hit = self._cache.get(embedder_name)
        if hit and hit[0] == stamp:
            return hit[1], hit[2]
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT p.name, e.dim, e.vector FROM embedding e JOIN person p ON p.id = e.person_id "
                "WHERE e.embedder = ? ORDER BY e.id", (embedder_name,)).fetchall()
        finally:
            con.close()
        names = [r[0] for r in rows]
        mat = (np.stack([np.frombuffer(r[2], dtype="<f4", count=r[1]) for r in rows]).astype(np.float32)
               if rows else np.zeros((0, 0), np.float32))
        self._cache[embedder_name] = (stamp, names, mat)
        return names, mat

    def nearest(self, embedding: np.ndarray, embedder: Embedder) -> tuple[float | None, str | None]:
        """Distance to, and name of, the closest protected embedding (None, None for an empty gallery)."""
        names, mat = self.matrix(embedder.name)
        if not names:
            return None, None
        d = embedder.distances(embedding, mat)
        i = int(np.argmin(d))
        return float(d[i]), names[i]


# -------------------------------------------------------------------------------------------- screening

@dataclass(frozen=True)
class ScreenedFace:
    """One face's screening result.

    ``distance`` / ``matched_name``: the nearest protected person (None with an empty gallery), whatever the
    decision. ``matched_name`` is for operators only: never show it to the public.
    """

    index: int
    box: tuple[int, int, int, int]
    decision: str
    distance: float | None
    matched_name: str | None
    detector_score: float = 0.0
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: Face | None = field(default=None, repr=False, compare=False)   # the engine's face (DetectedFace.source)

    def to_dict(self, public: bool = False) -> dict:
        d = {"index": self.index, "box": list(self.box), "decision": self.decision,
             "distance": None if self.distance is None else round(self.distance, 4),
             "detector_score": round(self.detector_score, 4)}
        if not public:
            d["matched_name"] = self.matched_name
        return d


@dataclass(frozen=True)
class Screening:
    """Screening of a whole image: every face plus the overall (worst) decision.

    ``decision`` is 'allow' when no face is near a protected person (also when there is no face at all:
    whether a face-less image may be used is the caller's rule), 'review' or 'block' otherwise.
    """

    faces: list[ScreenedFace]
    decision: str
    embedder: str
    thresholds: Thresholds
    gallery_size: int

    def to_dict(self, public: bool = False) -> dict:
        return {"decision": self.decision, "embedder": self.embedder,
                "thresholds": asdict(self.thresholds), "gallery_people": self.gallery_size,
                "faces": [f.to_dict(public) for f in self.faces]}


def screen(rgb: np.ndarray, gallery: Gallery | None = None, embedder: Embedder | None = None,
           detector: FaceDetector | None = None, thresholds: Thresholds | None = None) -> Screening:
    """Screen every face in ``rgb`` ((H, W, 3) uint8) against the protected-people gallery.

    For each face: nearest protected embedding (same embedder only), its distance and name, and
    allow / review / block by ``thresholds`` (default: the embedder's measured thresholds).
    """
    embedder = embedder or default_embedder()
    gallery = gallery if gallery is not None else Gallery()
    thresholds = thresholds or embedder.thresholds
    faces = []
    for i, fe in enumerate(analyze_faces(rgb, embedder, detector)):
        dist, name = gallery.nearest(fe.embedding, embedder)
        decision = thresholds.decide(dist)
        faces.append(ScreenedFace(i, fe.face.box, decision, dist, name, fe.face.score, fe.embedding, fe.face.source))
    overall = max((f.decision for f in faces), key=_RANK.__getitem__, default=ALLOW)
    names, _ = gallery.matrix(embedder.name)
    return Screening(faces, overall, embedder.name, thresholds, len(set(names)))


# ------------------------------------------------------------------------------------------------- CLI

def _load_rgb(path: str) -> np.ndarray:
    from vasa_core.validate import validate_image

    return validate_image(path).rgb


def cli(argv: list[str]) -> int:
    """Entry point for `python -m safety gallery|screen ...` (argv[0] is the command name; `measure` lives in
    `tools.evals.likeness`)."""
    if not argv:
        print("usage: python -m safety {gallery,screen} ...", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "gallery":
            return _cli_gallery(rest)
        if cmd == "screen":
            return _cli_screen(rest)
    except (LikenessError, ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"unknown command {cmd!r}", file=sys.stderr)
    return 2


def _embedder_from_args(args) -> Embedder:
    if getattr(args, "facenet_weights", None):
        return FacenetEmbedder(args.facenet_weights)
    return default_embedder()


def _cli_gallery(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m safety gallery", description="Manage the protected-people gallery.")
    p.add_argument("--db", help="gallery file (default: $VASA_DATA_DIR/gallery.db)")
    p.add_argument("--facenet-weights", help="use facenet InceptionResnetV1 with this state-dict file")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="enroll a person from one or more photos (embeddings only are stored)")
    a.add_argument("name")
    a.add_argument("images", nargs="+")
    a.add_argument("--face", type=int, default=None, help="face number in each photo (0 = leftmost)")
    sub.add_parser("list", help="list protected people")
    r = sub.add_parser("remove", help="remove a person and all their embeddings")
    r.add_argument("name")
    args = p.parse_args(argv)
    gallery = Gallery(args.db)
    if args.action == "add":
        n = gallery.add(args.name, args.images, _embedder_from_args(args), face_index=args.face)
        print(f"enrolled {_clean_name(args.name)!r}: {n} new embedding(s) from {len(args.images)} photo(s); "
              "no photo was stored")
        return 0
    if args.action == "list":
        people = gallery.list()
        for person in people:
            print(f"{person['name']}\t{person['embeddings']} embedding(s)\t{','.join(person['embedders'])}\t"
                  f"since {person['created']}")
        if not people:
            print("(the gallery is empty)")
        return 0
    if args.action == "remove":
        if gallery.remove(args.name):
            print(f"removed {_clean_name(args.name)!r}")
            return 0
        print(f"error: {_clean_name(args.name)!r} is not in the gallery", file=sys.stderr)
        return 1
    return 2


def _cli_screen(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m safety screen", description="Screen every face in an image.")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--db", help="gallery file (default: $VASA_DATA_DIR/gallery.db)")
    p.add_argument("--facenet-weights", help="use facenet InceptionResnetV1 with this state-dict file")
    args = p.parse_args(argv)
    result = screen(_load_rgb(args.image), Gallery(args.db), _embedder_from_args(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"decision: {result.decision} ({len(result.faces)} face(s); gallery: {result.gallery_size} people; "
              f"block <= {result.thresholds.block}, review <= {result.thresholds.review})")
        for f in result.faces:
            dist = "-" if f.distance is None else f"{f.distance:.3f}"
            print(f"  face {f.index} box={list(f.box)} {f.decision:6s} distance={dist} nearest={f.matched_name or '-'}")
    return {ALLOW: 0, REVIEW: 3, BLOCK: 4}[result.decision]
