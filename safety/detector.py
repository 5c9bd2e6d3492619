"""The bundled deepfake detector: is this talking-head clip generated?

Two independent kinds of evidence:
  1. our own invisible watermark (`safety.watermark`; proof, but only for clips this product made and whose
     mark survived), and
  2. a forensic score from a small model on cues measured in the first seconds of the clip
     (`safety.detector_features`: head and mouth motion, blinks and gaze, how the mouth follows the speech,
     mouth-region appearance over time, face texture against its surroundings, skin colour rhythm). It needs
     no mark and is evaluated on generators it never saw (leave-one-generator-out: README, docs/detector.md).

This module is inference only: the model file (assets/detector.pkl), a verdict with the cues that drove it,
and the `python -m safety.detector` commands. Training, the evaluation and batch scans live in tools/
(`python -m tools.evals.train` re-trains the shipped model in one command).

    python -m safety.detector detect CLIP [CLIP ...] [--json] [--no-watermark] [--out results.jsonl [--ray auto]]
    python -m safety.detector evaluate [--json] [--shipped]
    python -m safety.detector report
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from vasa_core import ASSETS   # the one locator of the shipped files (checkout or installed wheel); imports nothing heavy

from .detector_features import (ANALYSIS_SECONDS, CUE_GROUPS, FEATURE_NAMES, ClipSignals,  # noqa: F401 (public API)
                                DetectorError, clip_features, extract_signals, features)
from .errors import InputError

__all__ = ["ANALYSIS_SECONDS", "CUE_GROUPS", "FEATURE_NAMES", "ClipSignals", "DetectorError", "DetectorModel",
           "EitherEstimator",
           "DetectorResult", "clip_features", "detect", "extract_signals", "features", "list_clips", "load_model",
           "report", "report_markdown", "save_model", "scan_one", "cli", "main"]

ROOT = Path(__file__).resolve().parent.parent   # the checkout (or site-packages)
MODEL_PATH = ASSETS / "detector.pkl"
EVAL_PATH = ASSETS / "detector_eval.json"
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"}


# ----------------------------------------------------------------------------------------------------------
# model
class EitherEstimator:
    """Two fitted classifiers read as one: P(generated) = 1 - (1 - p_generic) (1 - p_own) (noisy-or).

    generic: trained on real clips against many generators, each weighted alike (what transfers);
    own:     trained on real clips against our own renderer's unmarked clips only (a watermark-stripped clip
             of ours is the case the product must catch, and a generic model trained on ~45 generators gives
             one of them too little weight to learn it).
    Either is a scikit-learn classifier with predict_proba on (n, F) float arrays with NaN."""

    def __init__(self, generic, own):
        self.generic, self.own = generic, own

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        pg = self.generic.predict_proba(X)[:, 1]
        po = self.own.predict_proba(X)[:, 1] if self.own is not None else np.zeros(len(X))
        p = 1.0 - (1.0 - pg) * (1.0 - po)
        return np.stack([1.0 - p, p], axis=1)


@dataclass(frozen=True)
class DetectorModel:
    """A trained forensic model.

    estimator: scikit-learn classifier with predict_proba on (n, len(feature_names)) float arrays (NaN allowed)
    calibration: (a, b) of Platt scaling: score = sigmoid(a * logit(p) + b), fitted on held-out predictions
    thresholds: (real_below, generated_at_or_above) on the calibrated score; in between is "uncertain"
    medians: per-feature medians of the real training clips (to measure how much each cue group moved a score)
    meta: training facts (renderer version, data counts, date, held-out rates at the thresholds)
    """
    estimator: object
    feature_names: tuple[str, ...]
    calibration: tuple[float, float] = (1.0, 0.0)
    thresholds: tuple[float, float] = (0.35, 0.5)
    medians: tuple[float, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def renderer_version(self) -> str:
        """The renderer version (vasa_core.render.RENDERER_VERSION) whose fakes the model was trained on."""
        return str(self.meta.get("renderer_version", "unknown"))

    def raw_logit(self, X: np.ndarray) -> np.ndarray:
        p = self.estimator.predict_proba(np.asarray(X, np.float64))[:, 1]
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of 'generated' per row of X (n, F)."""
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * self.raw_logit(X) + b)))

    def score_clip(self, X: np.ndarray) -> float:
        """One clip's score from its rows (n, F): the mean calibrated logit of its rows."""
        s = np.clip(self.score(X), 1e-6, 1 - 1e-6)
        z = float(np.mean(np.log(s / (1 - s))))
        return 1.0 / (1.0 + math.exp(-z))

    def cue_effects(self, X: np.ndarray) -> dict[str, float]:
        """How much each cue group moved the clip score: score - score with that group set to the real training
        clips' medians (positive = that group pushed towards 'generated')."""
        base = self.score_clip(X)
        out = {}
        med = np.asarray(self.medians, np.float32) if self.medians else np.nanmedian(X, 0)
        for group, names in CUE_GROUPS.items():
            idx = [self.feature_names.index(n) for n in names if n in self.feature_names]
            Xn = np.array(X, np.float32, copy=True)
            Xn[:, idx] = med[idx]
            out[group] = round(base - self.score_clip(Xn), 4)
        return out

    def verdict(self, score: float) -> str:
        lo, hi = self.thresholds
        return "generated" if score >= hi else ("real" if score < lo else "uncertain")


def save_model(model: DetectorModel, path: str | Path = MODEL_PATH) -> None:
    with open(path, "wb") as fh:
        pickle.dump({"estimator": model.estimator, "feature_names": list(model.feature_names),
                     "calibration": list(model.calibration), "thresholds": list(model.thresholds),
                     "medians": list(model.medians), "meta": model.meta}, fh, protocol=5)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> DetectorModel:
    with open(path, "rb") as fh:           # the project's own file (assets/), never a user upload
        d = pickle.load(fh)
    return DetectorModel(estimator=d["estimator"], feature_names=tuple(d["feature_names"]),
                         calibration=tuple(d["calibration"]), thresholds=tuple(d["thresholds"]),
                         medians=tuple(d.get("medians") or ()), meta=d.get("meta") or {})


def load_model(path: str | Path = MODEL_PATH) -> DetectorModel:
    """The shipped model (assets/detector.pkl), loaded once per process."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError("The detector model is missing; retrain it with `python -m tools.evals.train`.")
    model = _load_cached(str(path), path.stat().st_mtime)
    if tuple(model.feature_names) != FEATURE_NAMES:
        raise DetectorError("The detector model was trained on other features; retrain it with "
                            "`python -m tools.evals.train`.")
    return model


# ----------------------------------------------------------------------------------------------------------
# scoring a clip
@dataclass(frozen=True)
class DetectorResult:
    """What the detector says about one clip.

    fake_score: in [0, 1]; 1.0 when our watermark is found (proof), else the forensic score
    verdict: "generated" | "real" | "uncertain"
    watermark: {"found": bool, "payload": hex or None, "confidence": float} (public facts only), or None when
        not checked
    forensic_score: calibrated probability from the forensic model (never uses the watermark)
    cues: cue group -> how much it moved the forensic score (+ towards generated)
    seconds: wall-clock seconds the check took
    """
    fake_score: float
    verdict: str
    watermark: dict | None
    forensic_score: float
    cues: dict[str, float]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def drivers(self, n: int = 3) -> list[str]:
        """The cue groups that moved the score most, strongest first, e.g. ['lip_audio +0.21', ...]."""
        top = sorted(self.cues.items(), key=lambda kv: -abs(kv[1]))[:n]
        return [f"{k} {v:+.2f}" for k, v in top]


class _WatermarkSink:
    """Feeds decoded luma frames to the watermark detector (`safety.watermark.Accumulator`), at most
    `safety.watermark.MAX_FRAMES` of them, during the detector's own decoding pass."""

    def __init__(self):
        from safety import watermark as wm
        self.wm, self.acc, self.failed = wm, wm.Accumulator(), False

    def __call__(self, luma: np.ndarray) -> None:
        if not self.failed and self.acc.n < self.wm.MAX_FRAMES:
            try:
                self.acc.add(luma)
            except Exception:          # e.g. a size change mid-stream: no watermark verdict, no crash
                self.failed = True

    def facts(self) -> dict:
        """Public facts only: found, payload id, confidence (never the audit record)."""
        det = None if self.failed else self.acc.result()
        if det is None or not det.found:
            return {"found": False, "payload": None, "confidence": 0.0}
        return {"found": True, "payload": self.wm.payload_hex(det.payload), "confidence": float(det.confidence)}


def detect(path: str | Path, *, check_watermark: bool = True, model: DetectorModel | None = None) -> DetectorResult:
    """Score one clip. Raises DetectorError with one sentence for files that are not readable videos."""
    t0 = time.perf_counter()
    p = Path(path)
    if not p.is_file():
        raise DetectorError("The file does not exist or is not a regular file.")
    model = model or load_model()
    sink = _WatermarkSink() if check_watermark else None
    X = clip_features(p, luma_sink=sink)
    forensic = model.score_clip(X)
    cues = model.cue_effects(X)
    wmk = sink.facts() if sink is not None else None
    if wmk and wmk["found"]:
        score, verdict = 1.0, "generated"
    else:
        score, verdict = forensic, model.verdict(forensic)
    return DetectorResult(fake_score=round(float(score), 4), verdict=verdict, watermark=wmk,
                          forensic_score=round(float(forensic), 4), cues=cues,
                          seconds=round(time.perf_counter() - t0, 3))


def list_clips(items: Iterable[str]) -> list[str]:
    """Expand arguments into clip paths: a folder -> its video files (recursively, sorted); a .txt/.lst file ->
    one path per line; anything else -> itself."""
    out: list[str] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(str(q) for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
            out += [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        else:
            out.append(str(p))
    return out


def scan_one(path: str, check_watermark: bool = True) -> dict:
    """One JSON line for a batch scan: {"path", ...DetectorResult} or {"path", "error"}; never raises."""
    try:
        return {"path": path, **detect(path, check_watermark=check_watermark).to_dict()}
    except InputError as e:
        return {"path": path, "error": str(e)}
    except Exception as e:  # one bad file never stops a run
        return {"path": path, "error": f"The clip could not be analysed ({type(e).__name__})."}


# ----------------------------------------------------------------------------------------------------------
# the evaluation report (assets/detector_eval.json; no research media needed)
def report_markdown(ev: dict | None = None) -> str:
    """The leave-one-generator-out table and the own-clips table (markdown) of the shipped evaluation."""
    from .detector_report import report_markdown as md
    return md(ev if ev is not None else _load_eval())


def report(eval_path: str | Path = EVAL_PATH):
    """(markdown, [matplotlib Figure]) of the shipped evaluation (the demo's Detector report tab)."""
    from .detector_report import report_figures, report_markdown as md
    ev = _load_eval(eval_path)
    return md(ev), report_figures(ev)


def _load_eval(path: str | Path = EVAL_PATH) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DetectorError("No evaluation has been recorded yet (assets/detector_eval.json is missing).")
    return json.loads(p.read_text())


# ----------------------------------------------------------------------------------------------------------
# command line
def _summary(path: str, r: DetectorResult) -> str:
    wm = r.watermark
    wtxt = "not checked" if wm is None else (f"FOUND payload {wm['payload']}" if wm["found"] else "not found")
    return (f"{path}: {r.verdict}  fake_score {r.fake_score:.3f}  forensic {r.forensic_score:.3f}  "
            f"watermark {wtxt}  ({r.seconds:.1f} s)\n    strongest cues: {', '.join(r.drivers())}")


def cli(argv: list[str]) -> int:
    """`detect CLIP [CLIP ...] [--json]` or `detect DIR_OR_LIST ... --out results.jsonl [--ray auto|ADDRESS]`.
    Exit code: 0 when every clip was analysed, 2 when one could not be."""
    ap = argparse.ArgumentParser(prog="python -m safety.detector detect",
                                 description="Is a clip generated? Our watermark plus a forensic model.")
    ap.add_argument("clips", nargs="+", help="video files, folders or .txt lists of paths")
    ap.add_argument("--json", action="store_true", help="print one JSON object per clip")
    ap.add_argument("--out", help="write JSON lines here (resumable: clips already in it are skipped)")
    ap.add_argument("--ray", metavar="auto|ADDRESS", help="run the clips as Ray tasks on that cluster")
    ap.add_argument("--no-watermark", action="store_true", help="skip the watermark check (forensic model only)")
    args = ap.parse_args(list(argv[1:]) if argv and argv[0] == "detect" else list(argv))
    paths = list_clips(args.clips)
    if args.out or args.ray:
        from tools.detector_scan import scan as _scan, scan_iter
        if args.out:
            n = _scan(paths, args.out, args.ray, not args.no_watermark)
            print(f"{n} clip(s) scored into {args.out}")
            return 0
        rows = list(scan_iter(paths, args.ray, not args.no_watermark))
    else:
        rows = [scan_one(p, not args.no_watermark) for p in paths]
    bad = 0
    for row in rows:
        if "error" in row:
            bad += 1
            print(json.dumps(row) if args.json else f"{row['path']}: error: {row['error']}")
            continue
        if args.json:
            print(json.dumps(row, default=str))
        else:
            r = DetectorResult(**{k: row[k] for k in DetectorResult.__dataclass_fields__})
            print(_summary(row["path"], r))
    return 2 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m safety.detector detect|evaluate|report ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "detect":
        return cli(argv)
    if argv and argv[0] == "evaluate":
        from tools.evals.evaluate import cli as eval_cli
        return eval_cli(argv[1:])
    if argv and argv[0] == "report":
        print(report_markdown())
        return 0
    print("usage: python -m safety.detector detect CLIP ... | evaluate [--json] [--shipped] | report",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
