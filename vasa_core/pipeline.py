"""The pipeline: the one place that knows the order of the stages.

    image -> analyze_portrait -> Portrait                      (cached by image hash)
    audio -> load_audio -> Audio -> mouth model + features -> generate_motion -> MotionSequence
    Portrait + MotionSequence -> Renderer -> frames -> VideoWriter (H.264 + AAC)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .audio import Audio, extract_features, load_audio, resample
from .errors import AudioError
from .motion import MotionSequence, generate_motion
from .mouth import MouthModel, load_mouth_model
from .portrait import Portrait, analyze_portrait
from .render import Renderer
from .video import VideoWriter

OUTPUT_SAMPLE_RATE = 48_000   # Hz, audio in the written MP4


@dataclass(frozen=True)
class Result:
    """A generated clip: frames (T, S, S, 3) uint8 RGB at `fps`, the audio, and the motion that drove it."""
    frames: np.ndarray
    audio: Audio
    fps: float
    motion: MotionSequence


class TalkingFacePipeline:
    """One portrait + one audio clip -> a talking-head clip.

    size: output side in pixels (256..1024); fps: video frame rate; device: 'auto' | 'cpu' | 'cuda'
    (the warp runs on the GPU when there is one); lipsync: 'default' (learned model when its weights
    ship, else acoustic) | 'learned' | 'acoustic'.
    """

    def __init__(self, size: int = 512, fps: float = 25.0, device: str = "auto", lipsync: str = "default"):
        if not 256 <= size <= 1024:
            raise ValueError("size must be between 256 and 1024 pixels")
        self.size, self.fps, self.device = int(size), float(fps), device
        self.mouth: MouthModel = load_mouth_model(lipsync)
        self._portraits: OrderedDict[str, tuple[Portrait, Renderer]] = OrderedDict()

    # --- stages ---------------------------------------------------------------------------------------
    def prepare(self, image) -> tuple[Portrait, Renderer]:
        """Analyse a portrait (path, bytes or RGB array) and build its renderer; cached (8 most recent)."""
        portrait = analyze_portrait(image, self.size) if not isinstance(image, Portrait) else image
        hit = self._portraits.get(portrait.key)
        if hit is None:
            hit = (portrait, Renderer(portrait, self.device))
            self._portraits[portrait.key] = hit
            while len(self._portraits) > 8:
                self._portraits.popitem(last=False)
        self._portraits.move_to_end(portrait.key)
        return hit

    def load_audio(self, audio, max_seconds: float = 3600.0) -> Audio:
        """Decode an audio file/bytes (or pass an Audio through) at the output sample rate."""
        if isinstance(audio, Audio):
            return audio
        return load_audio(audio, max_seconds=max_seconds, sample_rate=OUTPUT_SAMPLE_RATE)

    def motion(self, audio: Audio, seed: int = 0, gaze: tuple[float, float] = (0.0, 0.0),
               distance: float = 1.0, emotion: str = "neutral", emotion_weight: float = 1.0,
               motion_scale: float = 1.0) -> MotionSequence:
        """Generate the per-frame motion for an audio clip (deterministic for a given seed)."""
        speech = resample(audio)
        if float(np.max(np.abs(speech.samples))) < 1e-4:
            raise AudioError("The audio is silent; there is no speech or singing to animate.")
        feats = extract_features(speech)
        n = feats.num_video_frames(self.fps)
        mouth = self.mouth.predict(speech.samples, speech.sample_rate, self.fps, n)
        return generate_motion(feats, mouth, self.fps, seed=seed, gaze=gaze, distance=distance,
                               emotion=emotion, emotion_weight=emotion_weight, motion_scale=motion_scale)

    def frames(self, image, motion: MotionSequence) -> Iterator[np.ndarray]:
        """Render frames one by one (never holds the whole clip)."""
        _, renderer = self.prepare(image)
        for row in motion.values:
            yield renderer.render(row)

    # --- whole clips ----------------------------------------------------------------------------------
    def generate(self, image, audio, motion: MotionSequence | None = None, **controls) -> Result:
        """Frames + audio in memory (for short clips; use `write` for long ones)."""
        audio = self.load_audio(audio)
        motion = motion or self.motion(audio, **controls)
        frames = np.stack(list(self.frames(image, motion)))
        return Result(frames=frames, audio=audio, fps=self.fps, motion=motion)

    def write(self, image, audio, out_path: str | Path, motion: MotionSequence | None = None,
              **controls) -> Path:
        """Generate and stream straight into an MP4 (H.264 + AAC); memory stays flat with length."""
        self.prepare(image)          # fail fast on a bad portrait, before decoding audio
        audio = self.load_audio(audio)
        motion = motion or self.motion(audio, **controls)
        n_audio = int(round(audio.duration * self.fps))
        if len(motion) != n_audio and n_audio > 0:
            motion = MotionSequence.from_json(motion.to_json(), num_frames=n_audio, fps=self.fps)
        with VideoWriter(out_path, fps=self.fps, size=self.size, audio=audio) as writer:
            for frame in self.frames(image, motion):
                writer.write(frame)
        return Path(out_path)


def write_video(result: Result, out_path: str | Path) -> Path:
    """Write a `Result` from `TalkingFacePipeline.generate` to an MP4."""
    with VideoWriter(out_path, fps=result.fps, size=result.frames.shape[1], audio=result.audio) as w:
        for frame in result.frames:
            w.write(frame)
    return Path(out_path)
