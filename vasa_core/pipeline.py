"""The pipeline: the one place that knows the order of the stages.

    image -> analyze_portrait -> Portrait                      (cached by image hash)
    audio pieces -> MotionStream (lip sync + prosody -> motion) -> MotionSequence
    Portrait + MotionSequence -> Renderer -> frames
    frames + audio pieces -> marker (watermark) -> VideoWriter (H.264 + AAC) -> publisher (C2PA + audit) -> file

The marker and publisher are handed in (`safety.publish` makes them; `safety.publish.build_pipeline` is the
factory): the engine never imports the safety layer.

`write` reads an audio file twice, a piece at a time (motion first, then soundtrack and frames), so memory
does not grow with its length; `stream` runs the same stages on audio that is still arriving and yields
watermarked frames as it goes.
"""
from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from .audio import Audio, AudioInfo, AudioScan, extract_features, iter_audio, load_audio, resample
from .errors import AudioError
from .motion import MotionControls, MotionSequence, generate_motion
from .mouth import MouthModel, load_mouth_model
from .portrait import Portrait, analyze_portrait
from .render import Renderer
from .stream import FrameStream, MotionStream
from .video import VideoWriter



class Marker(Protocol):
    """What the pipeline needs of a watermarker (`safety.publish.Marker` is the product's)."""
    def new_payload(self) -> int: ...                    # a fresh 32-bit id for one clip
    def embedder(self, payload: int, width: int, height: int): ...   # `.embed(frame, index) -> frame`
    def label(self, frame: np.ndarray) -> np.ndarray: ...   # the frame with a visible "AI-generated" label
    def hex(self, payload: int) -> str: ...


class Publisher(Protocol):
    """What the pipeline needs of a publisher (`safety.publish.Publisher`: C2PA signing + the audit log)."""
    def start(self, **fields) -> str: ...
    def sign(self, unsigned: Path, out: Path, payload: int, generator: str, version: str) -> dict: ...
    def record(self, request_id: str, payload_hex: str, output_sha256: str) -> None: ...

OUTPUT_SAMPLE_RATE = 48_000   # Hz, audio in the written MP4
PROGRESS_EVERY = 10          # frames between two progress reports of `write`
MOTION_PIECE_S = 10.0         # seconds of audio fed at a time when a whole file is turned into motion


@dataclass(frozen=True)
class Result:
    """A generated clip: frames (T, S, S, 3) uint8 RGB at `fps` (already watermarked with `payload`),
    the audio, the motion that drove it, and the portrait's cache key."""
    frames: np.ndarray
    audio: Audio
    fps: float
    motion: MotionSequence
    payload: int
    portrait_key: str


@dataclass(frozen=True)
class Output:
    """A written clip: its path, the watermark payload (hex) in every frame, the signed C2PA manifest as
    read back, the file's SHA-256, the audit-log request id that records it, and the motion."""
    path: Path
    payload: str
    manifest: dict | None
    sha256: str
    request_id: str
    motion: MotionSequence | None = None    # the motion that drove the frames (None for write_video/streams)

    def __fspath__(self) -> str:
        return str(self.path)


def _source_key(image, size: int, face_box) -> str:
    """Cheap cache key of a portrait source (file bytes or pixels) + output size + chosen face."""
    h = hashlib.sha256(f"{size}|{face_box}".encode())
    if isinstance(image, np.ndarray):
        h.update(str(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
    elif isinstance(image, (bytes, bytearray)):
        h.update(bytes(image))
    else:
        path = Path(image)
        h.update(path.read_bytes() if path.is_file() else str(path).encode())
    return h.hexdigest()


def _resolve_device(device: str) -> str:
    """'auto' -> 'cpu' on a Linux machine with no NVIDIA device node, decided without importing torch (~1.5 s
    of a cold start, more than the rest of the CPU path's imports together); otherwise the renderer decides
    ('cuda' when torch sees a GPU)."""
    import glob
    import sys
    if device == "auto" and sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
        return "cpu"
    return device


class TalkingFacePipeline:
    """One portrait + one audio clip -> a talking-head clip.

    size: output side in pixels (256..1024); fps: video frame rate; device: 'auto' | 'cpu' | 'cuda'
    (the warp runs on the GPU when there is one); lipsync: 'default' (= 'whisper': Whisper-base features,
    fitted to real mouths; live streams use the learned model, `live_mouth`) | 'learned' | 'acoustic'.
    marker / publisher: what every frame and file that leaves goes through, handed in by whoever builds the
    pipeline (diffusers-style; there is no default): the watermark (and visible label), and C2PA signing +
    the audit log. `safety.publish.build_pipeline` is the factory the app, the CLI and the tools use.
    """

    def __init__(self, size: int = 512, fps: float = 25.0, device: str = "auto", lipsync: str = "default", *,
                 marker: Marker, publisher: Publisher, mouth: MouthModel | None = None,
                 live_mouth: MouthModel | None = None, renderer: Callable[[Portrait, str], Renderer] = Renderer):
        """mouth / live_mouth: the mouth models for files and for live streams (`safety.publish.build_pipeline`
        builds them; left out, `lipsync` names one: 'default' | 'learned' | 'acoustic'); renderer: what turns a
        Portrait and a device into a renderer (`vasa_core.render.Renderer`)."""
        if not 256 <= size <= 1024:
            raise ValueError("size must be between 256 and 1024 pixels")
        self.size, self.fps, self.device = int(size), float(fps), _resolve_device(device)
        self.marker: Marker = marker
        self.publisher: Publisher = publisher
        self.mouth: MouthModel = mouth if mouth is not None else load_mouth_model(lipsync)
        self._live_mouth: MouthModel | None = live_mouth
        self.make_renderer = renderer
        self._portraits: OrderedDict[str, tuple[Portrait, Renderer]] = OrderedDict()

    @property
    def live_mouth(self) -> MouthModel:
        """The mouth for live streams: the pipeline's own unless it waits for whole encoder windows (the
        Whisper mouth, `live = False`), then the learned log-mel model (142.5 ms of delay)."""
        if self._live_mouth is None:
            self._live_mouth = self.mouth if getattr(self.mouth, "live", True) else load_mouth_model("learned")
        return self._live_mouth

    # --- stages ---------------------------------------------------------------------------------------
    def prepare(self, image, face_box=None) -> tuple[Portrait, Renderer]:
        """Analyse a portrait (path, bytes or RGB array) and build its renderer; cached (8 most recent).

        face_box: (x0, y0, x1, y1) picks which face to animate in a group photo (default: the largest); a
        `vasa_core.faces.Face` (the safety gate's `GateDecision.face`) is animated as found, not detected again.
        """
        if isinstance(image, Portrait):
            key = image.key
        else:
            key = _source_key(image, self.size, face_box)
        hit = self._portraits.get(key)
        if hit is None:
            portrait = image if isinstance(image, Portrait) else analyze_portrait(image, self.size, face_box)
            hit = (portrait, self.make_renderer(portrait, self.device))
            self._portraits[key] = hit
            while len(self._portraits) > 8:
                self._portraits.popitem(last=False)
        self._portraits.move_to_end(key)
        return hit

    def load_audio(self, audio, max_seconds: float = 3600.0) -> Audio:
        """Decode an audio file/bytes (or pass an Audio through) at the output sample rate."""
        if isinstance(audio, Audio):
            return audio
        return load_audio(audio, max_seconds=max_seconds, sample_rate=OUTPUT_SAMPLE_RATE)

    def motion(self, audio: Audio, seed: int = 0, gaze: tuple[float, float] = (0.0, 0.0),
               distance: float = 1.0, emotion: str = "neutral", emotion_weight: float = 1.0,
               motion_scale: float = 1.0, seed_from_audio: bool = True,
               motion_model: str = "default") -> MotionSequence:
        """Generate the per-frame motion for an audio clip (deterministic for a given seed).

        The audio goes through the same `MotionStream` as a live stream, 10 s at a time, so offline and
        streamed motion are the same and memory stays flat for long clips."""
        controls = MotionControls(seed=seed, gaze=tuple(gaze), distance=distance, emotion=emotion,
                                  emotion_weight=emotion_weight, motion_scale=motion_scale,
                                  seed_from_audio=seed_from_audio, motion_model=str(motion_model))
        motion, _ = self._first_pass(audio, audio.sample_rate, controls)
        return motion

    def _pieces(self, audio, rate: int, seconds: float) -> Iterator[np.ndarray]:
        """An `Audio` in slices, or an audio file decoded piece by piece, `seconds` long each."""
        if not isinstance(audio, Audio):
            return iter_audio(audio, rate, piece_s=seconds)
        k = int(seconds * rate)
        return (audio.samples[a:a + k] for a in range(0, len(audio.samples), k))

    def _first_pass(self, audio, rate: int, controls: MotionControls | None) -> tuple[MotionSequence | None, AudioInfo]:
        """One pass over the audio, 10 s at a time: its length, peak and hash, and (unless `controls` is None)
        its motion. Raises AudioError for audio that is too short, or silent when motion is wanted."""
        scan = AudioScan(rate)
        stream = MotionStream(self.mouth, rate, self.fps, controls) if controls and hasattr(self.mouth, "stream") \
            else None
        rows = []
        for piece in self._pieces(audio, rate, MOTION_PIECE_S):
            scan.add(piece)
            if stream is not None:
                rows.append(stream.push(piece))
        info = scan.info()
        if controls is None:
            return None, info
        if info.peak < 1e-4:
            raise AudioError("The audio is silent; there is no speech or singing to animate.")
        if stream is not None:
            return MotionSequence(np.concatenate(rows + [stream.finish()]), self.fps), info
        # the v1 acoustic mouth needs the whole clip at 16 kHz
        speech = resample(audio if isinstance(audio, Audio) else load_audio(audio, sample_rate=rate))
        feats = extract_features(speech)
        mouth = self.mouth.predict(speech.samples, speech.sample_rate, self.fps, feats.num_video_frames(self.fps))
        return generate_motion(feats, mouth, self.fps, **vars(controls)), info

    def stream(self, image, audio_chunks: Iterable[np.ndarray], sample_rate: int = OUTPUT_SAMPLE_RATE, *,
               face_box=None, label: bool = False, **controls) -> FrameStream:
        """Talking-head frames while the audio is still arriving (live mode).

        audio_chunks: an iterable of mono float32 arrays at `sample_rate` (e.g. 40 ms microphone buffers; it
        may block while waiting for audio). Iterating the returned `FrameStream` yields watermarked
        (size, size, 3) uint8 RGB frames in order, frame i showing audio time i/fps, each as soon as the
        audio up to i/fps + 142.5 ms has arrived. Controls as in `motion` (seed, gaze, distance, emotion,
        emotion_weight, motion_scale). The mouth is `live_mouth`, so with the default (Whisper) mouth the
        frames are the learned model's; with lipsync='learned' they equal `write`'s for the same audio and
        seed (apart from each run's own watermark id).
        """
        portrait, renderer = self.prepare(image, face_box)
        controls = MotionControls(**controls)
        self._warm_up(renderer, sample_rate)
        motion = MotionStream(self.live_mouth, sample_rate, self.fps, controls)
        return FrameStream(audio_chunks, motion, renderer.render, self.marker.new_payload(), self.size, label,
                           portrait.key, marker=self.marker)

    def warm_motion(self, sample_rate: int = OUTPUT_SAMPLE_RATE) -> np.ndarray:
        """Run the lip-sync network and motion generator once on 0.3 s of silence (its first call costs
        ~0.6 s of one-time set-up); returns the motion rows. Safe on a background thread."""
        warm = MotionStream(self.live_mouth, sample_rate, self.fps)
        return np.concatenate([warm.push(np.zeros(int(0.3 * sample_rate), np.float32)), warm.finish()])

    def _warm_up(self, renderer: Renderer, sample_rate: int) -> None:
        """Run every stage once on a moment of silence, so that one-time costs (the network's first call,
        the renderer's and watermarker's buffers) are not paid while a live source waits for its first frame."""
        rows = self.warm_motion(sample_rate)
        self.marker.embedder(0, self.size, self.size).embed(renderer.render(rows[0]), 0)

    def write_stream(self, stream: FrameStream, audio: Audio, out_path: str | Path,
                     request_id: str | None = None) -> Output:
        """Drive a `FrameStream` into a signed MP4 with `audio` (what the stream was fed), as `write` does."""
        def produce(writer: VideoWriter) -> None:
            writer.write_audio(audio.samples)
            for frame in stream:
                writer.write(frame)
        return self._publish(produce, audio.sample_rate, _samples_sha256(audio.samples), Path(out_path),
                             stream.payload, stream.portrait_key, request_id)

    def frames(self, image, motion: MotionSequence, face_box=None) -> Iterator[np.ndarray]:
        """Render frames one by one (never holds the whole clip). These frames are NOT yet watermarked:
        only `write` lets frames leave the system."""
        _, renderer = self.prepare(image, face_box)
        for row in motion.values:
            yield renderer.render(row)

    # --- whole clips ----------------------------------------------------------------------------------
    def generate(self, image, audio, motion: MotionSequence | None = None, *, face_box=None,
                 label: bool = False, **controls) -> Result:
        """Watermarked frames + audio in memory (for short clips; `write` streams long ones to a file)."""
        check_audio_source(audio)
        portrait, _ = self.prepare(image, face_box)
        audio = self.load_audio(audio)
        motion = self._fit(motion or self.motion(audio, **controls), audio.duration)
        payload = self.marker.new_payload()
        frames = np.stack(list(self._marked_frames(image, motion, face_box, payload, label)))
        return Result(frames=frames, audio=audio, fps=self.fps, motion=motion, payload=payload,
                      portrait_key=portrait.key)

    def _fit(self, motion: MotionSequence, duration: float) -> MotionSequence:
        """The motion stretched or cut to the audio's length (seconds) in frames."""
        n_audio = int(round(duration * self.fps))
        if len(motion) != n_audio and n_audio > 0:
            motion = MotionSequence.from_json(motion.to_json(), num_frames=n_audio, fps=self.fps)
        return motion

    def _marked_frames(self, image, motion: MotionSequence, face_box, payload: int, label: bool):
        """Rendered frames with the invisible watermark (and optionally the visible label)."""
        marker = self.marker.embedder(payload, self.size, self.size)
        for i, frame in enumerate(self.frames(image, motion, face_box)):
            frame = marker.embed(frame, i)
            yield self.marker.label(frame) if label else frame

    def write(self, image, audio, out_path: str | Path, motion: MotionSequence | None = None, *,
              face_box=None, request_id: str | None = None, label: bool = False,
              progress: Callable[[float, str], None] | None = None, **controls) -> Output:
        """Generate and stream straight into a signed MP4 (H.264 + AAC); memory stays flat with length.

        audio: a file (path or bytes; decoded a second at a time, never whole, in two passes: motion, then
        soundtrack and frames) or an `Audio`. Motion comes from the same `MotionStream` as `motion` and
        `stream`, unless `motion` is given.
        Every frame carries the invisible watermark (and, with `label`, a visible "AI-generated" corner
        label); the file is signed with a C2PA manifest whose soft binding is the watermark payload; the
        audit log records the payload and the file's hash under `request_id` (a new record when None).
        progress: called as progress(fraction 0..1, what is happening) at each stage and every few frames
        (the demo's progress bar; the time left is measured on this clip's own frames).
        """
        report = progress or (lambda fraction, what: None)
        check_audio_source(audio)                             # fail fast on a missing/undecodable audio file
        controls = MotionControls(**controls)                 # ... and on a bad control
        report(0.05, "Analysing the portrait")
        portrait, renderer = self.prepare(image, face_box)    # ... and on a bad portrait, before the audio
        if request_id is None:                                # the audit record starts before any encoding
            request_id = self.publisher.start(reason=API_REASON, **_input_digests(image, audio))
        rate = audio.sample_rate if isinstance(audio, Audio) else OUTPUT_SAMPLE_RATE
        # pass 1 over the audio: checks, hash, and the motion (computed in one tight loop: interleaving the
        # lip-sync network with rendering costs a third of the speed on two cores, threads contending)
        report(0.15, "Generating motion from the voice")
        made, info = self._first_pass(audio, rate, controls if motion is None else None)
        motion = self._fit(motion if motion is not None else made, info.duration)
        payload = self.marker.new_payload()
        marker = self.marker.embedder(payload, self.size, self.size)

        # pass 2: the soundtrack and the frames, level with each other, into the encoder
        start = time.perf_counter()

        def produce(writer: VideoWriter) -> None:
            done = 0
            for piece in itertools.chain(self._pieces(audio, rate, 1.0), [None]):
                if piece is not None:
                    writer.write_audio(piece)
                upto = len(motion) if piece is None else min(len(motion), int(writer.audio_written / rate * self.fps))
                for i in range(done, upto):
                    frame = marker.embed(renderer.render(motion.values[i]), i)
                    writer.write(self.marker.label(frame) if label else frame)
                    if progress is not None and i % PROGRESS_EVERY == 0 and i:
                        left = (time.perf_counter() - start) / i * (len(motion) - i)
                        report(0.3 + 0.68 * i / len(motion), f"Rendering, watermarking, signing: frame {i} of "
                                                            f"{len(motion)} (about {left:.0f} s left)")
                done = max(done, upto)

        out = self._publish(produce, rate, info.sha256, Path(out_path), payload, portrait.key, request_id)
        return replace(out, motion=motion)

    def write_video(self, result: Result, out_path: str | Path, request_id: str | None = None) -> Output:
        """Write a `Result` from `generate` to a signed MP4 (recorded in the audit log)."""
        return write_video(result, out_path, request_id, marker=self.marker, publisher=self.publisher)

    def _publish(self, produce, audio_rate: int, audio_sha256: str, out_path: Path, payload: int,
                 portrait_key: str, request_id: str | None) -> Output:
        return _publish(produce, audio_rate, audio_sha256, self.fps, self.size, out_path, payload, portrait_key,
                        request_id, self.marker, self.publisher)


API_REASON = "generated through the Python API / command line"


def check_audio_source(audio) -> None:
    """Refuse a missing, empty or undecodable audio file (path or bytes) from its header, in milliseconds,
    before the portrait is analysed or any model loads; an `Audio` passes. Raises AudioError."""
    if isinstance(audio, Audio):
        return
    from vasa_core.validate import ValidationError, check_audio_header
    try:
        check_audio_header(audio)
    except ValidationError as exc:
        raise AudioError(str(exc)) from None


def _input_digests(image, audio) -> dict:
    """The audit fields of a clip made through the API or CLI. `image_sha256` / `audio_sha256` are the SHA-256
    of the input files' bytes, as on the gate's path (so an investigator can match a file to a clip); for
    decoded inputs (arrays, `Audio`) they stay empty and `extra` says so."""
    from vasa_core.validate import input_sha256
    image_sha, audio_sha = input_sha256(image), input_sha256(audio)
    fields: dict = {"image_sha256": image_sha, "audio_sha256": audio_sha}
    decoded = [name for name, sha in (("image", image_sha), ("audio", audio_sha)) if sha is None]
    if decoded:
        fields["extra"] = {"decoded_inputs": decoded}
        if isinstance(audio, Audio):
            fields["extra"]["audio_samples_sha256"] = _samples_sha256(audio.samples)
    return fields


def _samples_sha256(samples: np.ndarray) -> str:
    """The audit log's audio hash: SHA-256 of the float32 samples."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(samples, np.float32))).hexdigest()


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _publish(produce, audio_rate: int, audio_sha256: str, fps: float, size: int, out_path: Path, payload: int,
             portrait_key: str, request_id: str | None, marker: Marker, publisher: Publisher) -> Output:
    """Encode (`produce(writer)` writes the watermarked frames and the soundtrack), sign the MP4 (C2PA,
    watermark as soft binding), record it in the audit log (a new record when `request_id` is None, for
    decoded inputs: `extra` names the digests it holds)."""
    from . import __version__
    unsigned = out_path.with_name(f".{out_path.stem}.unsigned{out_path.suffix}")
    try:
        with VideoWriter(unsigned, fps=fps, size=size, audio_rate=audio_rate) as writer:
            produce(writer)
        manifest = publisher.sign(unsigned, out_path, payload, "vasa_core", __version__)
    finally:
        unsigned.unlink(missing_ok=True)
    sha = _file_sha256(out_path)
    if request_id is None:
        request_id = publisher.start(reason=API_REASON, extra={
            "decoded_inputs": ["image", "audio"], "image_key": portrait_key, "audio_samples_sha256": audio_sha256})
    publisher.record(request_id, marker.hex(payload), sha)
    return Output(path=out_path, payload=marker.hex(payload), manifest=manifest, sha256=sha, request_id=request_id)


def write_video(result: Result, out_path: str | Path, request_id: str | None = None, *,
                marker: Marker, publisher: Publisher) -> Output:
    """Write a `Result` from `TalkingFacePipeline.generate` to a signed MP4 (recorded in the audit log).
    marker / publisher: as the pipeline's."""

    def produce(writer: VideoWriter) -> None:
        writer.write_audio(result.audio.samples)
        for frame in result.frames:
            writer.write(frame)
    out = _publish(produce, result.audio.sample_rate, _samples_sha256(result.audio.samples), result.fps,
                   int(result.frames.shape[1]), Path(out_path), result.payload, result.portrait_key, request_id,
                   marker, publisher)
    return replace(out, motion=result.motion)
