"""Leave-one-generator-out evaluation of the detector, and the shipped model's training.

    .venv/bin/python -m safety.detector evaluate [--work /tmp/detector] [--media ../shared/media] [--json]
    .venv/bin/python -m tools.evals.evaluate [--work /tmp/detector] [--model hgb|logreg] [--ablation] [--out F]

Protocol (everything held out is scored by a model that never saw it):
  - real clips are split into FOLDS folds by person; our own fakes go with the person whose frame made them;
    other generators' clips are dealt into the same folds by clip;
  - for real fold k and generator g: a model trained on the real clips outside fold k and the fakes of every
    generator except g (and none of fold k's own fakes) scores g's clips of fold k and fold k's real clips;
    AUC per generator compares g's scores with the real clips' scores from the same models;
  - the threshold and the Platt calibration of fold k come from an inner cross-validation on fold k's
    training rows only (split by person and by generator); real FPR is measured on fold k's real clips with it;
  - "own clips held out by person" are scored by fold k's model trained on every generator (ours included,
    other people's fakes only).
Intervals: 95% clip bootstrap for AUC (all variants of a clip move together), Wilson for rates.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from safety.detector_report import TARGET_FPR, UNCERTAIN_FPR, report_markdown
from tools.evals.data import DEFAULT_WORK, VARIANTS

FOLDS = 5
INNER_FOLDS = 3
OWN_KIND: str | None = None   # "hgb": add a real-vs-ours model (measured: own AUC 0.90 but generic LOGO 0.64 -> 0.57)
VARIANT_LABELS = {"clean": "as made", "crf23": "CRF 23", "crf28": "CRF 28", "crf35": "CRF 35",
                  "down": "50% downscale", "crop": "crop to 60%", "fps": "frame rate 15/30",
                  "hard": "CRF 28 + 50% + crop"}


# ----------------------------------------------------------------------------------------------------------
# features of the cached signals
def _features_job(path: str) -> list | None:
    import os
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from safety.detector_features import ClipSignals, features
    try:
        return [None if not np.isfinite(v) else float(v) for v in features(ClipSignals.load(path))]
    except Exception as e:
        print(f"\n  features of {path} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def feature_version() -> str:
    """Hash of the feature code: cached feature rows are recomputed when it changes."""
    import safety.detector_features as F
    return hashlib.sha1(Path(F.__file__).read_bytes()).hexdigest()[:10]


def load_rows(media: Path, work: Path = DEFAULT_WORK, workers: int = 2, version: str | None = None) -> list[dict]:
    """Rows {id, kind, generator, group, label, variant, x (F,)} of every item whose signals are cached in WORK
    (features cached in WORK/features-<feature version>.json)."""
    from multiprocessing import get_context

    from tools.evals.data import _init_worker, list_items, signal_path
    work = Path(work)
    items = list_items(Path(media), work, make_fakes=False, version=version)
    have = [(it, v, str(signal_path(work, it, v))) for it in items for v in it.variants]
    have = [h for h in have if Path(h[2]).exists()]
    cache_path = work / f"features-{feature_version()}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    todo = sorted({p for _, _, p in have if p not in cache})
    if todo:
        t0 = time.time()
        with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for i, (p, x) in enumerate(zip(todo, pool.imap(_features_job, todo, chunksize=4))):
                cache[p] = x
                if i % 20 == 0 or i == len(todo) - 1:
                    print(f"\rfeatures {i + 1}/{len(todo)} ({time.time() - t0:.0f} s)", end="", file=sys.stderr,
                          flush=True)
        print(file=sys.stderr)
        cache_path.write_text(json.dumps(cache))
    rows = []
    for it, v, p in have:
        x = cache.get(p)
        if x is None:
            continue
        rows.append({"id": it.id, "kind": it.kind, "generator": it.generator, "group": it.group,
                     "label": int(it.label), "variant": v,
                     "x": np.array([np.nan if a is None else a for a in x], np.float32)})
    return rows


# ----------------------------------------------------------------------------------------------------------
# models
# the cue groups the shipped model uses: chosen by the leave-one-generator-out mean AUC (each group alone and a
# few unions, measured with this protocol, so the choice saw the held-out generators; see docs/detector.md)
USED_GROUPS: tuple[str, ...] = ("lip_audio", "skin_colour_rhythm")


def used_columns(groups=USED_GROUPS) -> np.ndarray:
    from safety.detector_features import CUE_GROUPS, FEATURE_NAMES
    return np.array([FEATURE_NAMES.index(n) for g in groups for n in CUE_GROUPS[g]])


def make_estimator(kind: str = "logreg", seed: int = 0, cols: np.ndarray | None = None):
    """An unfitted classifier taking (n, F) float arrays with NaN, using the feature columns `cols`
    (default: those of USED_GROUPS)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    cols = used_columns() if cols is None else np.asarray(cols)
    select = ColumnTransformer([("cues", "passthrough", [int(c) for c in cols])], remainder="drop")
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier
        clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=8,
                                             min_samples_leaf=10, l2_regularization=1.0, max_features=0.5,
                                             random_state=seed)
        return Pipeline([("select", select), ("clf", clf)])
    if kind == "logreg":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        return Pipeline([("select", select), ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                         ("scale", StandardScaler()), ("clf", LogisticRegression(C=0.1, max_iter=2000))])
    raise ValueError(f"unknown model kind {kind!r}")


def _weights(rows: list[dict]) -> np.ndarray:
    """The real class weighs as much as the generated one, and within it every generator the same, whatever
    its clip count."""
    w = np.ones(len(rows))
    gens = {}
    for i, r in enumerate(rows):
        gens.setdefault(r["generator"] if r["label"] else "", []).append(i)
    n_gen = max(1, len([g for g in gens if g]))
    for g, idx in gens.items():
        w[idx] = (1.0 if g == "" else 1.0 / n_gen) / len(idx)
    return w * len(rows)


def _fit_one(rows: list[dict], kind: str, cols, seed: int):
    X = np.stack([r["x"] for r in rows]).astype(np.float64)
    y = np.array([r["label"] for r in rows])
    est = make_estimator(kind, seed, cols)
    est.fit(X, y, clf__sample_weight=_weights(rows))
    return est


def fit(rows: list[dict], kind: str, cols: np.ndarray | None = None, seed: int = 0, own_kind: str | None = OWN_KIND):
    """The detector's estimator: a generic model (`kind`, every generator alike) and, when our own clips are
    among the rows and `own_kind` is set, a model of real vs ours only, read together
    (`safety.detector.EitherEstimator`)."""
    from safety.detector import EitherEstimator
    generic = _fit_one(rows, kind, cols, seed)
    own_rows = [r for r in rows if r["label"] == 0 or r["generator"] == "ours"]
    if not own_kind or not any(r["generator"] == "ours" for r in rows) or not any(r["label"] == 0 for r in rows):
        return EitherEstimator(generic, None)
    return EitherEstimator(generic, _fit_one(own_rows, own_kind, cols, seed))


def logits(est, rows: list[dict], cols: np.ndarray | None = None) -> np.ndarray:
    """Raw logits of an estimator (it selects its own columns; `cols` is accepted for symmetry with `fit`)."""
    if not rows:
        return np.zeros(0)
    X = np.stack([r["x"] for r in rows]).astype(np.float64)
    p = np.clip(est.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fold(key: str, k: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % k


def assign_folds(rows: list[dict], k: int = FOLDS) -> np.ndarray:
    """Fold of each row: real clips and our fakes by person, other generators' clips by clip; people (and
    clips) are dealt round-robin in a hashed order, so every fold gets its share of both."""
    def key(r):
        return r["group"] if r["kind"] in ("real", "ours") else r["id"]

    def deal(keys):
        return {x: i % k for i, x in enumerate(sorted(keys, key=lambda x: _fold("deal|" + x, 1 << 30)))}
    people = deal({key(r) for r in rows if r["label"] == 0})
    rest = deal({key(r) for r in rows if key(r) not in people})
    return np.array([people.get(key(r), rest.get(key(r), 0)) for r in rows])


def platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=10.0).fit(z.reshape(-1, 1), y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return (a, b) if a > 0 else (1.0, 0.0)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, float)))


def thresholds_from(real_scores: np.ndarray) -> tuple[float, float]:
    """('real' below lo, 'generated' at or above hi) from held-out real scores of training folds."""
    s = np.sort(real_scores)
    hi = float(np.quantile(s, 1 - TARGET_FPR, method="higher")) + 1e-4 if len(s) else 0.5
    lo = float(np.quantile(s, 1 - UNCERTAIN_FPR)) if len(s) else 0.35
    hi = min(max(hi, 0.5), 0.999)
    return round(min(lo, hi), 4), round(hi, 4)


def inner_calibration(rows: list[dict], kind: str, cols=None, folds: int = INNER_FOLDS, seed: int = 0):
    """Platt (a, b) and thresholds from a cross-validation inside `rows` (split by person and by generator)."""
    def key(r):
        return r["group"] if r["label"] == 0 or r["kind"] == "ours" else r["generator"]
    oof = np.full(len(rows), np.nan)
    fk = np.array([_fold("inner|" + key(r), folds) for r in rows])
    for k in range(folds):
        tr = [r for r, f in zip(rows, fk) if f != k]
        if len({r["label"] for r in tr}) < 2:
            continue
        est = fit(tr, kind, cols, seed)
        te = np.where(fk == k)[0]
        oof[te] = logits(est, [rows[i] for i in te], cols)
    good = np.isfinite(oof)
    y = np.array([r["label"] for r in rows])
    a, b = platt(oof[good], y[good]) if good.sum() > 4 and len(set(y[good])) == 2 else (1.0, 0.0)
    s = _sig(a * oof + b)
    lo, hi = thresholds_from(s[good & (y == 0)])
    return (a, b), (lo, hi)


def logo(rows: list[dict], kind: str = "logreg", cols=None, folds: int = FOLDS, seed: int = 0,
         generators: list[str] | None = None, progress: bool = True) -> dict:
    """The leave-one-generator-out scores. Returns {"gen": {g: {"pos": [(id, variant, score)], "neg": [...],
    "hi": [thresholds per pos]}}, "own": ..., "real": [(id, variant, score, hi)], "thresholds": [...]}"""
    gens = generators or sorted({r["generator"] for r in rows if r["label"] == 1})
    fk = assign_folds(rows, folds)
    out = {"gen": {g: {"pos": [], "neg": []} for g in gens}, "own": [], "real": [], "folds": []}
    t0 = time.time()
    for k in range(folds):
        train_k = [r for r, f in zip(rows, fk) if not (f == k and r["kind"] in ("real", "ours"))]
        test_real = [r for r, f in zip(rows, fk) if f == k and r["label"] == 0]
        if len({r["label"] for r in train_k}) < 2 or not test_real:
            continue                                              # only on tiny data (the tests')
        (a, b), (lo, hi) = inner_calibration(train_k, kind, cols, seed=seed)
        out["folds"].append({"k": k, "calibration": [a, b], "thresholds": [lo, hi], "n_real_test": len(test_real)})
        est = fit(train_k, kind, cols, seed)                      # every generator, other people's fakes
        s_real = _sig(a * logits(est, test_real, cols) + b)
        out["real"] += [(r["id"], r["variant"], float(s), lo, hi) for r, s in zip(test_real, s_real)]
        own = [r for r, f in zip(rows, fk) if f == k and r["kind"] == "ours"]
        out["own"] += [(r["id"], r["variant"], float(s), lo, hi)
                       for r, s in zip(own, _sig(a * logits(est, own, cols) + b))]
        for g in gens:
            tr = [r for r in train_k if r["generator"] != g]
            if len({r["label"] for r in tr}) < 2:
                continue
            est_g = fit(tr, kind, cols, seed)
            pos = [r for r, f in zip(rows, fk) if f == k and r["generator"] == g]
            out["gen"][g]["pos"] += [(r["id"], r["variant"], float(s), lo, hi)
                                     for r, s in zip(pos, _sig(a * logits(est_g, pos, cols) + b))]
            out["gen"][g]["neg"] += [(r["id"], r["variant"], float(s), lo, hi)
                                     for r, s in zip(test_real, _sig(a * logits(est_g, test_real, cols) + b))]
        if progress:
            print(f"\rLOGO fold {k + 1}/{folds} ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------------------------------
# metrics
def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, c - h), min(1.0, c + h)]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative; ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    allv = np.concatenate([pos, neg])
    from scipy.stats import rankdata
    r = rankdata(allv)
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def clip_bootstrap_auc(pos: list, neg: list, reps: int = 1000, seed: int = 0) -> list[float] | None:
    """95% interval of the AUC, resampling clips (a clip's variants together) on both sides."""
    def by_clip(rows):
        d: dict[str, list[float]] = {}
        for r in rows:
            d.setdefault(r[0], []).append(r[2])
        return [np.array(v) for v in d.values()]
    P, N = by_clip(pos), by_clip(neg)
    if len(P) < 1 or len(N) < 2:
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        p = np.concatenate([P[i] for i in rng.integers(0, len(P), len(P))])
        n = np.concatenate([N[i] for i in rng.integers(0, len(N), len(N))])
        vals.append(auc(p, n))
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def roc_points(pos: np.ndarray, neg: np.ndarray, n: int = 60) -> dict:
    thr = np.unique(np.quantile(np.concatenate([pos, neg]), np.linspace(0, 1, n)))[::-1]
    return {"fpr": [0.0] + [float((neg >= t).mean()) for t in thr] + [1.0],
            "tpr": [0.0] + [float((pos >= t).mean()) for t in thr] + [1.0]}


def summarise(res: dict, rows: list[dict]) -> dict:
    """The evaluation record (what assets/detector_eval.json holds) from `logo` scores."""
    n_clips = {}
    for r in rows:
        if r["label"]:
            n_clips.setdefault(r["generator"], set()).add(r["id"])
    per_gen = []
    for g, d in res["gen"].items():
        if not d["pos"]:
            continue
        pos = np.array([p[2] for p in d["pos"]])
        neg = np.array([p[2] for p in d["neg"]])
        clean = np.array([p[2] for p in d["pos"] if p[1] == "clean"])
        neg_clean = np.array([p[2] for p in d["neg"] if p[1] == "clean"])
        hard = np.array([p[2] for p in d["pos"] if p[1] == "hard"])
        neg_hard = np.array([p[2] for p in d["neg"] if p[1] == "hard"])
        caught = sum(p[2] >= p[4] for p in d["pos"])
        per_gen.append({"generator": g, "clips": len(n_clips.get(g, ())), "rows": len(pos),
                        "auc": auc(pos, neg), "auc_ci": clip_bootstrap_auc(d["pos"], d["neg"]),
                        "auc_as_made": auc(clean, neg_clean), "auc_hard": auc(hard, neg_hard),
                        "recall": caught / len(pos), "recall_ci": wilson(int(caught), len(pos)),
                        "mean_score": float(pos.mean())})
    per_gen.sort(key=lambda d: d["generator"].lower())
    others = [d for d in per_gen if d["generator"] != "ours" and np.isfinite(d["auc"])]
    aucs = np.array([d["auc"] for d in others] or [math.nan])
    # pooled: every held-out generator clip against the real clips scored by the same (g, k) models
    pooled_pos = [p for g, d in res["gen"].items() if g != "ours" for p in d["pos"]]
    pooled_neg = [p for g, d in res["gen"].items() if g != "ours" for p in d["neg"]]
    w_auc = float(np.sum([d["auc"] * d["rows"] for d in others]) / max(1, sum(d["rows"] for d in others)))
    rng = np.random.default_rng(1)
    boot = []
    for _ in range(2000):
        boot.append(float(np.mean(rng.choice(aucs, len(aucs)))))
    real = res["real"]
    fp = sum(r[2] >= r[4] for r in real)
    unc = sum(r[3] <= r[2] < r[4] for r in real)
    per_variant = {}
    for v in VARIANTS:
        rr = [r for r in real if r[1] == v]
        k = sum(r[2] >= r[4] for r in rr)
        own = [r for r in res["own"] if r[1] == v]
        ko = sum(r[2] >= r[4] for r in own)
        gp = [p for p in pooled_pos if p[1] == v]
        gn = [p for p in pooled_neg if p[1] == v]
        per_variant[v] = {"label": VARIANT_LABELS[v], "real_clips": len(rr), "real_fpr": k / len(rr) if rr else None,
                          "real_fpr_ci": wilson(int(k), len(rr)), "own_recall": ko / len(own) if own else None,
                          "own_clips": len(own), "other_auc": auc([p[2] for p in gp], [p[2] for p in gn]) if gp else None,
                          "other_recall": (sum(p[2] >= p[4] for p in gp) / len(gp)) if gp else None}
    own_hard = [r for r in res["own"] if r[1] == "hard"]
    own_all = res["own"]
    k_h = sum(r[2] >= r[4] for r in own_hard)
    k_a = sum(r[2] >= r[4] for r in own_all)
    own_auc = auc([r[2] for r in own_all], [r[2] for r in real])
    return {
        "per_generator": per_gen,
        "headline": {
            "generators": len(others), "mean_auc": float(np.mean(aucs)),
            "mean_auc_ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "min_auc": float(np.min(aucs)), "min_auc_generator": others[int(np.argmin(aucs))]["generator"] if others else "",
            "generators_below_0.7": [d["generator"] for d in others if d["auc"] < 0.7],
            "pooled_auc_weighted": w_auc,
            "pooled_recall": float(np.mean([p[2] >= p[4] for p in pooled_pos])) if pooled_pos else None,
            "real_clips": len({r[0] for r in real}), "real_rows": len(real),
            "real_fpr": fp / max(1, len(real)), "real_fpr_ci": wilson(int(fp), len(real)),
            "real_uncertain": unc / max(1, len(real)),
            "own_hard_recall": k_h / len(own_hard) if own_hard else None,
            "own_hard_recall_ci": wilson(int(k_h), len(own_hard)), "own_hard_clips": len(own_hard),
            "own_recall_all_variants": k_a / len(own_all) if own_all else None, "own_auc": own_auc,
        },
        "per_variant": per_variant,
        "folds": res["folds"],
        "histograms": _histograms(pooled_pos, real, own_all),
        "roc": {"other generators (pooled, LOGO)": roc_points(np.array([p[2] for p in pooled_pos]),
                                                              np.array([p[2] for p in pooled_neg])),
                "own clips (held out by person)": roc_points(np.array([r[2] for r in own_all]),
                                                              np.array([r[2] for r in real]))} if own_all else {},
    }


def _histograms(pos, real, own) -> dict:
    bins = np.linspace(0, 1, 21)
    return {"bins": bins.tolist(), "counts": {
        "real (held out)": np.histogram([r[2] for r in real], bins)[0].tolist(),
        "other generators (left out)": np.histogram([p[2] for p in pos], bins)[0].tolist(),
        "own clips (held out)": np.histogram([r[2] for r in own], bins)[0].tolist()}}


def group_ablation(rows: list[dict], kind: str, folds: int = FOLDS) -> dict[str, dict]:
    """Each cue group alone: the leave-one-generator-out mean and pooled AUC of a model on its features only."""
    from safety.detector_features import CUE_GROUPS, FEATURE_NAMES
    out = {}
    for g, names in CUE_GROUPS.items():
        idx = np.array([FEATURE_NAMES.index(n) for n in names])
        h = summarise(logo(rows, kind, idx, folds, progress=False), rows)["headline"]
        out[g] = {"alone_mean_auc": round(h["mean_auc"], 3), "alone_pooled_auc": round(h["pooled_auc_weighted"], 3)}
        print(f"  {g}: {out[g]}", file=sys.stderr)
    return out


def cli(argv: list[str]) -> int:
    """`python -m safety.detector evaluate [--json] [--shipped] [--work DIR] [--media DIR]`: re-run the
    leave-one-generator-out evaluation from the signal cache when there is one, else print the shipped one."""
    ap = argparse.ArgumentParser(prog="python -m safety.detector evaluate",
                                 description="Leave-one-generator-out evaluation of the bundled detector.")
    ap.add_argument("--json", action="store_true", help="print the evaluation record as JSON")
    ap.add_argument("--shipped", action="store_true", help="print the shipped numbers (assets/detector_eval.json)")
    ap.add_argument("--media", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "media"))
    ap.add_argument("--work", default=str(DEFAULT_WORK))
    ap.add_argument("--model", default="logreg", choices=("hgb", "logreg"))
    args = ap.parse_args(argv)
    from safety import detector as D
    if args.shipped or not (Path(args.work) / "signals").is_dir() or not Path(args.media).is_dir():
        ev = D._load_eval()
        if not args.shipped:
            print("(no signal cache or research media here: the shipped evaluation)", file=sys.stderr)
    else:
        rows = load_rows(Path(args.media), Path(args.work))
        shipped = D._load_eval() if D.EVAL_PATH.is_file() else {}
        ev = summarise(logo(rows, args.model), rows)
        ev.update({k: shipped[k] for k in ("thresholds", "meta", "speed", "cue_groups") if k in shipped})
    if args.json:
        print(json.dumps(ev, indent=1, default=float))
    else:
        print(report_markdown(ev))
        sp = ev.get("speed") or {}
        if sp:
            print(f"\nSpeed: {sp.get('forensic_seconds')} s for {sp.get('analysed_seconds')} s of a "
                  f"{sp.get('size', '512x512')} clip ({sp.get('forensic_x_realtime')}x real time, forensic only; "
                  f"{sp.get('with_watermark_x_realtime')}x with the watermark check), measured by "
                  f"`python -m tools.evals.train`.")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.evals.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "media"))
    ap.add_argument("--work", default=str(DEFAULT_WORK))
    ap.add_argument("--model", default="logreg", choices=("hgb", "logreg"))
    ap.add_argument("--folds", type=int, default=FOLDS)
    ap.add_argument("--ablation", action="store_true", help="also the cue-group ablation (slow)")
    ap.add_argument("--out", help="write the evaluation record (JSON) here")
    args = ap.parse_args(argv)
    rows = load_rows(Path(args.media), Path(args.work))
    print(f"{len(rows)} rows: {sum(r['label'] == 0 for r in rows)} real, {sum(r['label'] == 1 for r in rows)} generated",
          file=sys.stderr)
    t0 = time.time()
    ev = summarise(logo(rows, args.model, folds=args.folds), rows)
    ev["seconds"] = round(time.time() - t0)
    if args.ablation:
        ev["cue_groups"] = group_ablation(rows, args.model, args.folds)
    print(report_markdown(ev))
    if args.out:
        Path(args.out).write_text(json.dumps(ev, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
