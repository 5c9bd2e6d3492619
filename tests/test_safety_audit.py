"""Audit log: round trips, append-only rules, hash chain, crash safety (SIGKILL mid-write), CLI."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from safety import audit as audit_mod
from safety.audit import AuditError, AuditLog

REPO = Path(__file__).resolve().parents[1]
SHA = hashlib.sha256(b"image").hexdigest()


def _start(log: AuditLog, **kw) -> str:
    args = dict(allowed=True, reason="Allowed.", image_sha256=SHA, audio_sha256=SHA.upper(),
                consent_choice="This is me", consent_name="Ada")
    args.update(kw)
    return log.start(**args)


def test_round_trip_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("VASA_DATA_DIR", str(tmp_path / "d"))
    log = AuditLog()
    assert log.path == tmp_path / "d" / "audit.db"
    rid = _start(log, screening={"decision": "allow", "faces": [{"distance": 0.71}]}, selfie_distance=0.3,
                 chosen_face=0, extra={"max_audio_s": 60})
    rec = log.get(rid)
    assert rec["id"] == rid and rec["allowed"] is True and rec["reason"] == "Allowed."
    assert rec["image_sha256"] == SHA and rec["audio_sha256"] == SHA  # normalised to lower case
    assert rec["screening"]["faces"][0]["distance"] == 0.71 and rec["selfie_distance"] == 0.3
    assert rec["watermark_payload"] is None and rec["output_sha256"] is None
    assert log.get("nope") is None
    con = sqlite3.connect(log.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_hashes_only(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    with pytest.raises(AuditError, match="hexadecimal"):
        _start(log, image_sha256="\x89PNG raw image bytes")


def test_update_once_then_frozen(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    rid = _start(log)
    rec = log.update(rid, watermark_payload="0xDEADBEEF")
    assert rec["watermark_payload"] == "deadbeef" and rec["completed"]
    rec = log.update(rid, output_sha256=SHA)
    assert rec["output_sha256"] == SHA and rec["watermark_payload"] == "deadbeef"
    log.update(rid, watermark_payload="deadbeef")  # same value again: fine
    with pytest.raises(AuditError, match="already recorded"):
        log.update(rid, watermark_payload="cafebabe")
    with pytest.raises(AuditError, match="no request"):
        log.update("missing", output_sha256=SHA)
    assert [r["id"] for r in log.find_by_watermark("DEADBEEF")] == [rid]
    assert log.find_by_watermark("0xdeadbeef")[0]["output_sha256"] == SHA
    assert log.find_by_watermark("cafebabe") == [] and log.find_by_watermark("not hex") == []


def test_tail_order_and_refusals_logged(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    ids = [_start(log, allowed=i % 2 == 0, reason=f"r{i}") for i in range(5)]
    tail = log.tail(3)
    assert [r["id"] for r in tail] == ids[2:]
    assert [r["allowed"] for r in tail] == [True, False, True]
    assert len(log) == 5 and log.tail(0) == []


def test_append_only_enforced_in_the_database(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    rid = _start(log)
    log.update(rid, watermark_payload="ab")
    con = sqlite3.connect(log.path)
    for sql in ("DELETE FROM request", "UPDATE request SET reason = 'edited'", "UPDATE request SET allowed = 0",
                "UPDATE request SET consent_name = 'Someone else'", "UPDATE request SET watermark_payload = 'cd'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.close()
    assert log.get(rid)["reason"] == "Allowed." and log.verify_chain()[0]


def test_hash_chain_detects_edits_and_removals_behind_the_triggers(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    ids = [_start(log, reason=f"r{i}") for i in range(4)]
    ok, msg = log.verify_chain()
    assert ok and msg.startswith("4 request(s)")
    con = sqlite3.connect(log.path)
    con.execute("DROP TRIGGER request_no_rewrite")
    con.execute("UPDATE request SET consent_name = 'Mallory' WHERE id = ?", (ids[1],))
    con.commit()
    ok, msg = log.verify_chain()
    assert not ok and ids[1] in msg and "altered" in msg
    con.execute("UPDATE request SET consent_name = 'Ada' WHERE id = ?", (ids[1],))
    con.execute("DROP TRIGGER request_no_delete")
    con.execute("DELETE FROM request WHERE id = ?", (ids[2],))
    con.commit()
    con.close()
    ok, msg = log.verify_chain()
    assert not ok and "chain broken" in msg and ids[3] in msg


def test_concurrent_writers_keep_one_chain(tmp_path):
    log = AuditLog(tmp_path / "a.db")
    errors = []

    def writer(k):
        try:
            for i in range(15):
                _start(AuditLog(log.path), reason=f"w{k}-{i}")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(log) == 45
    assert log.verify_chain()[0]


_WRITER = r"""
import sys
from safety.audit import AuditLog
log = AuditLog(sys.argv[1])
i = 0
while True:
    rid = log.start(allowed=bool(i % 2), reason="crash test " + "x" * (i % 300), image_sha256="ab" * 32,
                    audio_sha256="cd" * 32, consent_choice="This is me", consent_name="Writer",
                    screening={"faces": [{"distance": 0.1 * (i % 10)}] * (1 + i % 5)}, extra={"i": i})
    log.update(rid, watermark_payload=format(i, "08x"), output_sha256="ef" * 32)
    print(rid, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [5, 40, 120])
def test_writes_survive_sigkill_mid_write(tmp_path, kill_after):
    db = tmp_path / "audit.db"
    AuditLog(db)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    acknowledged = []
    try:
        deadline = time.time() + 60
        while len(acknowledged) < kill_after and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        time.sleep(0.003 * (kill_after % 7))  # land the kill at varying points of the next write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) == kill_after, proc.stderr.read()
    # lines the writer printed before it died but we had not read yet are acknowledged writes too
    acknowledged += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    # a fresh process sees every acknowledged write, whole, and a consistent database
    log = AuditLog(db)
    ok, msg = log.verify_chain()
    assert ok, msg
    for i, rid in enumerate(acknowledged):
        rec = log.get(rid)
        assert rec is not None and rec["watermark_payload"] == format(i, "08x")
        assert rec["extra"] == {"i": i}
    # the write in flight when the kill landed is either all there or absent
    assert len(log) in (len(acknowledged), len(acknowledged) + 1)
    # and it keeps working after the crash
    rid = _start(log)
    assert log.get(rid) and log.verify_chain()[0]


def test_cli_show_tail_find_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VASA_DATA_DIR", str(tmp_path))
    log = AuditLog()
    rid = _start(log, allowed=False, reason="Refused: no consent.")
    log.update(rid, watermark_payload="00ff")
    assert audit_mod.cli(["audit", "show", rid]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "Refused: no consent."
    assert audit_mod.cli(["audit", "show", "missing"]) == 1
    capsys.readouterr()
    assert audit_mod.cli(["audit", "tail", "-n", "5"]) == 0
    out = capsys.readouterr().out
    assert rid in out and "REFUSED" in out and "wm=00ff" in out
    assert audit_mod.cli(["audit", "find-watermark", "00FF"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == rid
    assert audit_mod.cli(["audit", "verify"]) == 0
    assert "hash chain intact" in capsys.readouterr().out


def test_python_dash_m_safety_audit(tmp_path):
    rid = _start(AuditLog(tmp_path / "audit.db"))
    env = dict(os.environ, VASA_DATA_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "safety", "audit", "show", rid], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == rid
