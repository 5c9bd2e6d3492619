"""`vasa batch`: many jobs from a JSON-lines file, each through the gate, resumable, bad jobs as error lines."""
from __future__ import annotations

import json
import shutil

import pytest

from safety.audit import AuditLog
from serving.batch import parse_job, JobError, run_batch
from tests.conftest import DEFAULT_AUDIO, HOPPER
from vasa_core.__main__ import cli


def _jobs(tmp_path):
    shutil.copy(HOPPER, tmp_path / "hopper.jpg")
    shutil.copy(DEFAULT_AUDIO, tmp_path / "speech.ogg")
    (tmp_path / "not_a_photo.jpg").write_text("<html>hello</html>")
    lines = [
        {"image": "hopper.jpg", "audio": "speech.ogg", "consent": "public_domain", "name": "Ada Tester",
         "out": "hopper.mp4", "size": 256, "seed": 3, "emotion": "happy", "emotion_weight": 0.5},
        {"image": "hopper.jpg", "audio": "speech.ogg", "consent": "maybe", "name": "Ada Tester"},
        {"image": "not_a_photo.jpg", "audio": "speech.ogg", "consent": "self", "name": "Ada Tester", "size": 256},
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    return jobs


def test_batch_writes_good_jobs_reports_bad_ones_and_resumes(tmp_path):
    jobs = _jobs(tmp_path)
    out = tmp_path / "out"
    counts = run_batch(jobs, out, progress=False)
    assert counts == {"done": 1, "errors": 3, "skipped": 0}
    rows = {r["job"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert (out / "hopper.mp4").stat().st_size > 10_000 and rows[0]["out"].endswith("hopper.mp4")
    assert "consent must be one of" in rows[1]["error"]
    assert "not a photo" in rows[2]["error"]          # the gate's own sentence
    assert "not valid JSON" in rows[3]["error"]
    record = AuditLog().get(rows[0]["request_id"])
    assert record["allowed"] and record["watermark_payload"] == rows[0]["payload"]
    # a second run skips what was written and tries the rest again
    again = run_batch(jobs, out, progress=False)
    assert again == {"done": 0, "errors": 3, "skipped": 1}


def test_cli_exit_status_and_bad_lines(tmp_path, capsys):
    assert cli(["batch", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    with pytest.raises(JobError, match="plain file name"):
        parse_job(0, json.dumps({"image": "a", "audio": "b", "consent": "self", "name": "A", "out": "../x.mp4"}),
                  tmp_path, tmp_path)
    with pytest.raises(JobError, match="Unknown field"):
        parse_job(0, json.dumps({"image": "a", "audio": "b", "consent": "self", "name": "A", "shell": "rm"}),
                  tmp_path, tmp_path)


@pytest.mark.slow
def test_batch_on_local_ray(tmp_path):
    ray = pytest.importorskip("ray")
    jobs = _jobs(tmp_path)
    jobs.write_text(jobs.read_text().splitlines()[0] + "\n")
    try:
        counts = run_batch(jobs, tmp_path / "out", ray_address="local", progress=False)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert counts == {"done": 1, "errors": 0, "skipped": 0}
    assert (tmp_path / "out" / "hopper.mp4").stat().st_size > 10_000
