"""The demo's live mode: one session per visitor, microphone chunks in, watermarked frames out.

A `LiveSession` holds the gate's decoded portrait and face, runs `pipeline.stream` on a worker thread fed by
a queue of microphone chunks, and keeps the newest frame and the delay from each chunk's arrival to its frame.
The app (app.py) only wires the Live tab's events to it.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from safety.audit import AuditLog
from vasa_core import InputError, TalkingFacePipeline

log = logging.getLogger("vasa.app")


class LiveSession:
    """One live stream: microphone chunks in (any rate), watermarked frames out on a worker thread.

    The latency shown is, for the newest frame, the time from the arrival of the audio it shows (frame i shows
    audio time i/25 s) to the frame being ready on the server (the browser adds its own delay on top)."""

    def __init__(self, pipe: TalkingFacePipeline, rgb: np.ndarray, face_box, request_id: str, controls: dict,
                 max_seconds: float, *, label: bool, audit: AuditLog):
        """pipe: the pipeline to stream with; rgb, face_box: the gate's decoded portrait and face; request_id:
        the gate's audit record (the watermark id is added to it through `audit`); label: the visible mark."""
        self.pipe, self.rgb, self.face_box, self.request_id = pipe, rgb, face_box, request_id
        self.controls, self.max_seconds, self.label, self.audit = controls, max_seconds, label, audit
        self.chunks: queue.Queue = queue.Queue()
        self.rate: int | None = None
        self.received = 0                          # samples
        self.arrivals: list[tuple[int, float]] = []  # (samples received so far, perf_counter) per chunk
        self.latest: np.ndarray | None = None
        self.latency_ms: list[float] = []
        self.frames = 0
        self.payload: str | None = None
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self.started = self.last_seen = time.perf_counter()

    def push(self, rate: int, samples: np.ndarray) -> None:
        x = np.asarray(samples)
        if x.dtype.kind in "iu":
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
        x = x.astype(np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if self.rate is None:
            self.rate = int(rate)
            self.thread = threading.Thread(target=self._run, name="vasa-live", daemon=True)
            self.thread.start()
        self.received += len(x)
        self.last_seen = time.perf_counter()
        self.arrivals.append((self.received, self.last_seen))
        self.chunks.put(x)

    @property
    def seconds(self) -> float:
        return self.received / self.rate if self.rate else 0.0

    def _audio(self):
        while True:
            x = self.chunks.get()
            if x is None:
                return
            yield x

    def _run(self) -> None:
        try:
            stream = self.pipe.stream(self.rgb, self._audio(), sample_rate=self.rate, face_box=self.face_box,
                                      label=self.label, **self.controls)
            self.payload = self.pipe.marker.hex(stream.payload)
            self.audit.update(self.request_id, watermark_payload=self.payload)
            for i, frame in enumerate(stream):
                need = (i / stream.fps) * self.rate
                arrived = next((t for n, t in self.arrivals if n >= need), None)
                if arrived is not None:
                    self.latency_ms.append(1000 * (time.perf_counter() - arrived))
                self.latest, self.frames = frame, i + 1
        except Exception as exc:
            log.exception("live stream failed")
            self.error = str(exc) if isinstance(exc, InputError) else "The live stream stopped because of an error."

    def close(self) -> None:
        self.chunks.put(None)
        if self.thread is not None:
            self.thread.join(timeout=10)

    def status(self) -> str:
        if self.error:
            return self.error
        if not self.latency_ms:
            return "Listening... speak into the microphone."
        recent = sorted(self.latency_ms[-25:])
        return (f"Live: {self.frames} frames, {self.seconds:.1f} s of audio; delay from your voice to its frame: "
                f"{recent[len(recent) // 2]:.0f} ms (median of the last second); watermark id {self.payload}.")
