"""Host bounds (issue 13, probe defects 4 and 5): the knobs, the per-client limiter, job timeouts, the output
cleaner, and a small load test on loopback (a few clients, tiny clips) against a demo with tight limits."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import time

import numpy as np
import pytest

from tests.app_server import PUBLIC_DOMAIN, short_speech, start_app


# ------------------------------------------------------------------------------------------- unit level
def test_host_limits_from_env():
    from serving.limits import HostLimits
    d = HostLimits.from_env({})
    assert d == HostLimits() and d.queue_size >= 1 and d.output_ttl_s > 0 and not d.trust_proxy
    x = HostLimits.from_env({"VASA_QUEUE_SIZE": "3", "VASA_MAX_UPLOAD_MB": "2.5", "VASA_TRUST_PROXY": "1"})
    assert (x.queue_size, x.upload_mb, x.trust_proxy) == (3, 2.5, True)
    for bad in ({"VASA_QUEUE_SIZE": "many"}, {"VASA_MAX_IMAGE_MP": "400"}, {"VASA_GENERATE_TIMEOUT_S": "0"}):
        with pytest.raises(ValueError) as err:
            HostLimits.from_env(bad)
        assert next(iter(bad)) in str(err.value)


def test_rate_limiter_sliding_minute():
    from serving.limits import RateLimiter
    now = [0.0]
    rl = RateLimiter(3, clock=lambda: now[0])
    assert [rl.admit("a") for _ in range(4)] == [True, True, True, False]
    assert rl.admit("b")                                   # another client has its own budget
    now[0] = 59.0
    assert not rl.admit("a")
    now[0] = 60.5
    assert rl.admit("a")


def test_client_key_trusts_only_the_proxys_hop():
    from serving.limits import client_key
    h = {"x-forwarded-for": "6.6.6.6, 10.1.2.3"}
    assert client_key("127.0.0.1", h, trust_proxy=False) == "127.0.0.1"
    assert client_key("127.0.0.1", h, trust_proxy=True) == "10.1.2.3"


def test_run_with_timeout_stops_a_running_job_and_runs_its_finally():
    from serving.limits import JobTimeout, run_with_timeout
    cleaned = []

    def job():
        try:
            while True:
                sum(range(1000))
        finally:
            cleaned.append(True)
    t0 = time.perf_counter()
    with pytest.raises(JobTimeout):
        run_with_timeout(job, 0.3)
    assert 0.25 < time.perf_counter() - t0 < 3 and cleaned == [True]
    assert run_with_timeout(lambda: 42, 0.05) == 42
    time.sleep(0.2)                                        # a finished job is never interrupted later
    assert sum(range(100)) == 4950


def test_cleaner_deletes_old_outputs_and_unsigned_leftovers(tmp_path):
    from serving.cleaner import clean
    old, fresh, unsigned = tmp_path / "a" / "old.mp4", tmp_path / "fresh.mp4", tmp_path / ".x.unsigned.mp4"
    old.parent.mkdir()
    for p in (old, fresh, unsigned):
        p.write_bytes(b"x" * 1000)
    t = time.time()
    os.utime(old, (t - 7200, t - 7200))
    os.utime(unsigned, (t - 700, t - 700))
    rep = clean([tmp_path, tmp_path / "missing"], ttl_s=3600, unsigned_ttl_s=600)
    assert rep.files == 2 and rep.bytes == 2000 and rep.folders == 1
    assert fresh.exists() and not old.exists() and not unsigned.exists() and not old.parent.exists()


def _old_request(log, minutes: float, **kw) -> str:
    """Record a request as if it had been made `minutes` ago (a process killed mid-job back then)."""
    import safety.audit as audit
    real = audit._now
    audit._now = lambda: (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)).isoformat(
        timespec="milliseconds")
    try:
        return log.start(allowed=True, reason="allowed", **kw)
    finally:
        audit._now = real


def test_audit_outcomes_and_abandoned_jobs(tmp_path):
    from safety.audit import AuditError, AuditLog
    log = AuditLog(tmp_path / "audit.db")
    stale = _old_request(log, 30)
    done = _old_request(log, 30)
    log.finish(done, "finished")
    fresh = log.start(allowed=True, reason="allowed")
    assert log.mark_abandoned(600) == [stale]
    assert log.get(stale)["outcome"] == "abandoned" and log.get(done)["outcome"] == "finished"
    assert log.get(fresh)["outcome"] is None
    assert log.mark_abandoned(600) == []
    with pytest.raises(AuditError):
        log.finish(fresh, "whatever")
    import sqlite3
    con = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.DatabaseError):
        con.execute("DELETE FROM request_event")
    with pytest.raises(sqlite3.DatabaseError):
        con.execute("UPDATE request_event SET outcome = 'finished'")
    assert log.verify_chain()[0]


@pytest.fixture(scope="module")
def app_module():
    import app
    return app


def test_generate_job_timeout_gives_a_sentence_and_leaves_no_file(app_module, monkeypatch, hopper_path,
                                                                   default_audio):
    import dataclasses
    import gradio as gr
    from safety.audit import AuditLog
    # the models load first, as `serve` does at start: a timeout delivered inside a first-time import would
    # leave that module half-imported for the rest of the process (and of this test session)
    app_module.warm_up()
    monkeypatch.setattr(app_module, "LIMITS", dataclasses.replace(app_module.LIMITS, generate_timeout_s=0.3))
    before = set(app_module.OUT_DIR.glob("*")) if app_module.OUT_DIR.exists() else set()
    with pytest.raises(gr.Error) as err:
        app_module.generate(str(hopper_path), str(default_audio), PUBLIC_DOMAIN, "Test Runner", None, -1, 256, 0,
                            0, 0, 1.0, "neutral", 0.6, 1.0, progress=lambda *a, **k: None)
    assert "longer than the 0.3 s" in str(err.value)
    time.sleep(0.5)
    assert set(app_module.OUT_DIR.glob("*")) <= before, "a stopped job left a file behind"
    last = AuditLog().tail(1)[0]
    assert last["allowed"] and last["outcome"] == "timed_out" and last["watermark_payload"] is None


def test_detect_job_timeout_gives_a_sentence(app_module, monkeypatch, tmp_path):
    import dataclasses
    import gradio as gr
    from tools.evals import watermark as wm   # encode_mp4: test clips
    clip = tmp_path / "c.mp4"
    wm.encode_mp4([np.full((256, 256, 3), i, np.uint8) for i in range(100)], clip)
    app_module.detect(str(clip))          # the detector's modules load outside the timed run (see above)
    monkeypatch.setattr(app_module, "LIMITS", dataclasses.replace(app_module.LIMITS, detect_timeout_s=0.05))
    with pytest.raises(gr.Error) as err:
        app_module.detect(str(clip))
    assert "longer than the 0.05 s" in str(err.value)
    big = tmp_path / "big.mp4"
    wm.encode_mp4([np.zeros((1600, 1600, 3), np.uint8)] * 2, big, audio=False)
    with pytest.raises(gr.Error) as err:
        app_module.detect(str(big))
    assert "too large (1600x1600)" in str(err.value)


# ------------------------------------------------------------------------------------------- served, loaded
@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    """A demo with tight limits whose data directory holds what a killed earlier run left behind."""
    from safety.audit import AuditLog
    tmp = tmp_path_factory.mktemp("hosting")
    data = tmp / "data"
    outputs = data / "public" / "outputs"
    outputs.mkdir(parents=True)
    t = time.time()
    expired, kept, leftover = outputs / "talking_old.mp4", outputs / "talking_new.mp4", outputs / ".t.unsigned.mp4"
    for p in (expired, kept, leftover):
        p.write_bytes(b"\0" * 5000)
    os.utime(expired, (t - 7200, t - 7200))
    os.utime(leftover, (t - 1200, t - 1200))
    killed = _old_request(AuditLog(data / "audit.db"), 20)
    srv = start_app(tmp, VASA_QUEUE_SIZE="2", VASA_CLIENT_CONCURRENT="1", VASA_CLIENT_PER_MINUTE="3",
                    VASA_TRUST_PROXY="1", VASA_MAX_UPLOAD_MB="1", VASA_MAX_SIZE="256", VASA_MAX_AUDIO_S="10",
                    VASA_GENERATE_TIMEOUT_S="120", VASA_OUTPUT_TTL_S="3600")
    srv.leftovers = (expired, kept, leftover, killed)
    yield srv
    srv.stop()


def _client(srv, ip: str):
    from gradio_client import Client
    return Client(srv.url, verbose=False, headers={"X-Forwarded-For": ip})


def _job(srv, ip, image, audio):
    from gradio_client import handle_file
    try:
        video, status = _client(srv, ip).predict(handle_file(str(image)), handle_file(str(audio)), PUBLIC_DOMAIN,
                                                 "Load Test", None, -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0,
                                                 api_name="/generate")
        return "ok", status
    except Exception as exc:
        return "error", str(exc)


def test_start_up_cleans_what_a_killed_run_left(tight):
    from safety.audit import AuditLog
    expired, kept, leftover, killed = tight.leftovers
    assert not expired.exists() and not leftover.exists() and kept.exists()
    assert AuditLog(tight.data_dir / "audit.db").get(killed)["outcome"] == "abandoned"


def test_uploads_over_the_limit_are_refused(tight, tmp_path):
    from gradio_client import handle_file
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF" + os.urandom(1_500_000))
    with pytest.raises(Exception) as err:
        _client(tight, "10.0.0.9").predict(handle_file(str(big)), api_name="/detect")
    assert "413" in str(err.value) or "size" in str(err.value).lower()


def test_load_beyond_the_queue_gets_busy_and_every_accepted_job_finishes(tight, hopper_path, tmp_path):
    from safety.audit import AuditLog
    speech = short_speech(tmp_path / "s.wav", 1.0)
    _job(tight, "10.0.1.1", hopper_path, speech)                  # warm up the models (not counted)
    n = 6
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: _job(tight, f"10.0.2.{i}", hopper_path, speech), range(n)))
    ok = [r for r in results if r[0] == "ok"]
    busy = [r for r in results if r[0] == "error" and "Queue is full" in r[1]]
    assert len(ok) + len(busy) == n, results
    assert busy and len(ok) >= 2, results
    log = AuditLog(tight.data_dir / "audit.db")
    rows = [r for r in log.tail(100) if r["consent_name"] == "Load Test"]
    assert len(rows) == len(ok) + 1 and all(r["outcome"] == "finished" and r["watermark_payload"] for r in rows)
    print(f"load: {n} clients, {len(ok)} finished, {len(busy)} busy; server peak RSS {tight.rss_peak_mb():.0f} MB")
    assert tight.rss_peak_mb() < 3000
    outputs = list((tight.data_dir / "public" / "outputs").glob("talking_*.mp4"))
    assert len(outputs) == len(ok) + 2 and sum(p.stat().st_size for p in outputs) < 5e6   # + warm-up + kept


def test_one_client_cannot_hold_more_than_its_share(tight, hopper_path, tmp_path):
    from gradio_client import handle_file
    speech = short_speech(tmp_path / "s.wav", 1.0)
    longer = short_speech(tmp_path / "l.wav", 8.0, offset=0.0)
    c = _client(tight, "10.0.3.1")
    first = c.submit(handle_file(str(hopper_path)), handle_file(str(longer)), PUBLIC_DOMAIN, "Load Test", None,
                     -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0, api_name="/generate")
    time.sleep(0.5)
    with pytest.raises(Exception) as err:                         # a second one while the first runs
        _client(tight, "10.0.3.1").predict(handle_file(str(hopper_path)), handle_file(str(speech)), PUBLIC_DOMAIN,
                                           "Load Test", None, -1, 256, 0, 0, 0, 1.0, "neutral", 0.6, 1.0,
                                           api_name="/generate")
    assert "429" in str(err.value)
    first.result(timeout=120)
    # per minute: the 4th job of one client within a minute is refused (3 allowed; the first above counted)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    answers = []
    for _ in range(3):
        try:
            _client(tight, "10.0.3.1").predict(handle_file(str(junk)), api_name="/detect")
            answers.append("ok")
        except Exception as exc:
            answers.append(str(exc))
    assert "could not be read" in answers[0] and "could not be read" in answers[1]
    assert "429" in answers[2]
