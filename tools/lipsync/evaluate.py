"""Evaluate mouth models on held-out synthesised speech with exact phoneme timing.

  python -m tools.lipsync.evaluate [--json] [--data build/lipsync2] [--plots DIR] [--contact-sheet X.png]
  python -m tools.lipsync.evaluate --real DIR [--real DIR2] [--no-render] [--save OUT.json]   (real videos:
      the real mouth tracked by mediapipe against ours, predicted and rendered; see tools.lipsync.real)

Evaluation items (written by `python -m tools.lipsync.data`, or made here with espeak-ng only when
missing) are never used in training: held-out MBROLA voices (us3, de2, fr4, es2; incl. sung items) and
held-out languages (Polish: espeak-ng + MBROLA pl1; Swedish: espeak-ng + MBROLA sw1, sw2), with light
augmentation.  Groups: heldout_voice / heldout_lang = spoken items; sung = the sung items of both; all.

Models: the learned model (assets/lipsync.npz), the engine's v1 AcousticMouth (when importable), and a
pocketsphinx English allphone recogniser whose phones go through the same phoneme table + coarticulation
(the Rhubarb Lip Sync approach).  Metrics at 25 fps (frame i at i/fps; targets pooled like predictions):
  jaw_corr / round_corr   Pearson correlation of jaw_open / lip_funnel with the target, all frames pooled
  bilabial_recall         share of p/b/m closures where lip_press reaches >= 0.5 on some frame of the closure
  false_closure           share of open vowels (>= 100 ms) whose middle half has lip_press >= 0.5 (the price of recall)
  rounding_acc            balanced accuracy of sign(funnel - stretch) on rounded (o/u/w/y...) vs spread (i/e) vowels
  sil_motion / sil_jaw    mean sum |frame-to-frame change| of all 8 params / mean jaw_open inside pauses >= 0.4 s
  best_offset             shift in frames (+ = prediction late) maximising jaw+round correlation; ideal 0 +- 1
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from vasa_core.lipsync import phonemes as P
from vasa_core.lipsync.model import FEAT_HOP_S, pool_to_frames

FPS = 25.0
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ metrics
def _corr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _frames_in(s, e, fps, n, pad=0.5):
    a = int(np.ceil((s - pad / fps) * fps))
    b = int(np.floor((e + pad / fps) * fps))
    a, b = max(a, 0), min(b, n - 1)
    if b < a:
        j = int(np.clip(round((s + e) / 2 * fps), 0, n - 1))
        return np.array([j])
    return np.arange(a, b + 1)


def item_stats(pred, target, segs, fps=FPS):
    """Per-item raw counts; `segs` are expanded (symbol, start, end)."""
    n = len(pred)
    st = {"bil": [0, 0], "fc": [0, 0], "rnd": [0, 0], "spr": [0, 0], "sil_motion": [], "sil_jaw": []}
    # merge adjacent bilabials (e.g. 'mb') into one closure
    bil = []
    for sym, s, e in segs:
        if sym in P.BILABIAL:
            if bil and abs(bil[-1][1] - s) < 1e-6:
                bil[-1][1] = e
            else:
                bil.append([s, e])
    for s, e in bil:
        fr = _frames_in(s, e, fps, n)
        st["bil"][0] += int(pred[fr, P.PRS].max() >= 0.5)
        st["bil"][1] += 1
    for sym, s, e in segs:
        if sym in P.VOWELS and P.TABLE[sym][P.JAW] >= 0.5 and e - s >= 0.1:
            fr = _frames_in(s + 0.25 * (e - s), e - 0.25 * (e - s), fps, n, pad=0.0)
            st["fc"][0] += int(pred[fr, P.PRS].max() >= 0.5)
            st["fc"][1] += 1
        if sym in P.ROUNDED or sym in P.SPREAD:
            fr = _frames_in(s, e, fps, n, pad=0.0)
            d = float((pred[fr, P.FUN] - pred[fr, P.STR]).mean())
            if sym in P.ROUNDED:
                st["rnd"][0] += int(d > 0); st["rnd"][1] += 1
            else:
                st["spr"][0] += int(d < 0); st["spr"][1] += 1
        if sym == P.SIL and e - s >= 0.4:
            fr = _frames_in(s + 0.15, e - 0.15, fps, n, pad=0.0)
            if len(fr) >= 2:
                st["sil_motion"].append(float(np.abs(np.diff(pred[fr], axis=0)).sum(1).mean()))
                st["sil_jaw"].append(float(pred[fr, P.JAW].mean()))
    return st


def summarise(preds, targets, stats, max_shift=6):
    pc, tc = np.concatenate(preds), np.concatenate(targets)
    out = {"frames": int(len(pc)),
           "jaw_corr": _corr(pc[:, P.JAW], tc[:, P.JAW]),
           "round_corr": _corr(pc[:, P.FUN], tc[:, P.FUN])}
    agg = lambda k: [sum(s[k][0] for s in stats), sum(s[k][1] for s in stats)]
    b, fc, r, sp = agg("bil"), agg("fc"), agg("rnd"), agg("spr")
    out["bilabial_recall"] = b[0] / b[1] if b[1] else float("nan")
    out["bilabial_n"] = b[1]
    out["false_closure"] = fc[0] / fc[1] if fc[1] else float("nan")
    accs = [x[0] / x[1] for x in (r, sp) if x[1]]
    out["rounding_acc"] = float(np.mean(accs)) if accs else float("nan")
    sm = [v for s in stats for v in s["sil_motion"]]
    sj = [v for s in stats for v in s["sil_jaw"]]
    out["sil_motion"] = float(np.mean(sm)) if sm else float("nan")
    out["sil_jaw"] = float(np.mean(sj)) if sj else float("nan")
    best, best_k = -9.0, 0
    for k in range(-max_shift, max_shift + 1):
        ps, ts = [], []
        for p, t in zip(preds, targets):
            if k >= 0:
                ps.append(p[k:]); ts.append(t[:len(t) - k])
            else:
                ps.append(p[:k]); ts.append(t[-k:])
        ps, ts = np.concatenate(ps), np.concatenate(ts)
        v = _corr(ps[:, P.JAW], ts[:, P.JAW]) + _corr(ps[:, P.FUN], ts[:, P.FUN])
        if v > best + 1e-9:
            best, best_k = v, k
    out["best_offset"] = best_k
    return out


# ------------------------------------------------------------------------------------------------ baselines
class SphinxMouth:
    """pocketsphinx en-us allphone decoding -> phoneme table + coarticulation (Rhubarb-style baseline)."""
    name = "pocketsphinx"

    def __init__(self):
        import pocketsphinx
        m = pocketsphinx.get_model_path()
        self.dec = pocketsphinx.Decoder(allphone=os.path.join(m, "en-us", "en-us-phone.lm.bin"), lw=2.0, pip=0.3,
                                        beam=1e-10, pbeam=1e-10, loglevel="FATAL")

    def segments(self, samples, sample_rate):
        from vasa_core.audio import resample_samples
        x = resample_samples(samples, sample_rate, 16000)
        self.dec.start_utt()
        self.dec.process_raw((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        self.dec.end_utt()
        segs = [(s.word, s.start_frame * 0.01, (s.end_frame + 1) * 0.01) for s in self.dec.seg()]
        return P.expand_segments([(w if w not in ("SIL", "+NSN+", "+SPN+", "<s>", "</s>") else "", s, e)
                                  for w, s, e in segs], P.arpa_tokens)

    def predict(self, samples, sample_rate, fps, num_frames):
        segs = self.segments(samples, sample_rate)
        t = np.arange(int(np.ceil(num_frames / fps / FEAT_HOP_S)) + 2) * FEAT_HOP_S
        return pool_to_frames(P.targets_from_segments(segs, t), fps, num_frames)


class OracleMouth:
    """The target itself, from the true phoneme segments (sanity check: what a perfect model scores)."""
    name = "oracle"


def target_frames(segs, duration, fps, num_frames):
    t = np.arange(int(np.ceil(max(duration, num_frames / fps) / FEAT_HOP_S)) + 2) * FEAT_HOP_S
    return pool_to_frames(P.targets_from_segments(segs, t), fps, num_frames)


def available_models(weights=None):
    models = {}
    try:
        from vasa_core.lipsync.model import LearnedMouth, DEFAULT_WEIGHTS
        models["learned"] = LearnedMouth.load(weights or DEFAULT_WEIGHTS)
    except FileNotFoundError:
        pass
    try:
        from vasa_core.mouth import AcousticMouth
        models["acoustic_v1"] = AcousticMouth()
    except Exception:
        pass
    try:
        models["pocketsphinx"] = SphinxMouth()
    except Exception:
        pass
    return models


# ------------------------------------------------------------------------------------------------ running
def load_items(data):
    d = Path(data) / "eval"
    if not d.exists() or not any(d.glob("*.json")):
        from .data import generate
        generate(data, minutes=0, eval_items=45, use_mbrola=True, log=lambda s: None)
    items = []
    for j in sorted(d.glob("*.json")):
        meta = json.loads(j.read_text())
        x, sr = sf.read(j.with_suffix(".wav"), dtype="float32")
        items.append((meta, x, sr, [tuple(s) for s in meta["segments"]]))
    return items


def evaluate(models, items, fps=FPS):
    groups = sorted({m["group"] for m, *_ in items})
    res = {}
    for name, model in models.items():
        res[name] = {}
        per = {g: ([], [], []) for g in groups + ["sung", "all"]}
        for meta, x, sr, segs in items:
            n = max(1, int(round(len(x) / sr * fps)))
            tgt = target_frames(segs, len(x) / sr, fps, n)
            pred = tgt if isinstance(model, OracleMouth) else np.asarray(model.predict(x, sr, fps, n), np.float32)
            st = item_stats(pred, tgt, segs, fps)
            keys = (["sung"] if "sing" in meta["source"] else [meta["group"]]) + ["all"]
            for g in keys:
                per[g][0].append(pred); per[g][1].append(tgt); per[g][2].append(st)
        for g, (p, t, s) in per.items():
            if p:
                res[name][g] = summarise(p, t, s)
    return res


COLS = ("jaw_corr", "round_corr", "bilabial_recall", "false_closure", "rounding_acc", "sil_motion", "sil_jaw",
        "best_offset")


def table(res):
    lines = ["| model | set | frames | " + " | ".join(COLS) + " |", "|" + "---|" * (len(COLS) + 3)]
    for name, groups in res.items():
        for g, m in groups.items():
            vals = [f"{m[c]:.0f}" if c == "best_offset" else f"{m[c]:.2f}" for c in COLS]
            lines.append(f"| {name} | {g} | {m['frames']} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_clip(model, path_or_audio, out_png, title=""):
    """Mouth parameters over the spectrogram (for looking at real recordings)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from vasa_core.audio import load_audio
    if isinstance(path_or_audio, (str, Path)):
        a = load_audio(path_or_audio)
        x, sr = a.samples, a.sample_rate
    else:
        x, sr = path_or_audio
    n = int(round(len(x) / sr * FPS))
    y = model.predict(x, sr, FPS, n)
    from vasa_core.lipsync.model import logmel
    f = logmel(x, sr)
    fig, ax = plt.subplots(2, 1, figsize=(14, 6), sharex=True)
    ax[0].imshow(f.T, origin="lower", aspect="auto", extent=[0, len(f) * FEAT_HOP_S, 0, f.shape[1]], cmap="magma")
    ax[0].set_title(title)
    t = np.arange(n) / FPS
    for k, nm in enumerate(P.MOUTH_PARAMS):
        ax[1].plot(t, y[:, k] + 0 * k, label=nm, lw=1)
    ax[1].legend(ncol=8, fontsize=7, loc="upper right")
    ax[1].set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return y


def contact_sheet(items, out_png, lipsync="default", per_kind=6):
    """Render the engine's mouth (public-domain Grace Hopper portrait) at p/b/m closures and at open vowels
    of a held-out item, and tile the mouth regions: top row closures, bottom row open vowels."""
    import cv2
    import matplotlib
    from vasa_core.audio import Audio
    from safety.publish import build_pipeline
    img = str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    def picks(segs):
        closes = [int(round((s + e) / 2 * FPS)) for sym, s, e in segs if sym in P.BILABIAL][:per_kind]
        opens = [int(round((s + e) / 2 * FPS)) for sym, s, e in segs
                 if sym in P.VOWELS and P.TABLE[sym][P.JAW] >= .5 and e - s > .06][:per_kind]
        return closes, opens
    cands = [it for it in items if it[0]["group"] == "heldout_voice" and "sing" not in it[0]["source"]] or items
    meta, x, sr, segs = max(cands, key=lambda it: min(map(len, picks(it[3]))))
    closes, opens = picks(segs)
    pipe = build_pipeline(size=512, fps=FPS, lipsync=lipsync)
    portrait, renderer = pipe.prepare(img)
    motion = pipe.motion(Audio(x.astype(np.float32), sr))
    cx, cy = portrait.landmarks[[13, 14], :2].mean(0)
    h = int(portrait.face_width * 0.45)
    x0, y0 = int(max(0, cx - h)), int(max(0, cy - h * 0.8))
    rows = []
    for idx in (closes, opens):
        tiles = []
        for i in idx:
            fr = renderer.render(motion.values[min(i, len(motion.values) - 1)])
            tiles.append(cv2.resize(np.ascontiguousarray(fr[y0:y0 + 2 * h, x0:x0 + 2 * h]), (192, 192)))
        while len(tiles) < per_kind:
            tiles.append(np.zeros((192, 192, 3), np.uint8))
        rows.append(np.concatenate(tiles, 1))
    sheet = np.concatenate(rows, 0)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return meta["source"], closes, opens


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "build" / "lipsync2"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plots", default=None, help="folder for mouth-over-spectrogram plots of real/sung clips")
    ap.add_argument("--contact-sheet", default=None, help="PNG: rendered mouth at closures (top) / open vowels")
    ap.add_argument("--oracle", action="store_true", help="also score the exact targets (upper bound)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--real", action="append", default=None, metavar="DIR",
                    help="score on real talking videos with their own speech instead (see tools.lipsync.real); "
                         "repeat for several folders")
    ap.add_argument("--models", default="whisper,learned,acoustic,pocketsphinx", help="with --real: which mouths")
    ap.add_argument("--no-render", action="store_true", help="with --real: skip the rendered-video scores")
    ap.add_argument("--save", default=None, help="with --real: write every clip's numbers to this JSON file")
    ap.add_argument("--track-cache", default=None, help="with --real: keep the real-mouth tracks in this folder")
    ap.add_argument("--heldout-weights", default=None,
                    help="with --real: JSON {clip file name: Whisper readout .npz} (whisper_train --folds-out), so "
                         "each clip is scored by a Whisper mouth fitted without its speaker")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if a.real:
        from . import real
        records, summary = real.run(a.real, a.models.split(","), not a.no_render, a.save,
                                    log=lambda s: print(s, flush=True), cache=a.track_cache, weights=a.weights,
                                    heldout=a.heldout_weights)
        print(json.dumps(summary, indent=1) if a.json else real.tables(records, summary))
        return
    items = load_items(a.data)
    if a.limit:
        items = items[:a.limit]
    models = available_models(a.weights)
    if a.oracle:
        models["oracle"] = OracleMouth()
    res = evaluate(models, items)
    if a.plots:
        out = Path(a.plots); out.mkdir(parents=True, exist_ok=True)
        import glob
        try:
            import gradio
            media = sorted(glob.glob(str(Path(gradio.__file__).parent / "media_assets" / "audio" / "*")))
        except Exception:
            media = []
        for name, m in models.items():
            if isinstance(m, OracleMouth):
                continue
            for f in media:
                plot_clip(m, f, out / f"{name}_{Path(f).stem}.png", f"{name}: {Path(f).name}")
            for meta, x, sr, segs in items:
                if "sing" in meta["source"] or meta["source"].startswith("mbrola:pl1"):
                    plot_clip(m, (x, sr), out / f"{name}_eval_{meta['source'].replace(':', '_')}.png",
                              f"{name}: {meta['source']} {meta['text'][:60]}")
                    break
    if a.contact_sheet:
        for name in ("default", "acoustic"):
            p = Path(a.contact_sheet)
            contact_sheet(items, p.with_name(f"{p.stem}_{name}{p.suffix}"), lipsync=name)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{len(items)} evaluation items, {FPS:g} fps")
        print(table(res))


if __name__ == "__main__":
    main()
