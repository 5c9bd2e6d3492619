"""Streaming: motion and frames while the audio is still arriving (VASA-1's online mode).

    audio chunks (any rate) -> soxr stream resampler -> 16 kHz
        -> ProsodyStream (loudness, voicing, pitch at 100 Hz) -> motion generator (head, brows, blinks, gaze)
        -> MouthStream (learned lip sync)                                              -> with_mouth -> rows

`MotionStream` is also what `TalkingFacePipeline.motion` runs over a whole file (fed in 10 s pieces), so a
streamed clip and an offline clip of the same audio come from the same code and the same numbers (up to
float rounding in the lip-sync network, < 1e-5). Every stage keeps only the audio and features its next
output needs, so memory does not grow with the length of the stream.

Latency at 25 fps: a frame at audio time t is final once the audio up to t + 142.5 ms has arrived
(lip sync: 82.5 ms network lookahead + the frame shows the network's output 20 ms ahead (real lips lead the
sound), averaged over +-40 ms; everything else needs less). `LearnedMouth.frame_delay_s` computes it.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator

import numpy as np

from .audio import HOP, SAMPLE_RATE, ProsodyStream, resample_stream
from .motion import PARAMS, MotionControls, make_generator, with_mouth

FEATURE_RATE = SAMPLE_RATE / HOP    # 100 prosody frames per second


def as_mono_float(chunk) -> np.ndarray:
    """A microphone buffer as mono float32 in [-1, 1]: integer PCM is scaled, (n, channels) is averaged."""
    x = np.asarray(chunk)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] <= 8 else 0)
    return np.clip(x.reshape(-1), -1.0, 1.0)


class MotionStream:
    """Audio in pieces -> motion rows (k, len(PARAMS)) for the video frames that are final.

    mouth: a mouth model with a `stream(fps)` method (the learned lip-sync model).
    push(samples) takes samples at `sample_rate` (float in [-1, 1] or integer PCM; mono, or (n, channels));
    finish() flushes the end of the audio.
    """

    def __init__(self, mouth, sample_rate: int, fps: float = 25.0, controls: MotionControls = MotionControls()):
        if not hasattr(mouth, "stream"):
            raise ValueError(f"The '{mouth.name}' mouth model cannot stream; use the learned lip-sync model.")
        self.fps, self.sample_rate, self.controls = float(fps), int(sample_rate), controls
        self._resampler = resample_stream(self.sample_rate, SAMPLE_RATE)   # the engine's one resampler
        self._prosody = ProsodyStream()
        self._mouth = mouth.stream(self.fps)
        self._motion = make_generator(self.fps, controls)
        self._feat = np.zeros((0, 3), np.float32)   # 100 Hz prosody rows from index _feat0 on
        self._feat0 = 0
        self._video_prosody = 0                      # next video frame whose prosody goes to the generator
        self._rows = np.zeros((0, len(PARAMS)), np.float32)   # generator output waiting for its mouth
        self._mouths = np.zeros((0, 8), np.float32)           # mouth output waiting for its motion
        self._received = 0

    @property
    def num_frames(self) -> int:
        """Video frames covering the audio received so far (rounded, at least 1)."""
        return max(1, int(round(self._received / self.sample_rate * self.fps)))

    def _feed(self, x16: np.ndarray, final: bool, num_frames: int = 0) -> np.ndarray:
        feats = self._prosody.finish() if final else self._prosody.push(x16)
        self._feat = np.concatenate([self._feat, feats])
        mouth = self._mouth.finish(num_frames) if final else self._mouth.push(x16)
        self._mouths = np.concatenate([self._mouths, mouth])
        # prosody at each video frame: the nearest 10 ms frame (as `prosody_at_frames` does offline)
        n_feat = self._feat0 + len(self._feat)
        picked = []
        while True:
            i = self._video_prosody
            j = int(np.round(i / self.fps * FEATURE_RATE))
            if final:
                if i >= num_frames:
                    break
                j = min(j, n_feat - 1)
            elif j >= n_feat:
                break
            picked.append(self._feat[j - self._feat0] if n_feat else np.array([-100.0, 0.0, 0.0], np.float32))
            self._video_prosody += 1
        drop = max(0, min(int(np.round(self._video_prosody / self.fps * FEATURE_RATE)) - self._feat0 - 1,
                          len(self._feat) - 1))
        self._feat, self._feat0 = self._feat[drop:], self._feat0 + drop
        prosody = np.array(picked, np.float32).reshape(-1, 3)
        rows = self._motion.push(prosody)
        if final:
            rows = np.concatenate([rows, self._motion.finish()])
        self._rows = np.concatenate([self._rows, rows])
        # a frame is out when both its motion and its mouth are known
        k = min(len(self._rows), len(self._mouths))
        out = with_mouth(self._rows[:k], self._mouths[:k], self.controls)
        self._rows, self._mouths = self._rows[k:], self._mouths[k:]
        return out

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = as_mono_float(samples)
        self._received += len(x)
        x16 = self._resampler.resample_chunk(x, last=False) if self._resampler else x
        return self._feed(np.asarray(x16, np.float32), final=False)

    def finish(self) -> np.ndarray:
        rest = np.zeros(0, np.float32)
        if self._resampler:
            rest = np.asarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True), np.float32)
        rows = self._feed(rest, final=False) if len(rest) else np.zeros((0, len(PARAMS)), np.float32)
        return np.concatenate([rows, self._feed(np.zeros(0, np.float32), final=True, num_frames=self.num_frames)])


class FrameStream:
    """Watermarked video frames for audio that is still arriving; iterate it to drive the stream.

    Yields (size, size, 3) uint8 RGB frames in order, frame i showing audio time i/fps. Attributes:
      payload          the watermark id in every frame
      portrait_key     the portrait's cache key (its hash), for the audit log
      frame_times      perf_counter() time at which each frame was yielded
      first_chunk_time perf_counter() time at which the first audio chunk was received
    """

    def __init__(self, chunks: Iterable[np.ndarray], motion: MotionStream, render, payload: int, size: int,
                 label: bool = False, portrait_key: str = "", *, marker):
        """marker: the pipeline's marker (`safety.publish.Marker`: its watermark key and visible label)."""
        self._chunks, self._motion, self._render = chunks, motion, render
        self._label = marker.label
        self._marker = marker.embedder(payload, size, size)
        self.payload, self.size, self.fps, self.label = payload, size, motion.fps, label
        self.portrait_key = portrait_key
        self.frame_times: list[float] = []
        self.first_chunk_time: float | None = None

    @property
    def first_frame_latency_s(self) -> float | None:
        """Seconds from the first audio chunk's arrival to the first frame out."""
        if self.first_chunk_time is None or not self.frame_times:
            return None
        return self.frame_times[0] - self.first_chunk_time

    def _out(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        for row in rows:
            frame = self._marker.embed(self._render(row), len(self.frame_times))
            if self.label:
                frame = self._label(frame)
            self.frame_times.append(time.perf_counter())
            yield frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self._chunks:
            if self.first_chunk_time is None:
                self.first_chunk_time = time.perf_counter()
            yield from self._out(self._motion.push(chunk))
        yield from self._out(self._motion.finish())


def paced_chunks(samples: np.ndarray, sample_rate: int, chunk_s: float = 0.04,
                 realtime: bool = True) -> Iterator[np.ndarray]:
    """Split audio into `chunk_s` pieces; with `realtime`, hand each one out only once it would have been
    recorded by a live microphone (chunk k, covering [k, k+1) * chunk_s, at (k+1) * chunk_s after the start)."""
    n = max(1, int(round(chunk_s * sample_rate)))
    start = time.perf_counter()
    for k, a in enumerate(range(0, len(samples), n)):
        if realtime:
            wait = start + (a + min(n, len(samples) - a)) / sample_rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield samples[a:a + n]


def timing(stream: FrameStream, chunk_s: float) -> dict:
    """Latency and speed of a finished stream that was fed `chunk_s` chunks.

    first_frame_ms  from the first audio chunk's arrival to the first frame out
    fps             frames out per second of wall time, first chunk to last frame
    lag_*_ms        how long after its audio moment was spoken each frame came out (live-source view: audio
                    time 0 is spoken one chunk before the first chunk arrives), median and 95th percentile
    """
    times = np.asarray(stream.frame_times)
    if stream.first_chunk_time is None or len(times) == 0:
        return {"frames": 0}
    spoken = stream.first_chunk_time - chunk_s + np.arange(len(times)) / stream.fps
    lag = (times - spoken) * 1000
    wall = times[-1] - stream.first_chunk_time
    return {"frames": int(len(times)), "first_frame_ms": round(float(stream.first_frame_latency_s * 1000), 1),
            "fps": round(len(times) / wall, 1) if wall > 0 else float("inf"),
            "lag_median_ms": round(float(np.median(lag)), 1), "lag_p95_ms": round(float(np.percentile(lag, 95)), 1)}
