"""Fine-tune the lip-sync network on real mouths mixed with the exact synthetic labels.

    python -m tools.lipsync.realtune --tracks build/real.json --data build/lipsync4 --init assets/lipsync.npz \
        --out build/lipsync_real.npz [--folds 2 --holdout 0] [--steps 300] [--real-weight 1.0] [--loss l1|corr]

`--tracks` is the JSON that `python -m tools.lipsync.evaluate --real DIR --save X.json` writes (every clip's
tracked real inner-lip gap, its speech mask and file name); the clips' audio is read again from the folders
named in it. Real targets: only jaw_open, the clip's inner-lip gap scaled to its own 5-95% range (times 0.7,
about the synthetic jaw range); every other parameter keeps learning from the synthetic labels only.
`--loss corr` instead scores the jaw by 1 - Pearson r with the real gap per crop (free of each speaker's range).
Neither helped on held-out speakers (docs/lipsync.md "Learning from the real clips"): this is an experiment tool.
Leave-speaker-out: `--folds F --holdout K` trains on the speakers not in fold K (speakers are assigned to
folds in sorted order, round robin) and lists the held-out clips, so `evaluate --real` scores them as unseen.
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

from vasa_core.lipsync.model import FEAT_HOP_S, load_torch_net, logmel, save_weights
from vasa_core.lipsync.phonemes import JAW
from .train import load_split, loss_fn, make_batch


def fold_of(speakers: list[str], folds: int) -> dict[str, int]:
    return {s: i % folds for i, s in enumerate(sorted(set(speakers)))}


def real_items(tracks_json: str, dirs: list[str], folds: int, holdout: int | None):
    """[(log-mel (T, 40), jaw target (T,), mask (T,))] for the training speakers, and the held-out clip names."""
    from vasa_core.audio import load_audio
    recs = json.loads(Path(tracks_json).read_text())["records"]
    fold = fold_of([r["speaker"] for r in recs], folds)
    files = {p.name: p for d in dirs for p in Path(d).iterdir()}
    items, held = [], []
    for r in recs:
        if holdout is not None and fold[r["speaker"]] == holdout:
            held.append(r["clip"])
            continue
        a = load_audio(files[r["clip"]], sample_rate=16000)
        f = logmel(a.samples, 16000)
        gap = np.array([np.nan if v is None else v for v in r["series"]["real_gap"]], np.float64)
        ok = np.isfinite(gap)
        if ok.sum() < 20:
            continue
        lo, hi = np.percentile(gap[ok], [5, 95])
        t25 = np.arange(len(gap)) / 25.0
        t100 = np.arange(len(f)) * FEAT_HOP_S
        g = np.interp(t100, t25[ok], gap[ok])
        m = np.interp(t100, t25, ok.astype(float)) > 0.99
        y = np.clip((g - lo) / max(hi - lo, 1e-3), 0, 1.2) * 0.7
        items.append((f.astype(np.float32), y.astype(np.float32), m.astype(np.float32)))
    return items, held


def corr_loss(p: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean over crops of 1 - Pearson r between p and y (B, T) on the frames where m (B, T) is 1."""
    n = m.sum(1).clamp(min=1)
    pm = (p * m).sum(1, keepdim=True) / n[:, None]
    ym = (y * m).sum(1, keepdim=True) / n[:, None]
    pc, yc = (p - pm) * m, (y - ym) * m
    r = (pc * yc).sum(1) / ((pc ** 2).sum(1).sqrt() * (yc ** 2).sum(1).sqrt() + 1e-6)
    ok = (m.sum(1) >= 50).float()                                # crops with >= 0.5 s of tracked mouth
    return ((1 - r) * ok).sum() / ok.sum().clamp(min=1)


def real_batch(items, rng, batch, crop):
    X = np.zeros((batch, crop, items[0][0].shape[1]), np.float32)
    Y = np.zeros((batch, crop), np.float32)
    M = np.zeros((batch, crop), np.float32)
    for b in range(batch):
        f, y, m = items[rng.integers(len(items))]
        s = int(rng.integers(0, max(1, len(f) - crop + 1)))
        k = min(crop, len(f) - s)
        X[b, :k], Y[b, :k], M[b, :k] = f[s:s + k], y[s:s + k], m[s:s + k]
        if k < crop:
            X[b, k:] = f.min(0)
    return torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(M)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", required=True)
    ap.add_argument("--real", action="append", default=None, help="folders holding the clips named in --tracks")
    ap.add_argument("--data", default="build/lipsync4")
    ap.add_argument("--init", default="assets/lipsync.npz")
    ap.add_argument("--out", required=True)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--holdout", type=int, default=None, help="fold left out (default: train on every speaker)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--max-minutes", type=float, default=20)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--real-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", choices=("l1", "corr"), default="l1",
                    help="real-mouth loss: smooth L1 to the scaled gap, or 1 - Pearson r per crop")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    dirs = a.real or ["../shared/media/real_speech", "../shared/media/real_video"]
    items, held = real_items(a.tracks, dirs, a.folds, a.holdout)
    syn = load_split(Path(a.data) / "train")
    net, ck = load_torch_net(a.init)
    print(f"real clips {len(items)} ({sum(len(i[0]) for i in items) / 100:.0f} s), held out {len(held)}: "
          f"{json.dumps(held)}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    t0 = time.time()
    for step in range(a.steps):
        frac = min(1.0, max(step / a.steps, (time.time() - t0) / (a.max_minutes * 60)))
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.5 * (1 + math.cos(math.pi * frac)) * 0.95 + 0.05)
        net.train()
        loss_s, _ = loss_fn(net, *make_batch(syn, rng, 16, 400))
        X, Y, M = real_batch(items, rng, 8, 400)
        p, _ = net(X)
        if a.loss == "corr":       # 1 - Pearson r per crop: what the evaluation scores, free of each speaker's range
            loss_r = corr_loss(p[..., JAW], Y, M)
        else:
            loss_r = (F.smooth_l1_loss(p[..., JAW], Y, reduction="none", beta=0.1) * M).sum() / M.sum().clamp(min=1)
        loss = loss_s + a.real_weight * loss_r
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if (step + 1) % 25 == 0:
            print(json.dumps({"step": step + 1, "synthetic": round(loss_s.item(), 4), "real": round(loss_r.item(), 4),
                              "min": round((time.time() - t0) / 60, 1)}), flush=True)
        if frac >= 1.0:
            break
    extra = {k: ck[k] for k in ("jaw_gain", "lead_ms", "pool_ms", "calibration") if k in ck}
    save_weights(a.out, net.eval(), step=step + 1, real_holdout_fold=a.holdout, real_folds=a.folds,
                 real_heldout_clips=held, **extra)


if __name__ == "__main__":
    main()
