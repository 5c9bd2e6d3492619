"""Video in and out: H.264 (yuv420p, faststart) + AAC MP4 files via PyAV, frame reading, contact sheets."""
from __future__ import annotations

import os
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .audio import Audio


class VideoWriter:
    """Streams RGB frames (and the matching audio) into an MP4, encoding on a background thread.

    Usage:  with VideoWriter(path, fps=25, size=512, audio=audio) as w: w.write(frame) ...
    Memory stays flat: frames are handed to the encoder through a short queue, never accumulated.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, size: int = 512, audio: Audio | None = None,
                 crf: int = 20, preset: str = "veryfast"):
        import av
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.audio = audio
        self.container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self.vstream = self.container.add_stream("libx264", rate=rate)
        self.vstream.width = self.vstream.height = size
        self.vstream.pix_fmt = "yuv420p"
        self.vstream.options = {"crf": str(crf), "preset": preset}
        self.vstream.codec_context.thread_count = 1       # leave the other core to the renderer
        self.astream = None
        if audio is not None:
            self.astream = self.container.add_stream("aac", rate=audio.sample_rate, layout="mono")
            self.astream.bit_rate = 96_000
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

    def _encode_audio_until(self, t: float | None) -> None:
        import av
        if self.astream is None:
            return
        samples = self.audio.samples
        end = len(samples) if t is None else min(len(samples), int(round(t * self.audio.sample_rate)))
        step = 1024
        while self._audio_pos < end and (t is None or end - self._audio_pos >= step):
            chunk = samples[self._audio_pos:self._audio_pos + step]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self.audio.sample_rate)
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
