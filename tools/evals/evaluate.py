"""Honest evaluation of the detector: cross-validation split by person, metrics with confidence intervals.

`python -m safety.detector evaluate [--json] [--work DIR]`
  - with the feature cache of `python -m tools.evals.train` in DIR (default ../build/detector): recomputes the
    held-out evaluation from it (grouped 5-fold cross-validation; other generators scored by a model trained
    on all our data, never on them) and prints the table;
  - without it (a fresh clone has no research media): prints the shipped evaluation, assets/detector_eval.json.

Test sets (the issue's):
  (a) held-out own clips (fakes from our renderer, never seen with that person), clean and after CRF 28 + 50%
      downscale + crop, against held-out real clips treated the same way (watermark never involved: the fakes
      are rendered without it);
  (b) other generators (unseen) against the held-out real clips;
  (c) held-out real clips alone: the false-positive rate at the shipped threshold.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from safety import detector as D

DEFAULT_WORK = D.ROOT.parent / "build" / "detector"
FOLDS = 5
STRENGTH = ("clean", "crf23", "crf28", "crf35", "hard", "mix")
STRENGTH_LABELS = ("as made", "CRF 23", "CRF 28", "CRF 35", "CRF 28 + 50% + crop", "random mix")


# ----------------------------------------------------------------------------------------------------------
# metrics
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, c - h), min(1.0, c + h))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative; ties count half)."""
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def roc_points(pos: np.ndarray, neg: np.ndarray) -> dict:
    thr = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
    fpr = [float((neg >= t).mean()) for t in thr]
    tpr = [float((pos >= t).mean()) for t in thr]
    return {"fpr": [0.0] + fpr + [1.0], "tpr": [0.0] + tpr + [1.0]}


def metrics(pos: np.ndarray, neg: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """Accuracy, precision, recall, FPR at `threshold` (score >= threshold = generated), AUC with a clip
    bootstrap interval, TPR at 1% FPR."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    tp, fn = int((pos >= threshold).sum()), int((pos < threshold).sum())
    fp, tn = int((neg >= threshold).sum()), int((neg < threshold).sum())
    n = tp + fn + fp + tn
    m: dict = {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    if n:
        m["accuracy"], m["accuracy_ci"] = (tp + tn) / n, wilson(tp + tn, n)
    if tp + fp:
        m["precision"], m["precision_ci"] = tp / (tp + fp), wilson(tp, tp + fp)
    if tp + fn:
        m["recall"], m["recall_ci"] = tp / (tp + fn), wilson(tp, tp + fn)
    if fp + tn:
        m["fpr"], m["fpr_ci"] = fp / (fp + tn), wilson(fp, fp + tn)
    if len(pos) and len(neg):
        m["auc"] = auc(pos, neg)
        rng = np.random.default_rng(seed)
        boots = [auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(500)]
        m["auc_ci"] = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))
        t1 = np.quantile(neg, 0.99, method="higher")       # with < 100 real clips: above the highest real score
        m["tpr_at_1fpr"] = float((pos > t1).mean())
    return m


# ----------------------------------------------------------------------------------------------------------
# data from the feature cache
def load_records(work: Path, commit: str | None = None) -> tuple[list[dict], str]:
    """Feature records of real clips, other generators and the fakes of one renderer commit (default: newest)."""
    feat = Path(work) / "features"
    if not (feat / "real").is_dir():
        raise FileNotFoundError(f"no feature cache in {work}")
    if commit is None:
        dirs = [d for d in feat.iterdir() if d.is_dir() and d.name not in ("real", "blend")]
        if not dirs:
            raise FileNotFoundError(f"no fakes in {work}")
        commit = max(dirs, key=lambda d: d.stat().st_mtime).name
    recs = [json.loads(p.read_text()) for d in (feat / "real", feat / "blend", feat / commit) if d.is_dir()
            for p in sorted(d.glob("*.json"))]
    return recs, commit


def table(records: list[dict]) -> list[dict]:
    """Flatten records into rows: {id, group, label, kind, variant, X (n_windows, F)}."""
    rows = []
    for rec in records:
        it = rec["item"]
        for v, X in rec["rows"].items():
            X = np.array([[np.nan if x is None else x for x in r] for r in X], np.float32)
            rows.append({"id": it["id"], "group": it["group"], "label": int(it["label"]), "kind": it["kind"],
                         "start": float(it["start"]), "variant": v, "X": X})
    return rows


def _stack(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.concatenate([r["X"] for r in rows])
    y = np.concatenate([np.full(len(r["X"]), r["label"]) for r in rows])
    owner = np.concatenate([np.full(len(r["X"]), i) for i, r in enumerate(rows)])
    return X, y, owner


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    w = np.ones(len(y), float)
    for c in (0, 1):
        n = (y == c).sum()
        if n:
            w[y == c] = len(y) / (2.0 * n)
    return w


def _clip_logit(model_like, X: np.ndarray) -> float:
    p = np.clip(model_like.predict_proba(np.asarray(X, np.float64))[:, 1], 1e-6, 1 - 1e-6)
    return float(np.mean(np.log(p / (1 - p))))


def cross_validate(rows: list[dict], folds: int = FOLDS, seed: int = 0, max_iter: int = 300,
                   min_samples_leaf: int = 8) -> np.ndarray:
    """Out-of-fold raw clip logits for `rows` (training kinds only), folds split by person (group)."""
    groups = np.array([r["group"] for r in rows])
    # folds by person, stratified: groups with real clips are dealt round-robin first, then the others,
    # so every fold trains on both classes
    has_real = {r["group"] for r in rows if r["label"] == 0}
    rng = np.random.default_rng(seed)
    uniq = sorted(set(groups))
    order = [g for g in rng.permutation(uniq) if g in has_real] + [g for g in rng.permutation(uniq) if g not in has_real]
    fold_of = {g: i % folds for i, g in enumerate(order)}
    out = np.full(len(rows), np.nan)
    for k in range(folds):
        test = np.array([fold_of[g] == k for g in groups])
        train_rows = [r for r, t in zip(rows, test) if not t]
        X, y, _ = _stack(train_rows)
        clf = D.fit_model(X, y, seed=seed, sample_weight=_balanced_weights(y), max_iter=max_iter,
                          min_samples_leaf=min_samples_leaf)
        for i in np.where(test)[0]:
            out[i] = _clip_logit(clf, rows[i]["X"])
    return out


def platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling (a, b): P(generated) = sigmoid(a * logit + b), fitted by logistic regression. Where the
    held-out logits do worse than chance (a <= 0: only on a handful of clips) the fit would turn the model's
    ranking upside down, so the logit is used as it is (1, 0)."""
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=10.0).fit(logits.reshape(-1, 1), y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return (a, b) if a > 0 else (1.0, 0.0)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, float)))


def choose_thresholds(real_scores: np.ndarray, target_fpr: float = 0.03) -> tuple[float, float]:
    """'generated' at or above the smallest score >= 0.5 whose false-positive rate on held-out real clips is at
    most `target_fpr`; 'real' below the score with a 15% false-positive rate (not above the first)."""
    s = np.sort(real_scores)
    hi = max(0.5, float(np.quantile(s, 1 - target_fpr, method="higher")) + 1e-4) if len(s) else 0.5
    lo = min(hi, max(0.2, float(np.quantile(s, 0.85)))) if len(s) else 0.35
    return round(lo, 4), round(min(hi, 0.999), 4)


def run(records: list[dict], commit: str, seed: int = 0, folds: int = FOLDS,
        max_iter: int = 300, min_samples_leaf: int = 8) -> tuple[dict, "D.DetectorModel"]:
    """The full evaluation + the final model (trained on every training row). Returns (eval record, model)."""
    rows = table(records)
    train_rows = [r for r in rows if r["kind"] != "other"]
    other_rows = [r for r in rows if r["kind"] == "other"]
    oof = cross_validate(train_rows, folds, seed, max_iter, min_samples_leaf)
    y = np.array([r["label"] for r in train_rows])
    a, b = platt(oof, y)
    score = _sig(a * oof + b)
    for r, s in zip(train_rows, score):
        r["score"] = float(s)
    X, yy, _ = _stack(train_rows)
    final = D.fit_model(X, yy, seed=seed, sample_weight=_balanced_weights(yy), max_iter=max_iter,
                        min_samples_leaf=min_samples_leaf)
    medians = np.nanmedian(X, axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0)
    for r in other_rows:
        r["score"] = float(_sig(a * _clip_logit(final, r["X"]) + b))

    def pick(kind=None, label=None, variant="clean", first_segment=True):
        return [r for r in train_rows + other_rows
                if (kind is None or (r["kind"] in kind if isinstance(kind, tuple) else r["kind"] == kind))
                and (label is None or r["label"] == label) and r["variant"] == variant
                and (not first_segment or r["start"] == 0)]

    real_all = np.array([r["score"] for r in train_rows if r["label"] == 0])
    lo, hi = choose_thresholds(real_all)
    own = ("paired", "portrait", "package")

    def sset(name, pos_rows, neg_rows, roc=True):
        pos = np.array([r["score"] for r in pos_rows])
        neg = np.array([r["score"] for r in neg_rows])
        d = {"name": name, "n_pos": len(pos), "n_neg": len(neg), "metrics": metrics(pos, neg, hi, seed)}
        if roc and len(pos) and len(neg):
            d["roc"] = roc_points(pos, neg)
        return d

    sets = [
        sset("(a) own clips, held out, as made", pick(own, 1), pick("real", 0)),
        sset("(a) own clips, CRF 28 + 50% downscale + crop", pick(own, 1, "hard"), pick("real", 0, "hard")),
        sset("(a) own clips, paired only (same person's real clip)", pick("paired", 1), pick("real", 0), roc=False),
        sset("(b) other generators (unseen), as published", pick("other", 1), pick("real", 0)),
        sset("(b) other generators, CRF 28 + 50% downscale + crop", pick("other", 1, "hard"), pick("real", 0, "hard")),
        sset("(c) held-out real clips, as published", [], pick("real", 0), roc=False),
        sset("(c) held-out real clips, every re-encoding and segment (rows not independent)", [],
             [r for r in train_rows if r["label"] == 0], roc=False),
    ]
    if pick("blend", 1):
        sets.append(sset("training aid: self-blended mouth pseudo-fakes, held out", pick("blend", 1), pick("real", 0),
                         roc=False))
    # accuracy vs re-encoding strength (paired fakes + real clips, held out)
    strength = {"labels": list(STRENGTH_LABELS), "accuracy": [], "recall": [], "specificity": []}
    for v in STRENGTH:
        m = metrics(np.array([r["score"] for r in pick(own, 1, v)]), np.array([r["score"] for r in pick("real", 0, v)]), hi)
        strength["accuracy"].append(m.get("accuracy"))
        strength["recall"].append(m.get("recall"))
        strength["specificity"].append(None if m.get("fpr") is None else 1 - m["fpr"])
    bins = np.linspace(0, 1, 21)
    hist = {"bins": bins.tolist(), "counts": {
        "real (held out)": np.histogram([r["score"] for r in pick("real", 0)], bins)[0].tolist(),
        "own generated (held out)": np.histogram([r["score"] for r in pick(own, 1)], bins)[0].tolist(),
        "other generators": np.histogram([r["score"] for r in pick("other", 1)], bins)[0].tolist()}}
    per_clip = {r["id"] + "|" + r["variant"]: round(r["score"], 4) for r in other_rows}
    n_clips = len({r["id"] for r in train_rows})
    meta = {"renderer_commit": commit, "n_train_windows": int(len(X)), "n_train_clips": n_clips, "folds": folds,
            "n_real_clips": len({r["id"].split(":")[1] for r in train_rows if r["label"] == 0}),
            "n_fake_clips": len({r["id"] for r in train_rows if r["label"] == 1}),
            "n_groups": len({r["group"] for r in train_rows})}
    ev = {"sets": sets, "strength": strength, "histograms": hist, "thresholds": {"real": lo, "generated": hi},
          "calibration": [a, b], "other_generator_scores": per_clip, "meta": meta,
          "feature_names": list(D.FEATURE_NAMES)}
    model = D.DetectorModel(estimator=final, feature_names=D.FEATURE_NAMES, calibration=(a, b), thresholds=(lo, hi),
                            medians=tuple(float(x) for x in medians), meta=meta)
    return ev, model


def summary(ev: dict) -> dict:
    """Test set name -> {accuracy, recall, auc, fpr} (rounded): a compact record of an evaluation."""
    out = {}
    for row in ev["sets"]:
        m = row["metrics"]
        out[row["name"]] = {k: round(m[k], 3) for k in ("accuracy", "recall", "auc", "fpr") if m.get(k) is not None}
    return out


def feature_importance(model: "D.DetectorModel", rows: list[dict], seed: int = 0) -> dict[str, float]:
    """Permutation importance of each cue group (drop in AUC when the group's features are shuffled)."""
    X, y, _ = _stack(rows)
    base = auc(model.score(X)[y == 1], model.score(X)[y == 0])
    rng = np.random.default_rng(seed)
    out = {}
    for g, names in D.CUE_GROUPS.items():
        idx = [D.FEATURE_NAMES.index(n) for n in names]
        Xp = X.copy()
        perm = rng.permutation(len(X))
        Xp[:, idx] = X[perm][:, idx]
        s = model.score(Xp)
        out[g] = round(base - auc(s[y == 1], s[y == 0]), 4)
    return out


# ----------------------------------------------------------------------------------------------------------
def cli(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m safety.detector evaluate",
                                 description="Held-out evaluation of the bundled detector.")
    ap.add_argument("--json", action="store_true", help="print the evaluation record as JSON")
    ap.add_argument("--work", default=str(DEFAULT_WORK), help="feature cache of `python -m tools.evals.train`")
    ap.add_argument("--commit", help="renderer commit whose fakes to use (default: the newest)")
    ap.add_argument("--shipped", action="store_true", help="print the shipped numbers (assets/detector_eval.json)")
    args = ap.parse_args(argv)
    if not args.shipped:
        try:
            records, commit = load_records(Path(args.work), args.commit)
        except FileNotFoundError:
            records = None
        if records:
            ev, _ = run(records, commit)
            print(json.dumps(ev, default=float) if args.json else D.report_markdown(ev))
            return 0
        print(f"(no feature cache in {args.work}: showing the shipped evaluation)", file=sys.stderr)
    ev = D._load_eval()
    if args.json:
        print(json.dumps(ev))
    else:
        print(D.report_markdown(ev))
    return 0
