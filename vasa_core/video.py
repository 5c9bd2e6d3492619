"""Video in and out: H.264 (yuv420p, faststart) + AAC MP4 files via PyAV, frame reading, contact sheets."""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .audio import Audio


class VideoWriter:
    """Streams RGB frames (and the matching audio) into an MP4, encoding on a background thread.

    Usage:  with VideoWriter(path, fps=25, size=512, audio=audio) as w: w.write(frame) ...
    or, with audio that arrives in pieces:  VideoWriter(path, audio_rate=48000) and w.write_audio(samples)
    before the frames that show it. Memory stays flat: frames and audio pass through short queues to the
    encoder and are never accumulated.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, size: int = 512, audio: Audio | None = None,
                 crf: int = 16, preset: str = "veryfast", audio_rate: int | None = None):
        import av
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self.vstream = self.container.add_stream("libx264", rate=rate)
        self.vstream.width = self.vstream.height = size
        self.vstream.pix_fmt = "yuv420p"
        # CRF 16 + tune film, by measurement (`tools.review`, Grace Hopper's face at 512): with the learned head
        # motion (livelier than the hand-tuned one) CRF 18 kept 0.75x of the source's detail against 0.94x in
        # memory, CRF 16 0.79x for 28% more bytes (1.6 s: 217 vs 170 KB; /tmp/lead/crf.py); earlier, with the
        # hand-tuned motion, CRF 18 had kept 0.84x against 0.80x at CRF 20; preset "faster" gains nothing and
        # doubles the time
        self.vstream.options = {"crf": str(crf), "preset": preset, "tune": "film"}
        self.vstream.codec_context.thread_count = 1       # leave the other core to the renderer
        self.audio_rate = audio.sample_rate if audio is not None else audio_rate
        self.astream = None
        if self.audio_rate:
            self.astream = self.container.add_stream("aac", rate=self.audio_rate, layout="mono")
            self.astream.bit_rate = 96_000
        self._audio_in: deque[np.ndarray] = deque()      # pieces handed over, not yet encoded
        self._audio_pending = np.zeros(0, np.float32)    # the encoder thread's partly used piece
        self.audio_written = 0                           # samples handed over so far
        if audio is not None:
            self._audio_in.append(audio.samples)
            self.audio_written = len(audio.samples)
        self._audio_pos = 0
        self._count = 0
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray) -> None:
        """Queue one (size, size, 3) uint8 RGB frame."""
        if self._error:
            raise self._error
        self._queue.put(np.ascontiguousarray(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        """Hand over the next piece of the soundtrack (mono float32 at `audio_rate`)."""
        if self.astream is None:
            raise ValueError("this writer was opened without an audio track (give audio= or audio_rate=)")
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._audio_in.append(samples)                    # deque: safe across threads
        self.audio_written += len(samples)

    def _encode_audio_until(self, t: float | None) -> None:
        """Encode the soundtrack up to time `t` of the video (all of it when None), 1024 samples at a time."""
        import av
        if self.astream is None:
            return
        end = None if t is None else int(round(t * self.audio_rate))
        step = 1024
        while end is None or end - self._audio_pos >= step:
            while len(self._audio_pending) < step and self._audio_in:
                piece = self._audio_in.popleft()
                self._audio_pending = (piece if len(self._audio_pending) == 0      # no copy of a whole clip
                                       else np.concatenate([self._audio_pending, piece]))
            if len(self._audio_pending) == 0 or (end is not None and len(self._audio_pending) < step):
                break
            chunk, self._audio_pending = self._audio_pending[:step], self._audio_pending[step:]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = self.audio_rate
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self.audio_rate)
            for packet in self.astream.encode(frame):
                self.container.mux(packet)
            self._audio_pos += len(chunk)

    def _run(self) -> None:
        import av
        try:
            while True:
                frame = self._queue.get()
                if frame is None:
                    break
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = self._count
                vf.time_base = Fraction(1) / self.vstream.codec_context.framerate
                for packet in self.vstream.encode(vf):
                    self.container.mux(packet)
                self._count += 1
                self._encode_audio_until(self._count / self.fps)
        except BaseException as exc:   # surfaced to the caller on the next write() or close()
            self._error = exc
            while self._queue.get() is not None:   # drain so the producer never blocks
                pass

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is None:
                for packet in self.vstream.encode():
                    self.container.mux(packet)
                self._encode_audio_until(None)
                if self.astream is not None:
                    for packet in self.astream.encode():
                        self.container.mux(packet)
        finally:
            self.container.close()
        if self._error:
            raise self._error

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode every video frame of a file as (H, W, 3) uint8 RGB."""
    import av
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def probe(path: str | Path) -> dict:
    """Basic facts about a video file: frames, fps, width, height, video and audio duration (seconds)."""
    import av
    with av.open(os.fspath(path)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate) if v.average_rate else 0.0
        info = {"fps": fps, "width": v.codec_context.width, "height": v.codec_context.height,
                "codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt}
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_codec"] = a.codec_context.name
            info["audio_duration"] = float(a.duration * a.time_base) if a.duration else None
        info["frames"] = sum(1 for packet in c.demux(v) if packet.size)   # the last, empty packet is a flush
    info["video_duration"] = info["frames"] / fps if fps else 0.0
    return info


def contact_sheet(video: str | Path, out_png: str | Path, cols: int = 4, rows: int = 3, width: int = 256) -> Path:
    """A grid of `cols x rows` evenly spaced frames (with their times) from a video, written as a PNG."""
    info = probe(video)
    if not info["frames"]:
        raise ValueError(f"{video} has no video frames")
    info_fps = info["fps"] or 25.0
    wanted = np.linspace(0, info["frames"] - 1, cols * rows).round().astype(int)
    picked, wanted_set = {}, set(wanted.tolist())
    for i, frame in enumerate(read_frames(video)):      # keep only the frames shown, never the whole clip
        if i in wanted_set:
            picked[i] = frame
        if i >= wanted[-1]:
            break
    tiles = []
    for i in wanted:
        f = picked.get(i, picked[max(picked)])
        h = int(round(f.shape[0] * width / f.shape[1]))
        tile = cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"{i / info_fps:5.2f}s", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, f"{i / info_fps:5.2f}s", (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    grid = np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out_png
