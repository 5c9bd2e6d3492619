"""vasa_core: the talking-face engine (one portrait + one audio clip -> a talking-head video).

Modules follow the data flow: portrait (analysis) -> audio (features) -> mouth + motion (what moves)
-> face (the 3D rig) -> render (mesh warp) -> video (MP4) ; pipeline owns the order; __main__ is the CLI.

The names below are imported on first use (PEP 562), so `python -m vasa_core ...` can check its input files
before it pays for OpenCV, SciPy, torch and mediapipe.
"""
from .errors import InputError

__version__ = "0.1.0"
__all__ = ["TalkingFacePipeline", "Result", "Output", "MotionSequence", "InputError", "write_video",
           "build_pipeline", "__version__"]

_LAZY = {"TalkingFacePipeline": "pipeline", "Result": "pipeline", "Output": "pipeline", "write_video": "pipeline",
         "build_pipeline": "pipeline", "MotionSequence": "motion"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
