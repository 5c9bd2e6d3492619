"""Training/evaluation data the project makes itself: synthesised speech with exact phoneme timing.

Sources
- espeak-ng through libespeak-ng (phoneme events with sample positions; ~100 languages, voice variants).
- MBROLA diphone voices driven by espeak-ng's .pho output (phone, duration, pitch points), so the timing is the
  .pho durations; speaking rate and pitch are changed by editing the .pho file; singing-like material replaces
  vowel durations by note lengths and pitch by a melody with vibrato.
- Text: phonetically varied pseudo-words built from per-language grapheme inventories + numbers (read as words).

Augmentation: speed (resampling, timing rescaled), loudness, background speech (other utterances, 6-25 dB
under), synthetic music beds, coloured noise, synthetic reverb, telephone / mic band limits, mp3 / AAC round
trips (re-aligned by cross-correlation), final sample rates 8-48 kHz.

Command:  python -m tools.lipsync.data --out build/lipsync --minutes 80 [--no-mbrola]
Writes build/lipsync/{train,val}/shard_*.npz (features + targets) and build/lipsync/eval/* (wav + segments).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import io
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal as sps
import soundfile as sf

from vasa_core.audio import resample_samples
from vasa_core.lipsync import phonemes as P

# ------------------------------------------------------------------------------------------------ text
_LAT = {  # onsets, vowels, codas (graphemes, spelled so that espeak's rules give varied phonemes)
    "en": ("b p m f v th d t n s z sh ch j l r w y k g h bl pr st tr fl sm sp wh qu", "a e i o u ee oo ou ow oi ai ay ea ar or er ir ur aw", "n m t p d s st nd mp ng k th ve b l r sh ch"),
    "de": ("b p m pf f w d t n s z sch tsch j l r k g h st sp kn br fl", "a e i o u ä ö ü au ei eu ie aa oo ee", "n m t p ch s st nd ng k l r b tz"),
    "fr": ("b p m f v d t n s z ch j l r qu g gn pl br tr fl", "a e i o u é è ou oi au eau eu ai on an in un ui", "n m t s r l c"),
    "es": ("b p m f v d t n s z ch ll l r rr c g j h ñ pl br tr", "a e i o u ue ie ai au io", "n s r l d"),
    "it": ("b p m f v d t n s z c ci g gi gn gl l r qu sc pp tt mm", "a e i o u uo ie ia", "n r l"),
    "pt": ("b p m f v d t n s z ch lh nh l r j g c qu", "a e i o u ão õe ã ei ou ai", "s r l m"),
    "nl": ("b p m f v w d t n s z sch j l r k g h", "a e i o u aa ee oo uu ij ui eu ou oe ie", "n m t p ch s k l r"),
    "pl": ("b p m f w d t n s z sz cz rz ż dz ś ć l ł r k g h ch j", "a e i o u y ą ę ó", "n m t s k ł ć"),
    "sv": ("b p m f v d t n s sj tj k g h j l r st sk", "a e i o u y å ä ö", "n m t s k l r ng"),
    "fi": ("p m v d t n s j l r k h", "a e i o u y ä ö aa ee ii uu ai oi", "n s t l"),
    "tr": ("b p m f v d t n s z ş ç c j l r k g h y", "a e ı i o ö u ü", "n m t s k l r"),
    "id": ("b p m f d t n s c j l r k g h w y ng ny", "a e i o u ai au", "n m t s k ng"),
    "sw": ("b p m f v d t n s z ch j l r k g h w y mb nd ng", "a e i o u", ""),
    "cs": ("b p m f v d t n s z š č ž ř l r k g h ch j", "a e i o u y á é í ó ú ů", "n m t s k l"),
    "hu": ("b p m f v d t n s sz zs cs gy ty ny l r k g h j", "a e i o u á é ó ö ő ü ű", "n m t s k l r"),
    "ro": ("b p m f v d t n s z ș ț c g j l r h", "a e i o u ă â î ea oa", "n m t s r l"),
}
_CYR = ("б п м ф в д т н с з ш ж ч щ л р к г х й", "а е и о у ы э ю я ё", "н м т с к л р й")
_GRK = ("β π μ φ δ τ ν σ ζ θ λ ρ κ γ χ", "α ε ι ο υ ω η ου αι ει", "ς ν")
_HIRA = "あいうえおかきくけこがぎぐげごさしすせそざじずぜぞたちつてとだでどなにぬねのはひふへほばびぶべぼぱぴぷぺぽまみむめもやゆよらりるれろわをんきゃきゅきょしゃしゅしょちゃちゅちょ"


def _hangul(rng):
    lead, vow, tail = rng.integers(0, 19), rng.integers(0, 21), (rng.integers(0, 28) if rng.random() < .4 else 0)
    return chr(0xAC00 + (lead * 21 + vow) * 28 + tail)


def _pick(rng, s):
    items = s.split()
    return items[rng.integers(len(items))] if items else ""


def _word(rng, lang):
    n = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4]))
    if lang in _LAT or lang in ("ru", "el"):
        on, vo, co = _LAT[lang] if lang in _LAT else (_CYR if lang == "ru" else _GRK)
        w = ""
        for i in range(n):
            if rng.random() < .85:
                w += _pick(rng, on)
            w += _pick(rng, vo)
            if rng.random() < (.35 if i == n - 1 else .15):
                w += _pick(rng, co)
        return w
    if lang == "ja":
        return "".join(_HIRA[rng.integers(len(_HIRA))] for _ in range(n + 1))
    if lang == "ko":
        return "".join(_hangul(rng) for _ in range(n))
    if lang == "cmn":   # pinyin syllables with tone digits (espeak cmn reads them)
        on = "b p m f d t n l g k h j q x zh ch sh r z c s y w".split()
        vo = "a o e i u ai ei ao ou an en ang eng ong ia ie iao iu ian in iang ing ua uo uai ui uan un uang".split()
        return "".join(on[rng.integers(len(on))] + vo[rng.integers(len(vo))] + str(rng.integers(1, 5)) for _ in range(n))
    raise ValueError(lang)


def make_text(rng, lang, n_words=None):
    n_words = n_words or int(rng.integers(3, 14))
    words = []
    for i in range(n_words):
        r = rng.random()
        if r < .08:
            words.append(str(int(rng.integers(0, 2000))))
        else:
            words.append(_word(rng, lang))
        if i < n_words - 1 and rng.random() < .12:
            words[-1] += rng.choice([",", ".", "?", "!", ";"])
    text = " ".join(words) + rng.choice([".", "?", "!", "..."])
    return text


# ------------------------------------------------------------------------------------------------ espeak-ng
class _Ev(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Ev))


class Espeak:
    """libespeak-ng in synchronous mode with IPA phoneme events."""
    _inst = None

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.sr = self.lib.espeak_Initialize(2, 0, None, 1 | 2)   # SYNCHRONOUS, PHONEME_EVENTS | PHONEME_IPA
        if self.sr <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks, self._events = [], []
        self._cb = _CB(self._callback)
        self.lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls):
        if cls._inst is None:
            cls._inst = cls()
        return cls._inst

    def _callback(self, wav, n, ev):
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != 0:
            if ev[i].type == 7:
                self._events.append((ev[i].sample, ev[i].id.decode("utf8", "replace")))
            i += 1
        return 0

    def synth(self, text, voice="en", rate=175, pitch=50, prange=50):
        """-> (float32 audio, sr, [(ipa_name, start_s, end_s)])"""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng voice {voice!r}")
        for p, v in ((1, rate), (3, pitch), (4, prange)):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self._chunks, self._events = [], []
        b = text.encode("utf8")
        self.lib.espeak_Synth(b, len(b) + 1, 0, 1, 0, 1, None, None)
        self.lib.espeak_Synchronize()
        audio = (np.concatenate(self._chunks).astype(np.float32) / 32768.0) if self._chunks else np.zeros(0, np.float32)
        n = len(audio)
        ev = sorted(self._events)
        segs = []
        for i, (s, name) in enumerate(ev):
            e = ev[i + 1][0] if i + 1 < len(ev) else n
            if e > s:
                segs.append((name, s / self.sr, e / self.sr))
        # leading silence before the first phoneme
        if segs and segs[0][1] > 0:
            segs.insert(0, ("", 0.0, segs[0][1]))
        return audio, self.sr, segs


# ------------------------------------------------------------------------------------------------ MBROLA
MBROLA_DIR = Path("/usr/share/mbrola")


def mbrola_voices():
    return sorted(p.name for p in MBROLA_DIR.iterdir() if (p / p.name).exists()) if MBROLA_DIR.exists() else []


def parse_pho(text):
    rows = []
    for line in text.splitlines():
        f = line.split()
        if not f or line.startswith(";"):
            continue
        pts = [float(x) for x in f[2:]]
        rows.append([f[0], float(f[1]), list(zip(pts[::2], pts[1::2]))])
    return rows


def write_pho(rows):
    return "\n".join(f"{n}\t{int(round(d))}\t" + " ".join(f"{int(p)} {int(h)}" for p, h in pts) for n, d, pts in rows) + "\n"


def mbrola_synth(rows, voice, freq_ratio=1.0):
    with tempfile.TemporaryDirectory() as td:
        pf, wf = Path(td, "x.pho"), Path(td, "x.wav")
        pf.write_text(write_pho(rows))
        subprocess.run(["mbrola", "-e", "-f", f"{freq_ratio:.3f}", str(MBROLA_DIR / voice / voice), str(pf), str(wf)],
                       check=True, capture_output=True)
        audio, sr = sf.read(wf, dtype="float32")
    t, segs = 0.0, []
    for n, d, _ in rows:
        d = int(round(d)) / 1000.0
        segs.append((n, t, t + d))
        t += d
    # durations sum to the audio length within a few ms; rescale to be exact
    if t > 0 and len(audio):
        k = (len(audio) / sr) / t
        if abs(k - 1) < 0.05:
            segs = [(n, a * k, b * k) for n, a, b in segs]
    return audio, sr, segs


def espeak_pho(text, voice):
    r = subprocess.run(["espeak-ng", "-v", f"mb-{voice}", "-q", "--pho", text], capture_output=True, text=True)
    return parse_pho(r.stdout)


_SUNG_VOWELS = set("aeiouyAEIOUVQ@{23965&")


def singify(rows, rng, bpm=None):
    """Turn a spoken .pho into a sung one: vowels become notes (melody + vibrato), consonants stay short."""
    bpm = bpm or rng.uniform(60, 140)
    beat = 60000.0 / bpm
    base = rng.uniform(90, 260)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    degree = int(rng.integers(0, 5))
    out = []
    for n, d, pts in rows:
        if n[0] in _SUNG_VOWELS and n != "_":
            dur = beat * rng.choice([0.5, 1, 1, 1.5, 2, 3])
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 7))
            f0 = base * 2 ** (scale[degree] / 12)
            vib = rng.uniform(0, 0.03)
            pts = [(p, f0 * (1 + vib * np.sin(2 * np.pi * 5.5 * p / 100 * dur / 1000))) for p in range(0, 101, 10)]
            out.append([n, dur, pts])
        elif n == "_":
            out.append([n, min(d, beat), pts])
        else:
            out.append([n, d * rng.uniform(0.8, 1.2), pts])
    return out


# ------------------------------------------------------------------------------------------------ augmentation
def resample(x, sr_in, sr_out):
    """The engine's one resampler (soxr), so training audio is resampled exactly as at inference."""
    return resample_samples(np.asarray(x, np.float32), int(sr_in), int(sr_out))


def _colored_noise(rng, n):
    w = rng.standard_normal(n)
    kind = rng.integers(0, 3)
    if kind == 1:   # pink-ish
        w = sps.lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786], [1, -2.494956002, 2.017265875, -0.522189400], w)
    elif kind == 2:  # brown-ish / hum
        w = np.cumsum(w); w -= sps.savgol_filter(w, 1001 if n > 1001 else (n // 2) * 2 - 1, 2) if n > 5 else 0
    return (w / (np.std(w) + 1e-9)).astype(np.float32)


def _music_bed(rng, n, sr):
    """A synthetic music bed, (n,) float32 at unit RMS: chords of harmonic tones changing every few beats,
    each note decaying after its beat, and a noise-burst percussion track (TV and podcast speech often
    has one under it)."""
    t = np.arange(n) / sr
    beat = rng.uniform(0.3, 0.8)                                   # s
    y = np.zeros(n)
    start = 0.0
    while start < n / sr:
        span = beat * int(rng.integers(2, 5))
        notes = 440.0 * 2 ** ((rng.integers(45, 73, 3) - 69) / 12)
        m = (t >= start) & (t < start + span)
        tb = (t[m] - start) % beat
        env = np.exp(-tb / rng.uniform(0.15, 0.6))
        for f in notes:
            for h in (1, 2, 3):
                y[m] += env * np.sin(2 * np.pi * f * h * t[m] + rng.uniform(0, 6.3)) / h
        start += span
    hits = np.zeros(n)
    hits[(np.arange(0, n / sr, beat / 2) * sr).astype(int)] = rng.uniform(0.5, 1.5, len(np.arange(0, n / sr, beat / 2)))
    drum = sps.lfilter([1.0], [1.0, -np.exp(-1 / (0.03 * sr))], hits) * rng.standard_normal(n)
    y = y / (np.std(y) + 1e-9) + rng.uniform(0.2, 1.0) * drum / (np.std(drum) + 1e-9)
    return (y / (np.std(y) + 1e-9)).astype(np.float32)


def _background_speech(rng, others, n, sr):
    """1-2 other (clean, synthetic) utterances looped under the target, (n,) float32 at unit RMS over its
    active part: the interviewer, an audience, a second speaker. Their mouths are not the target's: the
    labels stay the target's alone."""
    y = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        a, a_sr = others[int(rng.integers(len(others)))]
        a = resample(a, a_sr, sr)
        if len(a) < sr // 4:
            continue
        a = np.tile(a, int(np.ceil((n + len(a)) / len(a))))
        off = int(rng.integers(0, len(a) - n))
        y += a[off:off + n] / (np.std(a) + 1e-9)
    return (y / (np.std(y) + 1e-9)).astype(np.float32)


def _codec_roundtrip(x, sr, fmt):
    import av
    x16 = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    buf = io.BytesIO()
    codec, container = ("libmp3lame", "mp3") if fmt == "mp3" else ("aac", "adts")
    out_sr = sr if fmt == "mp3" and sr in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000) else (
        sr if sr in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000) else 16000)
    if out_sr != sr:
        x16 = (np.clip(resample(x, sr, out_sr), -1, 1) * 32767).astype(np.int16)
    with av.open(buf, "w", format=container) as oc:
        st = oc.add_stream(codec, rate=out_sr, layout="mono")
        st.bit_rate = int(np.random.choice([24000, 32000, 48000, 64000]))
        fr = av.AudioFrame.from_ndarray(x16[None], format="s16", layout="mono")
        fr.sample_rate = out_sr
        for p in st.encode(fr):
            oc.mux(p)
        for p in st.encode(None):
            oc.mux(p)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r", format=container) as ic:
        for f in ic.decode(audio=0):
            a = f.to_ndarray()
            a = a.astype(np.float32) / (32768.0 if a.dtype == np.int16 else 1.0)
            chunks.append(a.reshape(a.shape[0], -1).mean(0) if a.ndim > 1 else a)
    y = np.concatenate(chunks) if chunks else np.zeros(1, np.float32)
    y = resample(y, out_sr, sr)
    # re-align (encoder delay / priming samples) by cross-correlation of envelopes
    n = min(len(x), len(y))
    if n < 64:
        return x
    lagmax = int(0.1 * sr)
    c = sps.correlate(y[:n + lagmax] if len(y) >= n + lagmax else y, x[:n], mode="full", method="fft")
    mid = len(x[:n]) - 1
    lo, hi = mid, min(len(c), mid + lagmax)
    lag = int(np.argmax(c[lo:hi])) if hi > lo else 0
    y = y[lag:lag + len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return y.astype(np.float32)


RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000]


def augment(x, sr, segs, rng, strength=1.0, long_pauses=0.0, others=()):
    """-> (audio, sr, segs, description). Timing of segs is kept exact (speed rescales it).
    long_pauses: probability of padding 0.8-3 s of silence (instead of 0-0.5 s) before/after the speech.
    others: clean (audio, sr) of other utterances, for background speech under the target."""
    desc = []
    if rng.random() < 0.5 * strength:                     # speed (tape-style: tempo and pitch together)
        k = float(rng.uniform(0.85, 1.18))
        x = resample(x, sr, int(round(sr / k)))            # k>1 = faster
        segs = [(n, a / k, b / k) for n, a, b in segs]
        desc.append(f"speed{k:.2f}")
    # leading / trailing silence
    pre, post = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 0.5))
    if long_pauses and rng.random() < long_pauses:
        pre, post = float(rng.uniform(0.8, 3.0)), float(rng.uniform(0.8, 3.0))
    x = np.concatenate([np.zeros(int(pre * sr), np.float32), x, np.zeros(int(post * sr), np.float32)])
    segs = [("_", 0.0, pre)] + [(n, a + pre, b + pre) for n, a, b in segs] + [("_", segs[-1][2] + pre, len(x) / sr)] if segs else segs
    if rng.random() < 0.3 * strength:                     # reverb
        rt60 = rng.uniform(0.1, 0.7)
        n = int(rt60 * sr)
        ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
        ir[0] = 1.0 / rng.uniform(0.05, 0.3)
        ir /= np.abs(ir).sum() ** 0.5 * 3
        ir[0] = max(ir[0], 1.0)
        y = sps.fftconvolve(x, ir)[:len(x)]
        x = (y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))).astype(np.float32)
        desc.append(f"rev{rt60:.2f}")
    if rng.random() < 0.2 * strength:                     # telephone / cheap mic band limit
        lo, hi = rng.uniform(150, 400), rng.uniform(2800, 4000)
        sos = sps.butter(4, [lo, min(hi, sr / 2 * 0.95)], btype="band", fs=sr, output="sos")
        x = sps.sosfilt(sos, x).astype(np.float32)
        desc.append("band")
    elif rng.random() < 0.2 * strength:                   # mic tilt
        sos = sps.butter(2, rng.uniform(80, 300), btype="high", fs=sr, output="sos")
        x = sps.sosfilt(sos, x).astype(np.float32)
    peak = np.max(np.abs(x)) + 1e-9
    x = x / peak * (10 ** (rng.uniform(-30, -1) / 20) if strength > 0 else 0.5)   # loudness
    speech_power = np.mean(x ** 2) + 1e-12
    if len(others) and rng.random() < 0.25 * strength:     # background speech, 6-25 dB under the target
        snr = rng.uniform(6, 25)
        x = x + _background_speech(rng, others, len(x), sr) * np.sqrt(speech_power / 10 ** (snr / 10))
        desc.append(f"talker{snr:.0f}")
    if rng.random() < 0.15 * strength:                     # a music bed, 5-20 dB under the target
        snr = rng.uniform(5, 20)
        x = x + _music_bed(rng, len(x), sr) * np.sqrt(speech_power / 10 ** (snr / 10))
        desc.append(f"music{snr:.0f}")
    if rng.random() < 0.5 * strength:                     # noise
        snr = rng.uniform(5, 40)
        p = np.mean(x ** 2) + 1e-12
        x = x + _colored_noise(rng, len(x)) * np.sqrt(p / 10 ** (snr / 10))
        desc.append(f"snr{snr:.0f}")
    elif strength > 0:
        x = x + rng.standard_normal(len(x)).astype(np.float32) * 10 ** (rng.uniform(-90, -60) / 20)
    out_sr = int(rng.choice(RATES)) if strength > 0 else sr
    x = resample(x, sr, out_sr)
    sr = out_sr
    if rng.random() < 0.2 * strength:                     # codec round trip
        fmt = "mp3" if rng.random() < 0.5 else "aac"
        try:
            x = _codec_roundtrip(x, sr, fmt)
            desc.append(fmt)
        except Exception as e:                            # codec unavailable: keep the clean audio
            desc.append(f"{fmt}-failed:{type(e).__name__}")
    x = np.clip(x, -1, 1).astype(np.float32)
    return x, sr, segs, "+".join(desc) or "clean"


# ------------------------------------------------------------------------------------------------ voices & splits
ESPEAK_TRAIN_LANGS = ["en", "en-us", "de", "fr", "es", "it", "pt", "nl", "fi", "tr", "id", "sw", "cs", "ro", "ru",
                      "el", "ja", "ko", "cmn", "hu"]
HELDOUT_LANGS = ["pl", "sv"]          # never in training, in any voice
MBROLA_TRAIN = {"us1": "en", "us2": "en", "en1": "en", "de1": "de", "de3": "de", "de4": "de", "de5": "de",
                "de6": "de", "de7": "de", "fr1": "fr", "fr2": "fr", "fr3": "fr", "fr5": "fr", "fr6": "fr",
                "es1": "es", "es3": "es", "es4": "es", "mx1": "es", "it3": "it", "it4": "it", "nl1": "nl",
                "nl2": "nl", "nl3": "nl", "pt1": "pt", "br1": "pt", "br3": "pt", "cz2": "cs", "tr1": "tr",
                "ro1": "ro", "hu1": "hu", "gr2": "el", "id1": "id", "cr1": "cs"}
MBROLA_HELDOUT_VOICES = {"us3": "en", "de2": "de", "fr4": "fr", "es2": "es"}
MBROLA_HELDOUT_LANG = {"pl1": "pl", "sw1": "sv", "sw2": "sv"}
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+klatt", "+klatt2", "+croak", "+whisper", "+Andy", "+Annie", "+Denis", "+Jacky", "+quincy"]
ESPEAK_HELDOUT_VARIANTS = ["+f5", "+Annie", "+Denis"]
_TEXT_LANG = {"en-us": "en"}


def _espeak_item(rng, lang, variants):
    es = Espeak.get()
    v = variants[rng.integers(len(variants))]
    text = make_text(rng, _TEXT_LANG.get(lang, lang))
    try:
        audio, sr, segs = es.synth(text, lang + v, rate=rng.uniform(110, 260), pitch=rng.uniform(20, 80),
                                   prange=rng.uniform(10, 90))
    except ValueError:
        audio, sr, segs = es.synth(text, lang, rate=rng.uniform(110, 260))
        v = ""
    return audio, sr, P.expand_segments(segs, P.ipa_tokens), f"espeak:{lang}{v}", text


def _mbrola_item(rng, voice, lang, sing=False):
    text = make_text(rng, lang)
    rows = espeak_pho(text, voice)
    if not rows:
        raise RuntimeError("no pho")
    if sing:
        rows = singify(rows, rng)
    else:
        k = rng.uniform(0.75, 1.4)                          # speaking rate
        rows = [[n, d * k, pts] for n, d, pts in rows]
    audio, sr, segs = mbrola_synth(rows, voice, freq_ratio=float(rng.uniform(0.8, 1.25)) if not sing else 1.0)
    return audio, sr, P.expand_segments(segs, P.sampa_tokens), f"mbrola:{voice}{':sing' if sing else ''}", text


# ------------------------------------------------------------------------------------------------ writing
def _finish(audio, sr, segs, rng, strength, long_pauses=0.0, others=()):
    from vasa_core.lipsync.model import logmel, FEAT_HOP_S
    x, sr2, segs2, desc = augment(audio, sr, segs, rng, strength, long_pauses, others)
    feats = logmel(x, sr2)
    times = np.arange(len(feats)) * FEAT_HOP_S
    y = P.targets_from_segments(segs2, times)
    vis = np.array([P.viseme_of(s) for s in P.segment_symbols_at(segs2, times)], np.int8)
    return x, sr2, segs2, desc, feats, y, vis


class ShardWriter:
    def __init__(self, out_dir, prefix, per_shard=200):
        self.dir = Path(out_dir); self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix, self.per, self.buf, self.n = prefix, per_shard, [], 0

    def add(self, feats, y, vis, meta):
        self.buf.append((feats, y, vis, meta))
        if len(self.buf) >= self.per:
            self.flush()

    def flush(self):
        if not self.buf:
            return
        f = np.concatenate([b[0] for b in self.buf]).astype(np.float16)
        y = np.concatenate([b[1] for b in self.buf]).astype(np.float16)
        v = np.concatenate([b[2] for b in self.buf])
        lens = np.array([len(b[0]) for b in self.buf])
        np.savez(self.dir / f"{self.prefix}_{self.n:04d}.npz", feats=f, y=y, vis=v, lens=lens,
                 meta=np.array(json.dumps([b[3] for b in self.buf])))
        self.n += 1
        self.buf = []


def generate(out, minutes=80.0, seed=0, use_mbrola=True, eval_items=60, sing_frac=0.12, log=print, long_pauses=0.0):
    """Generate train/val shards (augmented) and an evaluation set (wav + segments). Deterministic for a seed."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    voices = set(mbrola_voices()) if use_mbrola and shutil.which("mbrola") else set()
    mb_train = {v: l for v, l in MBROLA_TRAIN.items() if v in voices}
    train_vars = [v for v in ESPEAK_VARIANTS if v not in ESPEAK_HELDOUT_VARIANTS]
    t0 = time.time()
    # ---- evaluation set first (clean-ish, stored as audio so any model / baseline can be run on it)
    ev_dir = out / "eval"; ev_dir.mkdir(parents=True, exist_ok=True)
    groups = []
    hv = [(v, l) for v, l in MBROLA_HELDOUT_VOICES.items() if v in voices]
    for i in range(eval_items):
        kind = i % 3
        try:
            if kind == 0:                                 # held-out voices (same languages)
                if hv:
                    v, l = hv[i // 3 % len(hv)]
                    item = _mbrola_item(rng, v, l, sing=(i // 3) % 5 == 4)
                else:
                    item = _espeak_item(rng, ["en", "de", "fr", "es"][i // 3 % 4], ESPEAK_HELDOUT_VARIANTS)
                group = "heldout_voice"
            elif kind == 1:                               # held-out languages, espeak
                item = _espeak_item(rng, HELDOUT_LANGS[i // 3 % len(HELDOUT_LANGS)], ESPEAK_VARIANTS)
                group = "heldout_lang"
            else:                                         # held-out languages, MBROLA pl1 / sw1 / sw2 when present
                hl = [(v, l) for v, l in MBROLA_HELDOUT_LANG.items() if v in voices]
                if hl and (i // 3) % 4 != 3:
                    v, l = hl[i // 3 % len(hl)]
                    item = _mbrola_item(rng, v, l, sing=(i // 3) % 7 == 5)
                else:
                    item = _espeak_item(rng, HELDOUT_LANGS[(i // 3 + 1) % len(HELDOUT_LANGS)], ESPEAK_HELDOUT_VARIANTS)
                group = "heldout_lang"
        except Exception as e:
            log(f"eval item {i} failed: {e}")
            continue
        audio, sr, segs, src, text = item
        x, sr2, segs2, desc, *_ = _finish(audio, sr, segs, rng, strength=0.35)
        name = f"{i:04d}"
        sf.write(ev_dir / f"{name}.wav", x, sr2, subtype="PCM_16")
        (ev_dir / f"{name}.json").write_text(json.dumps({"group": group, "source": src, "text": text, "aug": desc,
                                                         "segments": segs2}, ensure_ascii=False))
        groups.append(group)
    log(f"eval: {len(groups)} items in {time.time() - t0:.0f}s")
    # ---- train / val
    target_s = minutes * 60
    tr, va = ShardWriter(out / "train", "shard"), ShardWriter(out / "val", "shard")
    total, n = 0.0, 0
    recent: list = []
    while total < target_s:
        r = rng.random()
        try:
            if mb_train and r < 0.6:
                v = list(mb_train)[rng.integers(len(mb_train))]
                item = _mbrola_item(rng, v, mb_train[v], sing=rng.random() < sing_frac / 0.6)
            else:
                item = _espeak_item(rng, ESPEAK_TRAIN_LANGS[rng.integers(len(ESPEAK_TRAIN_LANGS))], train_vars)
        except Exception as e:
            log(f"item failed: {e}")
            continue
        audio, sr, segs, src, text = item
        if len(audio) < sr * 0.3:
            continue
        x, sr2, segs2, desc, feats, y, vis = _finish(audio, sr, segs, rng, strength=1.0, long_pauses=long_pauses,
                                                     others=recent)
        recent = (recent + [(audio, sr)])[-20:]          # clean utterances for background speech
        (va if n % 25 == 24 else tr).add(feats, y, vis, {"src": src, "aug": desc})
        total += len(x) / sr2
        n += 1
        if n % 200 == 0:
            log(f"{n} items, {total / 60:.1f} min audio, {time.time() - t0:.0f}s")
    tr.flush(); va.flush()
    log(f"done: {n} items, {total / 60:.1f} min, {time.time() - t0:.0f}s")
    return {"items": n, "minutes": total / 60, "eval_items": len(groups)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/lipsync")
    ap.add_argument("--minutes", type=float, default=80)
    ap.add_argument("--eval-items", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-mbrola", action="store_true")
    ap.add_argument("--long-pauses", type=float, default=0.0, help="share of clips padded with 0.8-3 s pauses")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    print(json.dumps(generate(a.out, a.minutes, a.seed, not a.no_mbrola, a.eval_items, log=lambda s: print(s, flush=True),
                                long_pauses=a.long_pauses)))


if __name__ == "__main__":
    main()
