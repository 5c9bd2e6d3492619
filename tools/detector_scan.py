"""Batch scans with the bundled detector: many clips into a resumable JSON-lines file, locally or as Ray tasks.

    .venv/bin/python -m safety.detector detect DIR_OR_LIST ... --out results.jsonl [--ray auto|ADDRESS|local]

(`safety.detector` dispatches `--out` and `--ray` here; a single clip never needs this module.)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

from safety.detector import ROOT, scan_one


def _done_paths(out: Path) -> set[str]:
    done = set()
    if out.is_file():
        for ln in out.read_text().splitlines():
            try:
                done.add(json.loads(ln)["path"])
            except Exception:
                continue
    return done


def scan(paths: list[str], out: str | Path, ray_address: str | None = None, check_watermark: bool = True,
         progress: bool = True) -> int:
    """Score clips into a JSON-lines file, skipping paths already in it (resumable). Returns lines written.

    ray_address: None = in this process; 'auto' or 'host:port' = one Ray task per clip on that cluster
    ('local' starts a private one-CPU instance)."""
    out = Path(out)
    done = _done_paths(out)
    todo = [p for p in paths if p not in done]
    bar = _progress(len(todo), progress)
    written = 0
    with open(out, "a") as fh:
        for row in scan_iter(todo, ray_address, check_watermark):
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
            written += 1
            bar(row)
    return written


def scan_iter(todo: list[str], ray_address: str | None, check_watermark: bool) -> Iterator[dict]:
    """One result row per clip (in completion order with Ray)."""
    if not ray_address:
        for p in todo:
            yield scan_one(p, check_watermark)
        return
    import ray
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}}   # workers import this package
        if ray_address == "local":
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, runtime_env=env)
        else:
            ray.init(address=ray_address, log_to_driver=False, runtime_env=env)
        started = True
    try:
        task = ray.remote(num_cpus=1)(scan_one)
        pending = [task.remote(p, check_watermark) for p in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                try:
                    yield ray.get(r)
                except Exception as e:  # a worker died: say so for that clip, keep going
                    yield {"path": "?", "error": f"A Ray task failed ({type(e).__name__})."}
    finally:
        if started:
            ray.shutdown()


def _progress(total: int, enabled: bool):
    """A one-line progress bar on stderr: call it once per finished clip."""
    state = {"n": 0, "t0": time.perf_counter()}

    def tick(row: dict) -> None:
        state["n"] += 1
        if not enabled:
            return
        n, el = state["n"], time.perf_counter() - state["t0"]
        w = 30
        fill = int(w * n / max(total, 1))
        eta = el / n * (total - n)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (w - fill)}] {n}/{total}  {el:.0f}s elapsed, ~{eta:.0f}s left ")
        if n == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return tick
