"""Train the learned audio -> mouth model on the generated data.

  python -m tools.lipsync.data  --out build/lipsync2 --minutes 130 --eval-items 120            # ~5 min
  python -m tools.lipsync.data  --out build/lipsync3 --minutes 40 --eval-items 0 --seed 7 --long-pauses 0.5
  python -m tools.lipsync.train --data build/lipsync2 --steps 4000 --max-minutes 55 --out build/lipsync_v2.npz
  python -m tools.lipsync.train --data build/lipsync3 --init build/lipsync_v2.npz --steps 600 --lr 4e-4 \
      --seed 1 --calibration-from assets/lipsync.npz --out assets/lipsync.npz   # fine-tune with long pauses

Single-threaded by default (the machine has two shared cores).  Random 4 s crops, Adam + cosine schedule,
loss = weighted smooth-L1 on the eight parameters + 0.3 x viseme cross-entropy.  Keeps the checkpoint with
the best validation loss, written by `model.save_weights` (float16, about 1 MB).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vasa_core.audio import hz_to_mel, mel_frequencies
from vasa_core.lipsync.model import MEL_RANGE, N_MELS, MouthNet, load_torch_net, load_weights, save_weights
from vasa_core.lipsync.phonemes import NP, PRS, TUCK, JAW, FUN, STR, TNG  # noqa: F401

CALIBRATION = ("jaw_gain", "lead_ms", "pool_ms", "calibration")   # weights-file fields set after training
PARAM_W = torch.ones(NP)
PARAM_W[[JAW, FUN, STR]] = 1.5
PARAM_W[PRS] = 2.5
PARAM_W[TUCK] = 1.5
PARAM_W[TNG] = 0.7


def _lead(a: np.ndarray, k: int) -> np.ndarray:
    """a[t + k] at t (the last row held at the end): targets k frames earlier than the sound."""
    return a if k <= 0 else np.concatenate([a[k:], np.repeat(a[-1:], min(k, len(a)), 0)])[:len(a)]


def load_split(d: Path, lead_frames: int = 0):
    """Utterances (log-mel, targets, viseme ids) of one split; with `lead_frames` the targets (and visemes) are
    moved that many 10 ms frames earlier than the audio, because real lips and jaw move before the sound
    they shape."""
    utts = []
    for f in sorted(d.glob("shard_*.npz")):
        z = np.load(f)
        off = 0
        for n in z["lens"]:
            n = int(n)
            utts.append((z["feats"][off:off + n].astype(np.float32),
                         _lead(z["y"][off:off + n].astype(np.float32), lead_frames),
                         _lead(z["vis"][off:off + n].astype(np.int64), lead_frames)))
            off += n
    return utts


def warp_source_bins(alpha: float, n_mels: int = N_MELS) -> np.ndarray:
    """Fractional source bin for each of the `n_mels` log-mel bins when the vocal tract is `alpha` times shorter
    (every formant `alpha` times higher; vocal tract length perturbation): bin j then shows what the original
    speech had at f_j / alpha. (n_mels,) float64, clipped to the bank."""
    centres = mel_frequencies(n_mels + 2, *MEL_RANGE)[1:-1]
    mel = hz_to_mel(np.clip(centres / alpha, centres[0], centres[-1]))
    return np.interp(mel, hz_to_mel(centres), np.arange(n_mels, dtype=np.float64))


def warp_features(x: np.ndarray, alpha: float) -> np.ndarray:
    """Log-mel (T, n_mels) as a vocal tract `alpha` times shorter would show it (linear between bins)."""
    src = warp_source_bins(alpha, x.shape[1])
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, x.shape[1] - 1)
    w = (src - lo).astype(np.float32)
    return x[:, lo] * (1 - w) + x[:, hi] * w


def augment_features(x: np.ndarray, rng, vtlp: float = 0.0, freq_masks: int = 0) -> np.ndarray:
    """Speaker and channel augmentation of one crop's log-mel (T, n_mels), on the features so the shards need
    not be regenerated: a random vocal-tract-length warp (alpha uniform in 1 +- `vtlp`; the data's 33 MBROLA
    voices and 22 espeak-ng variants are few speakers next to real speech), and up to `freq_masks` bands of
    1-4 bins set to the crop's mean there (a missing or notched band: telephone, music, room)."""
    if vtlp > 0:
        x = warp_features(x, float(rng.uniform(1 - vtlp, 1 + vtlp)))
    masks = int(rng.integers(0, freq_masks + 1)) if freq_masks else 0
    if masks:
        x = x.copy()
    for _ in range(masks):
        width = int(rng.integers(1, 5))
        f0 = int(rng.integers(0, x.shape[1] - width + 1))
        x[:, f0:f0 + width] = x[:, f0:f0 + width].mean()
    return x


def make_batch(utts, rng, batch, crop, vtlp: float = 0.0, freq_masks: int = 0):
    X = np.zeros((batch, crop, utts[0][0].shape[1]), np.float32)
    Y = np.zeros((batch, crop, NP), np.float32)
    V = np.zeros((batch, crop), np.int64)
    M = np.zeros((batch, crop), np.float32)
    for b in range(batch):
        f, y, v = utts[rng.integers(len(utts))]
        n = len(f)
        s = int(rng.integers(0, max(1, n - crop + 1)))
        m = min(crop, n - s)
        X[b, :m], Y[b, :m], V[b, :m], M[b, :m] = f[s:s + m], y[s:s + m], v[s:s + m], 1
        if m < crop:
            X[b, m:] = f.min(0)                   # pad with "silence"
        if vtlp or freq_masks:
            X[b] = augment_features(X[b], rng, vtlp, freq_masks)
    return torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(V), torch.from_numpy(M)


OPEN_JAW = 0.3     # --open-weight applies where the jaw target is above this and there is no press


def loss_fn(net, X, Y, V, M, closure_weight: float = 3.0, open_weight: float = 0.0):
    p, logits = net(X)
    l = F.smooth_l1_loss(p, Y, reduction="none", beta=0.1) * PARAM_W
    # closures are rare and must not be missed; a press where there is none (a false closure) can cost extra too
    l[..., PRS] = l[..., PRS] * (1 + closure_weight * (Y[..., PRS] > 0.5)
                                 + open_weight * ((Y[..., JAW] > OPEN_JAW) & (Y[..., PRS] < 0.1)))
    lp = (l.sum(-1) * M).sum() / (M.sum() * PARAM_W.sum())
    lv = (F.cross_entropy(logits.transpose(1, 2), V, reduction="none") * M).sum() / M.sum()
    return lp + 0.3 * lv, lp




def train(data="build/lipsync", out="assets/lipsync.npz", steps=6000, batch=24, crop=400, lr=2e-3, channels=128,
          seed=0, threads=1, max_minutes=None, log=print, val_every=250, init=None, lead_ms=0.0,
          calibration_from=None, closure_weight=3.0, vtlp=0.0, freq_masks=0, open_weight=0.0):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = Path(data)
    lead = int(round(lead_ms / 10.0))
    tr, va = load_split(data / "train", lead), load_split(data / "val", lead)
    if not va:
        va = tr[-max(1, len(tr) // 20):]
    calibration = {}
    if init:                                   # fine-tune from a weights file (keeps its feature normalisation)
        net, meta = load_torch_net(init)
        calibration = {k: meta[k] for k in CALIBRATION if k in meta}   # kept unless the targets are moved
    else:
        allf = np.concatenate([u[0] for u in tr[:400]])
        net = MouthNet(channels=channels)
        net.mu.copy_(torch.from_numpy(allf.mean(0)))
        net.sd.copy_(torch.from_numpy(allf.std(0) + 1e-3))
    if calibration_from:                       # the real-mouth calibration of another weights file
        meta = load_weights(calibration_from)[1]
        calibration = {k: meta[k] for k in CALIBRATION if k in meta}
    if lead:
        calibration.pop("lead_ms", None)
    log(f"train {len(tr)} utts / {sum(len(u[0]) for u in tr) / 6000:.1f} min, val {len(va)} utts, "
        f"{sum(p.numel() for p in net.parameters())} params")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    t_start = time.time()

    def lr_at(s):      # warm-up, then cosine over the step budget or the time budget, whichever runs out first
        frac = s / steps
        if max_minutes:
            frac = max(frac, (time.time() - t_start) / (max_minutes * 60))
        frac = min(frac, 1.0)
        return lr * min(1.0, (s + 1) / 200) * (0.5 * (1 + math.cos(math.pi * frac)) * 0.97 + 0.03)
    vrng = np.random.default_rng(1234)
    vbatches = [make_batch(va, vrng, 16, crop) for _ in range(max(1, min(8, len(va) // 4)))]
    best, t0, hist = float("inf"), time.time(), []
    for step in range(steps):
        net.train()
        X, Y, V, M = make_batch(tr, rng, batch, crop, vtlp, freq_masks)
        loss, lp = loss_fn(net, X, Y, V, M, closure_weight, open_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        last = step == steps - 1 or (max_minutes and time.time() - t0 > max_minutes * 60)
        if (step + 1) % val_every == 0 or last:
            net.eval()
            with torch.no_grad():
                vl = float(np.mean([loss_fn(net, *b, closure_weight, open_weight)[1].item() for b in vbatches]))
            hist.append({"step": step + 1, "train": round(lp.item(), 5), "val": round(vl, 5),
                         "min": round((time.time() - t0) / 60, 2)})
            log(json.dumps(hist[-1]))
            if vl < best:
                best = vl
                if out:
                    save_weights(out, net, step=step + 1, val_loss=vl, seed=seed,
                                 **({"lead_ms": 10.0 * lead} if lead else {}), **calibration)
        if last:
            break
    return net, {"best_val": best, "history": hist}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="build/lipsync")
    ap.add_argument("--out", default="assets/lipsync.npz")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--crop", type=int, default=400)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop early after this wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="start from this checkpoint (fine-tuning)")
    ap.add_argument("--lead-ms", type=float, default=0.0,
                    help="targets this much earlier than the sound (real articulators lead the audio)")
    ap.add_argument("--calibration-from", default=None, metavar="WEIGHTS",
                    help="store this weights file's real-mouth calibration (lead_ms, pool_ms, jaw_gain) with the "
                         "result (with --init the init file's is kept)")
    ap.add_argument("--closure-weight", type=float, default=3.0,
                    help="extra loss weight on lip-press frames inside a p/b/m closure (x (1 + this))")
    ap.add_argument("--open-weight", type=float, default=0.0,
                    help="extra loss weight on lip press in open-vowel frames (jaw target > 0.3, no press): "
                         "false closures cost x (1 + this)")
    ap.add_argument("--vtlp", type=float, default=0.0,
                    help="vocal-tract-length warp of the training features, alpha in 1 +- this (e.g. 0.12)")
    ap.add_argument("--freq-masks", type=int, default=0, help="up to this many masked mel bands per crop")
    a = ap.parse_args(argv)
    train(a.data, a.out, a.steps, a.batch, a.crop, a.lr, a.channels, a.seed, a.threads, a.max_minutes,
          log=lambda s: print(s, flush=True), init=a.init, lead_ms=a.lead_ms, calibration_from=a.calibration_from,
          closure_weight=a.closure_weight, vtlp=a.vtlp, freq_masks=a.freq_masks,
          open_weight=a.open_weight)


if __name__ == "__main__":
    main()
