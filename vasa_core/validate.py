"""Upload validation: the first thing an uploaded portrait or audio clip meets.

Images: JPEG, PNG and WebP only, recognised by their content (magic bytes), never by file name; decoded
with limits (file size, pixel count, Pillow's decompression-bomb guard turned into a refusal); EXIF
orientation applied; transparency flattened onto white; then re-encoded to PNG and decoded again, so that
nothing downstream ever touches the uploaded bytes (metadata and any trailing payload are dropped).

Audio: WAV, MP3, M4A/AAC (MP4 family or raw ADTS), Ogg (Vorbis/Opus) and FLAC, recognised by content;
decoded with PyAV using the demuxer that matches the recognised content (no format guessing), mixed down
to mono float32 at 16 kHz; empty, silent, non-finite, too short and too long clips are refused (the length
limit is enforced while decoding, so a file that lies about its duration cannot make us decode hours);
clips without speech or singing (silero-vad, bundled) are refused.

Every refusal raises :class:`ValidationError` (a ``ValueError``) with one specific sentence for the user.
No other exception escapes ``validate_image`` / ``validate_audio`` for any input bytes (fuzzed: see
docs/safety-gate.md).
"""
from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from vasa_core import models

from vasa_core.errors import ValidationError

__all__ = [
    "ValidationError", "ValidatedImage", "ValidatedAudio", "validate_image", "validate_audio",
    "sniff_image_format", "sniff_audio_format", "check_image_header", "check_audio_header", "input_sha256",
    "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE", "MAX_AUDIO_BYTES", "AUDIO_SAMPLE_RATE",
]

Source = Union[str, Path, bytes, bytearray, memoryview]

MAX_IMAGE_BYTES = 30 * 1024 * 1024      # 30 MiB upload
MAX_IMAGE_PIXELS = 40_000_000           # 40 MP after decoding
MIN_IMAGE_SIDE = 64                     # smaller than this cannot hold a usable face
MAX_AUDIO_BYTES = 50 * 1024 * 1024      # 50 MiB upload
AUDIO_SAMPLE_RATE = 16_000              # what validate_audio returns (what silero-vad and the engine use)
MIN_AUDIO_SECONDS = 0.5
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 4_000, 384_000  # outside this, resampling cost and memory blow up
MIN_SPEECH_SECONDS = 0.3                # total voiced time silero-vad must find ...
MIN_SPEECH_FRACTION = 0.10              # ... and at least this share of the clip

_IMAGE_NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}


# ----------------------------------------------------------------------------------------------- helpers

def _read_source(source: Source, limit: int, kind: str) -> bytes:
    """Bytes of an upload given as a path or as bytes, refusing empty and oversized files."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            if not path.is_file():
                raise ValidationError(f"The {kind} file could not be found or is not a regular file.")
            size = path.stat().st_size
            if size > limit:
                raise ValidationError(
                    f"The {kind} file is too large ({size / 2**20:.1f} MB); the limit is {limit / 2**20:.0f} MB.")
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except ValidationError:
            raise
        except OSError:
            raise ValidationError(f"The {kind} file could not be read.") from None
    else:
        raise ValidationError(f"The {kind} upload must be a file path or the file's bytes.")
    if not data:
        raise ValidationError(f"The {kind} file is empty.")
    if len(data) > limit:
        raise ValidationError(
            f"The {kind} file is too large ({len(data) / 2**20:.1f} MB); the limit is {limit / 2**20:.0f} MB.")
    return data


def sniff_image_format(data: bytes) -> str | None:
    """'jpeg', 'png' or 'webp' when the bytes start like one of those formats, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _describe_unaccepted_image(data: bytes) -> str:
    known = [
        (b"GIF8", "a GIF image"), (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
        (b"\x00\x00\x01\x00", "an icon file"),
    ]
    for magic, what in known:
        if data.startswith(magic):
            return f"This file is {what}; only JPEG, PNG and WebP images are accepted."
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"heis"):
        return "This file is a HEIC/AVIF image; only JPEG, PNG and WebP images are accepted."
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or head.startswith(b"<?xml") or head.startswith(b"<!doctype") or head.startswith(b"<html"):
        return "This file is a text/vector document, not a photo; only JPEG, PNG and WebP images are accepted."
    return "This file is not a JPEG, PNG or WebP image (its content does not match any of those formats)."


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_sha256(source: Source, limit: int | None = None) -> str | None:
    """The one input digest of the audit log: SHA-256 of a file's bytes as received (path or bytes; a path is
    read in 1 MB blocks, at most `limit` + 1 bytes when `limit` is given, as the upload limits read it).
    None when there is no file (decoded arrays) or it cannot be read. `validate_*` record the same digest."""
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return _sha256(bytes(source))
        if isinstance(source, (str, Path)) and Path(source).is_file():
            h = hashlib.sha256()
            remaining = float("inf") if limit is None else limit + 1
            with open(source, "rb") as fh:
                while remaining > 0:
                    chunk = fh.read(int(min(1 << 20, remaining)))
                    if not chunk:
                        break
                    h.update(chunk)
                    remaining -= len(chunk)
            return h.hexdigest()
    except (OSError, TypeError, ValueError):
        return None
    return None


# --------------------------------------------------------------------------------- header pre-checks

def _head(path: Source, kind: str, n: int = 65536) -> bytes:
    """The first `n` bytes of a file on disk (or of the bytes given), refusing missing and empty files."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path[:n])
    else:
        p = Path(path)
        if not p.is_file():
            raise ValidationError(f"The {kind} file {p} could not be found or is not a regular file.")
        try:
            with open(p, "rb") as fh:
                data = fh.read(n)
        except OSError:
            raise ValidationError(f"The {kind} file {p} could not be read.") from None
    if not data:
        raise ValidationError(f"The {kind} file is empty.")
    return data


def check_image_header(source: Source) -> tuple[int, int]:
    """(width, height) of a JPEG/PNG/WebP image read from its header only (milliseconds, nothing decoded).

    For the command line and the Python API, which take files of any length: refuses a missing or empty
    file, an unaccepted format, a header Pillow cannot parse, and sizes outside MIN_IMAGE_SIDE ..
    MAX_IMAGE_PIXELS, with the same sentences as :func:`validate_image` (which still decodes it fully)."""
    head = _head(source, "image")
    fmt = sniff_image_format(head)
    if fmt is None:
        raise ValidationError(_describe_unaccepted_image(head))
    name = _IMAGE_NAMES[fmt]
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fh = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
            with fh, Image.open(fh, formats=[fmt.upper()]) as im:
                w, h = (int(v) for v in im.size)
    except Image.DecompressionBombError:
        raise ValidationError(_too_many_pixels(name)) from None
    except Exception:
        raise ValidationError(f"The {name} image could not be decoded; the file is damaged or truncated.") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise ValidationError(_too_many_pixels(name, w, h))
    if min(w, h) < MIN_IMAGE_SIDE:
        raise ValidationError(f"The image is only {w}x{h} pixels; please upload a portrait at least "
                              f"{MIN_IMAGE_SIDE} pixels on each side.")
    return w, h


def check_audio_header(source: Source) -> float | None:
    """The duration in seconds (None when the container does not say) of a WAV/MP3/M4A/AAC/Ogg/FLAC file,
    checked by opening it with the matching demuxer and decoding its first audio frame (milliseconds).

    For the command line and the Python API (files of any length; no size or duration limit here): refuses
    a missing or empty file, an unaccepted format, a file with no decodable audio track."""
    head = _head(source, "audio")
    fmt = sniff_audio_format(head)
    if fmt is None:
        raise ValidationError(_describe_unaccepted_audio(head))
    demuxer, name = _AUDIO_DEMUXERS[fmt]
    import av
    fh = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    try:
        with av.open(fh, mode="r", format=demuxer) as container:
            if not container.streams.audio:
                raise ValidationError(f"The {name} file has no audio track.")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                if frame.samples > 0:
                    break
            else:
                raise ValidationError(f"The {name} audio contains no sound (zero length).")
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / 1e6 if container.duration else None
    except ValidationError:
        raise
    except Exception:
        raise ValidationError(f"The {name} audio could not be decoded; the file is damaged or truncated.") from None


# ------------------------------------------------------------------------------------------------ images

@dataclass(frozen=True)
class ValidatedImage:
    """An accepted portrait.

    rgb: (H, W, 3) uint8, read-only, EXIF orientation applied, decoded from ``png`` (the re-encoded copy).
    sha256: hex SHA-256 of the ORIGINAL uploaded bytes (what the audit log records).
    format: 'jpeg', 'png' or 'webp' (the uploaded format, recognised by content).
    png: the re-encoded, metadata-free PNG bytes that ``rgb`` was decoded from.
    original_size: (width, height) as stored in the upload, before EXIF rotation.
    exif_rotated: True when an EXIF orientation tag changed the pixel layout.
    """

    rgb: np.ndarray = field(repr=False)
    sha256: str
    format: str
    png: bytes = field(repr=False, default=b"")
    original_size: tuple[int, int] = (0, 0)
    exif_rotated: bool = False

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def _to_rgb(im):
    """Pillow image of any mode -> RGB image, flattening transparency onto white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        lo = float(arr.min()) if arr.size else 0.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = Image.fromarray(((arr - lo) * scale).clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


def validate_image(source: Source, max_side: int | None = None) -> ValidatedImage:
    """Check an uploaded portrait and return it decoded, oriented and re-encoded.

    ``source`` is a path or the uploaded bytes. Accepts JPEG, PNG and WebP by content; refuses anything
    else, damaged or truncated files, animated images, images over ``MAX_IMAGE_PIXELS`` (decompression
    bombs) or ``MAX_IMAGE_BYTES``, and images smaller than ``MIN_IMAGE_SIDE`` on a side.
    max_side: for previews (the demo's face finder): the pixels come back shrunk to at most this many on the
    longer side, a JPEG decoded at 1/2 to 1/8 scale by the decoder itself and any image shrunk before the
    re-encode, so a 36-megapixel photo costs a fraction of its full decode (the checks above use the full size).
    Raises :class:`ValidationError` with a human sentence on every refusal; never anything else.
    """
    data = _read_source(source, MAX_IMAGE_BYTES, "image")
    fmt = sniff_image_format(data)
    if fmt is None:
        raise ValidationError(_describe_unaccepted_image(data))
    name = _IMAGE_NAMES[fmt]
    try:
        return _decode_image(data, fmt, name, max_side)
    except ValidationError:
        raise
    except MemoryError:
        raise ValidationError(f"The {name} image is too large to decode.") from None
    except Exception:  # any decoder failure on hostile bytes is a refusal, never a crash
        raise ValidationError(
            f"The {name} image could not be decoded; the file is damaged or truncated.") from None


def _decode_image(data: bytes, fmt: str, name: str, max_side: int | None = None) -> ValidatedImage:
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt.upper()])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValidationError(_too_many_pixels(name)) from None
        except Exception:
            raise ValidationError(
                f"The {name} image could not be decoded; the file is damaged or truncated.") from None
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ValidationError(f"The {name} image has no pixels.")
        if width * height > MAX_IMAGE_PIXELS:
            raise ValidationError(_too_many_pixels(name, width, height))
        if min(width, height) < MIN_IMAGE_SIDE:
            raise ValidationError(
                f"The image is too small ({width}x{height} pixels); a portrait needs at least "
                f"{MIN_IMAGE_SIDE} pixels on each side.")
        if getattr(im, "n_frames", 1) > 1:
            raise ValidationError("Animated images are not accepted; please upload a still JPEG, PNG or WebP photo.")
        if max_side and fmt == "jpeg" and max(width, height) > max_side:
            k = max_side / max(width, height)
            im.draft("RGB", (max(1, int(width * k)), max(1, int(height * k))))   # decoder-side 1/2..1/8 scale
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValidationError(_too_many_pixels(name, width, height)) from None
        except Exception:
            raise ValidationError(
                f"The {name} image could not be decoded; the file is damaged or truncated.") from None

        rotated = False
        try:
            orientation = _orientation(im)
            oriented = ImageOps.exif_transpose(im)
            rotated = orientation not in (None, 1) and oriented is not im
            im = oriented
        except Exception:
            pass  # unreadable EXIF: keep the stored pixel layout rather than refuse the photo

        rgb_im = _to_rgb(im)
        if max_side and max(rgb_im.size) > max_side:
            rgb_im.thumbnail((max_side, max_side), Image.Resampling.BOX)
        buf = io.BytesIO()
        rgb_im.save(buf, format="PNG", optimize=False, compress_level=3)
        png = buf.getvalue()
        again = Image.open(io.BytesIO(png), formats=["PNG"])
        rgb = np.array(again.convert("RGB"), dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValidationError(f"The {name} image could not be decoded into colour pixels.")
    rgb.setflags(write=False)
    return ValidatedImage(rgb=rgb, sha256=_sha256(data), format=fmt, png=png,
                          original_size=(int(width), int(height)), exif_rotated=bool(rotated))


def _orientation(im) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:
        return None


def _too_many_pixels(name: str, width: int | None = None, height: int | None = None) -> str:
    size = f" ({width}x{height} = {width * height / 1e6:.0f} megapixels)" if width and height else ""
    return (f"The {name} image is too large{size}; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. "
            "Please upload a smaller photo.")


# ------------------------------------------------------------------------------------------------- audio

@dataclass(frozen=True)
class ValidatedAudio:
    """An accepted audio clip.

    samples: mono float32 in [-1, 1], read-only, at ``sample_rate`` (16 kHz).
    sample_rate: samples per second of ``samples``.
    duration_s: len(samples) / sample_rate.
    sha256: hex SHA-256 of the ORIGINAL uploaded bytes.
    format: 'wav', 'mp3', 'm4a', 'aac', 'ogg' or 'flac' (recognised by content).
    speech_s: seconds of speech or singing silero-vad found (0.0 when require_speech=False).
    """

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    duration_s: float
    sha256: str
    format: str = ""
    speech_s: float = 0.0


# our name -> (PyAV demuxer, name for people)
_AUDIO_DEMUXERS = {
    "wav": ("wav", "WAV"), "flac": ("flac", "FLAC"), "ogg": ("ogg", "Ogg"),
    "mp3": ("mp3", "MP3"), "m4a": ("mov", "M4A"), "aac": ("aac", "AAC"),
}


def sniff_audio_format(data: bytes) -> str | None:
    """'wav', 'flac', 'ogg', 'mp3', 'm4a' or 'aac' when the bytes start like that format, else None."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RIFX") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"avif", b"heis", b"crx "):
            return None
        return "m4a"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) >= 2 and data[0] == 0xFF:
        b1 = data[1]
        if b1 & 0xF6 == 0xF0:          # ADTS: sync 12 bits, layer == 00
            return "aac"
        if b1 & 0xE0 == 0xE0 and (b1 >> 1) & 0x3 != 0 and (b1 >> 3) & 0x3 != 1:  # MPEG audio frame sync
            return "mp3"
    return None


def _describe_unaccepted_audio(data: bytes) -> str:
    if sniff_image_format(data) or data[:4] == b"GIF8":
        return "This file is an image, not audio; please upload a WAV, MP3, M4A/AAC, Ogg or FLAC recording."
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM/Matroska files are not accepted; please upload a WAV, MP3, M4A/AAC, Ogg or FLAC recording."
    return ("This file is not a WAV, MP3, M4A/AAC, Ogg or FLAC recording "
            "(its content does not match any of those formats).")


def validate_audio(source: Source, max_seconds: float = 60.0, require_speech: bool = True,
                   sample_rate: int = AUDIO_SAMPLE_RATE) -> ValidatedAudio:
    """Check an uploaded audio clip and return it decoded to mono float32 at ``sample_rate`` (default 16 kHz;
    a caller that writes the audio out, such as the demo, asks for its output rate so that the clip is
    decoded once). The speech check always runs on 16 kHz samples made from the same decode, whatever
    ``sample_rate`` is.

    Refuses (``ValidationError`` with a human sentence): unknown or unaccepted formats (checked by
    content), damaged files, files without an audio track, empty/zero-length, shorter than 0.5 s, longer
    than ``max_seconds`` (checked from the header and again while decoding), silent or non-finite audio,
    and — when ``require_speech`` — clips in which silero-vad finds no speech or singing.
    """
    if not (isinstance(max_seconds, (int, float)) and np.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError("max_seconds must be a positive number")
    if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 192000):
        raise ValueError("sample_rate must be an integer between 8000 and 192000 Hz")
    data = _read_source(source, MAX_AUDIO_BYTES, "audio")
    fmt = sniff_audio_format(data)
    if fmt is None:
        raise ValidationError(_describe_unaccepted_audio(data))
    name = _AUDIO_DEMUXERS[fmt][1]
    try:
        decoded = _decode_audio(data, fmt, name, float(max_seconds), sorted({sample_rate, AUDIO_SAMPLE_RATE}))
    except ValidationError:
        raise
    except MemoryError:
        raise ValidationError(f"The {name} audio is too large to decode.") from None
    except Exception:
        raise ValidationError(f"The {name} audio could not be decoded; the file is damaged or truncated.") from None

    samples = decoded[sample_rate]
    duration = samples.size / sample_rate
    if samples.size == 0:
        raise ValidationError(f"The {name} audio contains no sound (zero length).")
    if not np.isfinite(samples).all():
        raise ValidationError(f"The {name} audio contains invalid sample values; the file is damaged.")
    if duration < MIN_AUDIO_SECONDS:
        raise ValidationError(
            f"The audio is too short ({duration:.2f} s); please upload at least {MIN_AUDIO_SECONDS:g} s of speech.")
    if duration > max_seconds:
        raise ValidationError(_too_long(duration, max_seconds))
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
    if float(np.max(np.abs(samples))) < 1e-4:
        raise ValidationError("The audio is silent; please upload a recording of speech or singing.")
    speech_s = 0.0
    if require_speech:
        vad_in = samples if sample_rate == AUDIO_SAMPLE_RATE else np.clip(decoded[AUDIO_SAMPLE_RATE], -1.0, 1.0)
        speech_s = speech_seconds(vad_in, AUDIO_SAMPLE_RATE)
        if speech_s < MIN_SPEECH_SECONDS or speech_s < MIN_SPEECH_FRACTION * duration:
            raise ValidationError(
                "No speech or singing was found in this audio (it sounds like silence, noise or instrumental "
                "music); please upload a recording of a voice.")
    samples.setflags(write=False)
    return ValidatedAudio(samples=samples, sample_rate=sample_rate, duration_s=float(duration),
                          sha256=_sha256(data), format=fmt, speech_s=float(speech_s))


def _too_long(duration: float, max_seconds: float) -> str:
    return (f"The audio is too long ({duration:.1f} s); the limit here is {max_seconds:g} s. "
            "Please trim it and upload it again.")


def _decode_audio(data: bytes, fmt: str, name: str, max_seconds: float,
                  rates: list[int] | None = None) -> dict[int, np.ndarray]:
    """Decode once, at the file's own rate; mono float32 samples at each of `rates` (default: 16 kHz).

    The one resampler of the project (`vasa_core.audio.resample_samples`, soxr) makes every rate, the lower
    ones from the highest: a clip the demo validates at 48 kHz gives the speech check the same 16-kHz samples
    the engine makes from those 48-kHz samples to drive the motion (what was checked is what moves the face)."""
    import av

    rates = list(rates or [AUDIO_SAMPLE_RATE])

    demuxer = _AUDIO_DEMUXERS[fmt][0]
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer,
                            options={"probesize": "5000000", "analyzeduration": "5000000"})
    except Exception:
        raise ValidationError(f"The {name} audio could not be opened; the file is damaged or truncated.") from None
    with container:
        if not container.streams.audio:
            raise ValidationError(f"The {name} file contains no audio track.")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate or 0
        if rate and not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
            raise ValidationError(f"The {name} audio has an unsupported sample rate ({rate} Hz).")
        if container.duration is not None and container.duration > 0:
            declared = container.duration / 1_000_000
            if declared > max_seconds + 1.0 and declared < 1e7:
                raise ValidationError(_too_long(declared, max_seconds))
        # convert to planar float at the file's first rate, keeping the channel layout, then average the channels
        # ourselves: ffmpeg's own downmix of identical channels raises the level by 3 dB (and can clip)
        resampler = None
        native = 0
        limit = max_seconds + 0.5
        chunks: list[np.ndarray] = []
        total = 0
        decoded_any = False
        errors = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                errors += 1
                if errors > 50:
                    break
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                errors += 1
                if errors > 50 and not decoded_any:
                    break
                continue
            for frame in frames:
                decoded_any = True
                if frame.samples <= 0:
                    continue
                if not MIN_SOURCE_RATE <= frame.sample_rate <= MAX_SOURCE_RATE:
                    raise ValidationError(
                        f"The {name} audio has an unsupported sample rate ({frame.sample_rate} Hz).")
                if resampler is None:
                    native = int(frame.sample_rate)
                    resampler = av.AudioResampler(format="fltp", rate=native)
                for out in resampler.resample(frame):
                    arr = _mono(out.to_ndarray())
                    chunks.append(arr)
                    total += arr.size
                if total / native > limit:
                    raise ValidationError(_too_long(total / native, max_seconds))
        if resampler is not None:
            for out in resampler.resample(None):
                chunks.append(_mono(out.to_ndarray()))
        if not decoded_any:
            if errors:
                raise ValidationError(
                    f"The {name} audio could not be decoded; the file is damaged or truncated.")
            raise ValidationError(f"The {name} audio contains no sound (zero length).")
    from vasa_core.audio import resample_samples
    x, x_rate = (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), native
    out: dict[int, np.ndarray] = {}
    for r in sorted(rates, reverse=True):
        if x.size:
            x, x_rate = resample_samples(x, x_rate, r), r
        out[r] = x if x.size else np.zeros(0, np.float32)
    return out


def _mono(planar: np.ndarray) -> np.ndarray:
    """(channels, n) planar float -> (n,) float32 mean of the channels."""
    arr = np.asarray(planar, dtype=np.float32)
    if arr.ndim == 1:
        return arr
    if arr.shape[0] == 1:
        return arr[0]
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite input is refused right after decoding
        return arr.mean(axis=0, dtype=np.float32)


_VAD_LOCK = threading.RLock()   # silero-vad keeps its recurrent state inside the model: one caller at a time


def _vad_model():
    """silero-vad (bundled in its package), from the one model registry (`vasa_core.models`)."""
    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from silero_vad import load_silero_vad
            return load_silero_vad()
    return models.get("silero_vad", build)


def speech_seconds(samples: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> float:
    """Seconds of speech or singing that silero-vad (bundled model) finds in mono ``samples``."""
    import torch
    from silero_vad import get_speech_timestamps

    if sample_rate != AUDIO_SAMPLE_RATE:
        raise ValueError("speech_seconds expects 16 kHz audio")
    with _VAD_LOCK, torch.no_grad():
        spans = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                                      _vad_model(), sampling_rate=sample_rate)
    return float(sum(s["end"] - s["start"] for s in spans)) / sample_rate
