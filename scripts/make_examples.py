"""Make the demo's examples gallery (assets/examples/): a painting-like version of matplotlib's Grace Hopper
portrait (public domain) and short speech in English and German synthesised with espeak-ng (no recorded media).

    .venv/bin/python scripts/make_examples.py        # needs the Debian package espeak-ng
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import soundfile as sf

OUT = Path(__file__).resolve().parent.parent / "assets" / "examples"
SPEECH = {
    "speech_en.ogg": ("en-us", "Hello! I am a talking portrait. Every video I make carries an invisible "
                               "watermark, so anyone can check where it came from."),
    "speech_de.ogg": ("de", "Guten Tag! Ich bin ein sprechendes Porträt. Jedes Video trägt ein unsichtbares "
                            "Wasserzeichen."),
}


def painting() -> np.ndarray:
    """Grace Hopper as a painting-like image (BGR): flattened colours, a light oil filter, canvas texture."""
    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    smooth = cv2.edgePreservingFilter(img, flags=cv2.RECURS_FILTER, sigma_s=40, sigma_r=0.3)
    flat = cv2.xphoto.oilPainting(smooth, 4, 1)
    flat = (np.round(flat / 20.0) * 20.0).clip(0, 255).astype(np.uint8)     # fewer, flatter colours
    flat = cv2.addWeighted(flat, 0.7, smooth, 0.3, 0)
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.normal(0, 1, img.shape[:2]).astype(np.float32), (0, 0), 1.2)
    weave = (np.sin(np.arange(img.shape[1]) * 1.7)[None, :] + np.sin(np.arange(img.shape[0]) * 1.9)[:, None])
    tex = (6 * canvas + 2.5 * weave)[..., None]
    return np.clip(flat.astype(np.float32) + tex, 0, 255).astype(np.uint8)


def speech(voice: str, text: str, path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        x, sr = sf.read(wav, dtype="float32")
    sf.write(path, x, sr, format="OGG", subtype="VORBIS")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT / "hopper_painting.jpg"), painting(), [cv2.IMWRITE_JPEG_QUALITY, 88])
    for name, (voice, text) in SPEECH.items():
        speech(voice, text, OUT / name)
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
