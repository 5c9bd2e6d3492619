"""Bulk rendering: many portrait + audio jobs from a JSON-lines file, each through the same gate as the demo.

    python -m vasa_core batch JOBS.jsonl --out DIR [--ray auto|ADDRESS|local] [--max-audio-s 600]

JOBS.jsonl holds one job per line (relative paths are relative to the file's folder):

    {"image": "ada.jpg", "audio": "talk.wav", "consent": "self", "name": "Ada Lovelace",
     "out": "ada.mp4", "size": 512, "face": 0, "seed": 3, "gaze": [5, 0], "distance": 1.0,
     "emotion": "happy", "emotion_weight": 0.5, "motion_scale": 1.0, "label": false}

`consent` is one of "self", "permission", "public_domain" (the demo's three statements) and `name` the person
attesting it; only image, audio, consent and name are required. Every job goes through
`safety.gate.check_request` (upload validation, consent record, likeness screening, an audit row) and then
`pipeline.write` (watermark, C2PA manifest, the audit row completed), exactly as a Generate click does.

DIR/results.jsonl gets one line per job: {"job", "out", "payload", "request_id", "seconds"} or
{"job", "error"} (a refused or broken job is an error line; the run goes on). A second run with the same
JOBS and DIR skips the jobs whose clip was written, so an interrupted run resumes where it stopped.
With `--ray`, each job is one Ray task (one CPU) on that cluster ('local': a one-CPU instance in this process);
the workers need this project and its data directory's keys (run them from the same installation).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from safety.consent import CONSENT_KEYS

CONSENTS = {key: choice for choice, key in CONSENT_KEYS.items()}     # "self" -> the demo's statement
CONTROLS = ("seed", "gaze", "distance", "emotion", "emotion_weight", "motion_scale")
RESULTS = "results.jsonl"


class JobError(ValueError):
    """A job line that cannot be run as written; the message is one sentence."""


@dataclass(frozen=True)
class Job:
    """One line of JOBS.jsonl, checked: absolute paths, the consent statement, the controls for the pipeline."""
    index: int
    image: str
    audio: str
    consent: str
    name: str
    out: str
    size: int = 512
    face: int | None = None
    label: bool = False
    controls: dict = field(default_factory=dict)


def parse_job(index: int, line: str, base: Path, out_dir: Path) -> Job:
    """A JSON line -> Job; raises JobError with one sentence for anything malformed."""
    try:
        spec = json.loads(line)
    except json.JSONDecodeError:
        raise JobError("The line is not valid JSON.") from None
    if not isinstance(spec, dict):
        raise JobError("The line must be a JSON object.")
    missing = [k for k in ("image", "audio", "consent", "name") if not isinstance(spec.get(k), str) or not spec[k]]
    if missing:
        raise JobError(f"The job lacks {', '.join(missing)} (text).")
    if spec["consent"] not in CONSENTS:
        raise JobError(f"consent must be one of {', '.join(CONSENTS)}.")
    unknown = set(spec) - {"image", "audio", "consent", "name", "out", "size", "face", "label", *CONTROLS}
    if unknown:
        raise JobError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    controls = {k: spec[k] for k in CONTROLS if k in spec}
    if "gaze" in controls:
        g = controls["gaze"]
        if not (isinstance(g, list) and len(g) == 2 and all(isinstance(v, (int, float)) for v in g)):
            raise JobError("gaze must be two numbers [x, y] in degrees.")
        controls["gaze"] = (float(g[0]), float(g[1]))
    for k in ("size", "face", "seed"):
        if k in spec and (isinstance(spec[k], bool) or not isinstance(spec[k], int)):
            raise JobError(f"{k} must be a whole number.")
    out = spec.get("out") or f"job{index:05d}.mp4"
    if not isinstance(out, str) or Path(out).name != out or not out.endswith(".mp4"):
        raise JobError("out must be a plain file name ending in .mp4.")
    return Job(index=index, image=str(base / spec["image"]), audio=str(base / spec["audio"]),
               consent=CONSENTS[spec["consent"]], name=spec["name"], out=str(out_dir / out),
               size=int(spec.get("size", 512)), face=spec.get("face"), label=bool(spec.get("label", False)),
               controls=controls)


_PIPES: dict[int, object] = {}


def run_job(job: Job, max_audio_s: float = 600.0) -> dict:
    """Gate + render one job; returns its result row. Never raises: a refusal or failure is an error row."""
    from safety.gate import check_request
    from safety.publish import build_pipeline
    from vasa_core.audio import Audio
    from vasa_core.errors import InputError
    from vasa_core.pipeline import OUTPUT_SAMPLE_RATE

    t0 = time.perf_counter()
    try:
        decision = check_request(job.image, job.audio, job.consent, job.name, face_index=job.face,
                                 max_audio_s=max_audio_s, audio_sample_rate=OUTPUT_SAMPLE_RATE)
        if not decision.allowed:
            return {"job": job.index, "error": decision.reason, "request_id": decision.request_id or None}
        pipe = _PIPES.get(job.size)
        if pipe is None:
            pipe = _PIPES[job.size] = build_pipeline(size=job.size)
        clip = Audio(decision.audio.samples, decision.audio.sample_rate)
        out = pipe.write(decision.image.rgb, clip, job.out, face_box=decision.face, request_id=decision.request_id,
                         label=job.label, **job.controls)
    except InputError as exc:
        return {"job": job.index, "error": str(exc)}
    except Exception as exc:   # one broken job never stops a run
        return {"job": job.index, "error": f"The job failed ({type(exc).__name__})."}
    return {"job": job.index, "out": str(out.path), "payload": out.payload, "request_id": out.request_id,
            "seconds": round(time.perf_counter() - t0, 2)}


def _done(results: Path) -> set[int]:
    """Jobs a previous run finished (their clip is on disk)."""
    done: set[int] = set()
    if results.is_file():
        for line in results.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue          # a line cut short by a killed run
            if isinstance(row, dict) and row.get("out") and Path(row["out"]).is_file():
                done.add(int(row["job"]))
    return done


def _run(jobs: list[Job], ray_address: str | None, max_audio_s: float) -> Iterator[dict]:
    """Result rows, in order here, in completion order on Ray."""
    if not ray_address:
        for job in jobs:
            yield run_job(job, max_audio_s)
        return
    try:
        import ray
    except ImportError:
        raise JobError("--ray needs the ray package (pip install -r requirements-eval.txt).") from None
    started = not ray.is_initialized()
    if started:
        root = str(Path(__file__).resolve().parent.parent)
        env = {"env_vars": {"PYTHONPATH": root}}
        if ray_address == "local":
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, runtime_env=env)
        else:
            ray.init(address=ray_address, log_to_driver=False, runtime_env=env)
    try:
        task = ray.remote(num_cpus=1)(run_job)
        pending = {task.remote(job, max_audio_s): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                yield ray.get(ready[0])
            except Exception as exc:
                yield {"job": job.index, "error": f"A Ray task failed ({type(exc).__name__})."}
    finally:
        if started:
            ray.shutdown()


def run_batch(jobs_file: str | Path, out_dir: str | Path, ray_address: str | None = None,
              max_audio_s: float = 600.0, progress: bool = True) -> dict:
    """Run every job of `jobs_file` not done yet into `out_dir`; returns {"done", "errors", "skipped"}."""
    jobs_file, out_dir = Path(jobs_file), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / RESULTS
    finished = _done(results)
    jobs: list[Job] = []
    counts = {"done": 0, "errors": 0, "skipped": 0}
    with open(results, "a") as sink:
        for index, line in enumerate(jobs_file.read_text().splitlines()):
            if not line.strip():
                continue
            if index in finished:
                counts["skipped"] += 1
                continue
            try:
                jobs.append(parse_job(index, line, jobs_file.parent, out_dir))
            except JobError as exc:
                sink.write(json.dumps({"job": index, "error": str(exc)}) + "\n")
                counts["errors"] += 1
        sink.flush()
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="job", disable=not progress, file=sys.stderr)
        for row in _run(jobs, ray_address, max_audio_s):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            counts["errors" if "error" in row else "done"] += 1
            bar.update(1)
        bar.close()
    return counts


def cli(argv: list[str] | None = None) -> int:
    """`python -m vasa_core batch JOBS.jsonl --out DIR [--ray ADDRESS]`; exit 0 when every job was written."""
    p = argparse.ArgumentParser(prog="python -m vasa_core batch", description=__doc__.split("\n\n")[0])
    p.add_argument("jobs", help="JSON-lines file, one job per line")
    p.add_argument("--out", required=True, help="output folder (clips + results.jsonl)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="auto | host:port | local: one Ray task per job")
    p.add_argument("--max-audio-s", type=float, default=600.0, help="longest audio a job may have (seconds)")
    args = p.parse_args(argv)
    if not Path(args.jobs).is_file():
        print(f"error: no such jobs file: {args.jobs}", file=sys.stderr)
        return 2
    try:
        counts = run_batch(args.jobs, args.out, args.ray, args.max_audio_s)
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{counts['done']} written, {counts['errors']} errors, {counts['skipped']} already done "
          f"(details: {Path(args.out) / RESULTS})")
    return 0 if counts["errors"] == 0 else 1
