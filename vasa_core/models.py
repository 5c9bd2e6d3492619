"""The one registry of loaded models: every model the engine and the safety layer load once per process
(mediapipe's face mesh and selfie mask, MTCNN, dlib's HOG detector and face descriptor, silero-vad, the Whisper
encoder...) is built here on first use, under one lock, and kept by name.

    models.get("face_mesh", build)   the model named, built by `build()` the first time
    models.loaded()                  the names loaded so far (what a warm process holds; the bench prints it)

Callers keep their own lock where a model is not thread-safe while it runs (MTCNN, silero-vad): the registry
only makes sure each is built once.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")
_LOCK = threading.RLock()
_MODELS: dict[str, object] = {}


def get(name: str, build: Callable[[], T]) -> T:
    """The model called `name`, built by `build()` on first use (once per process, whatever the thread)."""
    with _LOCK:
        if name not in _MODELS:
            _MODELS[name] = build()
        return _MODELS[name]  # type: ignore[return-value]


def loaded() -> list[str]:
    """Names of the models loaded in this process so far."""
    with _LOCK:
        return sorted(_MODELS)
