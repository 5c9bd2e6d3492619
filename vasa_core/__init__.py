"""vasa_core: the talking-face engine (one portrait + one audio clip -> a talking-head video).

Modules follow the data flow: portrait (analysis) -> audio (features) -> mouth + motion (what moves)
-> face (the 3D rig) -> render (mesh warp) -> video (MP4) ; pipeline owns the order; __main__ is the CLI.
"""
from .errors import InputError
from .motion import MotionSequence
from .pipeline import Output, Result, TalkingFacePipeline, write_video

__version__ = "0.1.0"
__all__ = ["TalkingFacePipeline", "Result", "Output", "MotionSequence", "InputError", "write_video", "__version__"]
