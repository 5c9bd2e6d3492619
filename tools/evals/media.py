"""Test media for the evaluation code: one MP4 writer (H.264 + optional AAC) that every laboratory uses.

The product's own writer is `vasa_core.video.VideoWriter` (streaming, faststart, a second thread); this one
writes a whole list of frames at a chosen CRF into a file or bytes, for attacks and training clips.
"""
from __future__ import annotations

import io
from fractions import Fraction

import numpy as np


def encode_mp4(frames: list[np.ndarray], fps: float, audio: np.ndarray | None, audio_rate: int, crf: int,
               target=None) -> bytes | None:
    """H.264 (yuv420p, veryfast, one thread) + AAC mono MP4 -> bytes (or into `target` path)."""
    import av
    buf = io.BytesIO() if target is None else str(target)
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    with av.open(buf, "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        vs.codec_context.thread_count = 1
        aus = None
        if audio is not None:
            aus = c.add_stream("aac", rate=audio_rate, layout="mono")
            aus.bit_rate = 96_000
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if aus is not None:
            step = 1024
            for i in range(0, len(audio), step):
                chunk = audio[i:i + step]
                if len(chunk) < step:
                    chunk = np.pad(chunk, (0, step - len(chunk)))
                af = av.AudioFrame.from_ndarray(chunk[None].astype(np.float32), format="flt", layout="mono")
                af.sample_rate = audio_rate
                af.pts = i
                for p in aus.encode(af):
                    c.mux(p)
            for p in aus.encode():
                c.mux(p)
    return buf.getvalue() if target is None else None
