"""vasa_core: the talking-face engine (one portrait + one audio clip -> a talking-head video).

Modules follow the data flow: portrait (analysis) -> audio (features) -> mouth + motion (what moves)
-> face (the 3D rig) -> render (mesh warp) -> video (MP4) ; pipeline owns the order; __main__ is the CLI.

The names below are imported on first use (PEP 562), so `python -m vasa_core ...` can check its input files
before it pays for OpenCV, SciPy, torch and mediapipe.
"""
from pathlib import Path

from .errors import InputError

__version__ = "0.1.0"
# The project's shipped files (trained weights, the default speech, examples): assets/ at the repository root
# in a checkout (where the team keeps them), vasa_core/assets/ in an installed wheel (pyproject.toml maps the
# same folder in as package data).
ASSETS = next((p for p in (Path(__file__).parent / "assets", Path(__file__).parent.parent / "assets")
               if p.is_dir()), Path(__file__).parent.parent / "assets")
__all__ = ["TalkingFacePipeline", "Result", "Output", "MotionSequence", "InputError", "write_video",
           "build_pipeline", "__version__"]

_LAZY = {"TalkingFacePipeline": ".pipeline", "Result": ".pipeline", "Output": ".pipeline", "write_video": ".pipeline",
         "MotionSequence": ".motion",
         # alias kept for one release: the factory now lives with the components it hands in (safety.publish)
         "build_pipeline": "safety.publish"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
