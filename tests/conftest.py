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

# The slow lane: real browser, servers, Ray, long renders, training and evaluation runs (each 5-40 s on
# 2 cores). `make test-fast` (-m "not slow") skips them; `make test` (CI) runs everything. Whole files, or
# single tests as "file.py::name"; a test file may also mark its own tests with @pytest.mark.slow.
SLOW = {
    "test_browser.py", "test_hosting.py", "test_likeness_real.py",
    "test_stream.py::test_memory_stays_bounded", "test_stream.py::test_mouth_stream_equals_one_pass",
    "test_stream.py::test_lookahead_is_bounded", "test_stream.py::test_cli_stream_realtime",
    "test_safety_likeness.py::test_chosen_thresholds_match_the_measurement",
    "test_safety_watermark.py::test_evaluate_runs_small",
    "test_safety_watermark.py::test_unmarked_real_frames_stay_unmarked",
    "test_detector.py::test_batch_scan_on_local_ray", "test_detector.py::test_training_on_tiny_data",
    "test_pipeline.py::test_identity_is_kept_on_every_frame", "test_pipeline.py::test_a_wheel_carries_the_assets",
    "test_app.py::test_generate_tab_with_a_short_example",
    "test_safety_audit.py::test_writes_survive_sigkill_mid_write",
    "test_lipsync.py::test_train_a_few_steps",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = Path(str(item.fspath)).name
        if file in SLOW or f"{file}::{item.originalname}" in SLOW:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fuzz tests' counts of accepted / refused inputs (tests/test_safety_validate.py), as a report, not a
    test; SAFETY_FUZZ_REPORT=path appends them to a file."""
    import sys
    module = sys.modules.get("test_safety_validate") or sys.modules.get("tests.test_safety_validate")
    counts = getattr(module, "FUZZ_COUNTS", None)
    if not counts:
        return
    lines = [f"{k}: {v}" for k, v in sorted(counts.items())] + [f"total: {sum(counts.values())}"]
    terminalreporter.write_sep("-", "fuzzed uploads: outcome counts")
    terminalreporter.write_line("\n".join(lines))
    report = os.environ.get("SAFETY_FUZZ_REPORT")
    if report:
        with open(report, "a") as fh:
            fh.write("\n".join(lines) + "\n")
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
