"""The audit log: one row per request, allowed or refused, in SQLite (WAL mode) in the data directory.

Each row holds: id, time, SHA-256 of the inputs (never the images or audio), consent choice and name, the
gate's decision and reason, the likeness screening (per-face decision, distance, nearest protected name —
operator-only data) and the selfie distance; later the watermark payload and the output's SHA-256.

Append-only from the app's point of view: the class offers no delete and no general update, and SQLite
triggers refuse DELETE, any UPDATE of a recorded field, and overwriting a watermark payload or output hash
that is already set. Rows are also hash-chained (each row's hash covers its fields and the previous row's
hash), so ``verify_chain`` notices rows edited or removed by anyone who bypasses the triggers (short of
rewriting the whole chain after the point of change).

Crash safety: every write is its own transaction, committed with ``synchronous=FULL`` in WAL mode before
the call returns; a process killed mid-write leaves the database consistent with every returned id in it
(tests/test_safety_audit.py kills a writer with SIGKILL).

How each request ended (finished, failed, timed out, cancelled, or abandoned: found unfinished after a crash)
is appended to a second table, ``request_event``, equally append-only; ``get`` shows the last outcome. The gate
records which process runs an allowed request (``process_identity``: boot id, pid and the process's start
time), so the next start marks a killed process's requests abandoned at once (``mark_abandoned``), however
recent, and never those of a process still running.

Visitor text is stored normalised: names and reasons are NFC with whitespace runs collapsed, and every control,
format (bidirectional overrides included), surrogate, private-use or unassigned character is stored as a
visible escape (``\\u001b``); the CLI escapes the same characters in everything it prints, rows written before
this rule included, so no ESC, BEL or right-to-left override from a visitor reaches the operator's terminal.

CLI (through ``python -m safety``)::

    audit show ID [--db PATH]          one request as JSON
    audit tail [-n N] [--json]         the last N requests
    audit find-watermark HEX           requests whose output carries that payload
    audit verify                       check the hash chain and the database's integrity
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
import sys
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from safety.datadir import connect_db, data_dir, init_private_db

__all__ = ["AuditLog", "AuditError", "OUTCOMES", "cli", "clean_text", "printable", "process_identity",
           "process_alive"]


class AuditError(RuntimeError):
    """An audit-log write was refused (unknown id, or an attempt to change what is already recorded)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS request (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    time              TEXT NOT NULL,
    image_sha256      TEXT,
    audio_sha256      TEXT,
    selfie_sha256     TEXT,
    consent_choice    TEXT,
    consent_name      TEXT,
    allowed           INTEGER NOT NULL,
    reason            TEXT NOT NULL,
    screening         TEXT,
    selfie_distance   REAL,
    chosen_face       INTEGER,
    extra             TEXT,
    prev_hash         TEXT NOT NULL,
    row_hash          TEXT NOT NULL,
    watermark_payload TEXT,
    output_sha256     TEXT,
    completed         TEXT
);
CREATE INDEX IF NOT EXISTS request_by_watermark ON request(watermark_payload);
CREATE TRIGGER IF NOT EXISTS request_no_delete BEFORE DELETE ON request
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS request_no_rewrite BEFORE UPDATE ON request
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.time IS NOT OLD.time
  OR NEW.image_sha256 IS NOT OLD.image_sha256 OR NEW.audio_sha256 IS NOT OLD.audio_sha256
  OR NEW.selfie_sha256 IS NOT OLD.selfie_sha256
  OR NEW.consent_choice IS NOT OLD.consent_choice OR NEW.consent_name IS NOT OLD.consent_name
  OR NEW.allowed IS NOT OLD.allowed OR NEW.reason IS NOT OLD.reason OR NEW.screening IS NOT OLD.screening
  OR NEW.selfie_distance IS NOT OLD.selfie_distance OR NEW.chosen_face IS NOT OLD.chosen_face
  OR NEW.extra IS NOT OLD.extra OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.row_hash IS NOT OLD.row_hash
  OR (OLD.watermark_payload IS NOT NULL AND NEW.watermark_payload IS NOT OLD.watermark_payload)
  OR (OLD.output_sha256 IS NOT NULL AND NEW.output_sha256 IS NOT OLD.output_sha256)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: recorded fields cannot be changed');
END;
CREATE TABLE IF NOT EXISTS request_event (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    time        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS request_event_by_request ON request_event(request_id);
CREATE TRIGGER IF NOT EXISTS request_event_no_delete BEFORE DELETE ON request_event
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: rows cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS request_event_no_update BEFORE UPDATE ON request_event
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: recorded fields cannot be changed');
END;
"""

#: How a request ended (``AuditLog.finish``): written once the job is over, whatever happened.
OUTCOMES = ("finished", "refused", "failed", "timed_out", "cancelled", "abandoned")

_CHAINED = ("id", "time", "image_sha256", "audio_sha256", "selfie_sha256", "consent_choice", "consent_name",
            "allowed", "reason", "screening", "selfie_distance", "chosen_face", "extra")
_GENESIS = "0" * 64


def _row_hash(prev_hash: str, values: dict) -> str:
    body = json.dumps([prev_hash] + [values.get(k) for k in _CHAINED], ensure_ascii=False,
                      separators=(",", ":"), sort_keys=False, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


#: Unicode categories never stored or printed raw: control, format (bidi overrides, zero-width), surrogate,
#: private use, unassigned, line and paragraph separators.
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character (see `_UNSAFE`) written as a visible JSON-style escape (\\u001b,
    \\u202e; surrogate pairs beyond the BMP); newlines kept only when `keep_newlines` (JSON the CLI indented)."""
    return "".join(c if (unicodedata.category(c) not in _UNSAFE or (keep_newlines and c == "\n"))
                   else json.dumps(c)[1:-1] for c in str(text))


def clean_text(value: str | None, max_len: int = 500) -> str | None:
    """A visitor's text as stored: NFC, whitespace runs collapsed to one space, unsafe characters escaped
    (`printable`), at most `max_len` characters."""
    if value is None:
        return None
    text = " ".join(unicodedata.normalize("NFC", str(value)).split())
    return printable(text)[:max_len]


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22), None when unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def process_identity(pid: int | None = None) -> str:
    """This process (or `pid`), identified across pid reuse: "BOOT_ID:PID:START_TICKS" (Linux); elsewhere
    "HOST:PID:?" (then only the age rule of `AuditLog.mark_abandoned` applies)."""
    pid = os.getpid() if pid is None else int(pid)
    return f"{_boot_id()}:{pid}:{_start_ticks(pid) or '?'}"


def process_alive(identity: str | None) -> bool | None:
    """Is the process `identity` names still running? None when that cannot be told (no identity, or one
    recorded where /proc gave no start time)."""
    try:
        boot, pid, ticks = str(identity).rsplit(":", 2)
        pid_n = int(pid)
    except (ValueError, TypeError):
        return None
    if ticks == "?":
        return None
    if boot != _boot_id():
        return False                         # recorded before the machine restarted
    return _start_ticks(pid_n) == ticks      # gone, or the pid now belongs to another process


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _hex_or_none(value: str | None, what: str, max_len: int = 128) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).hex()
    text = str(value).strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if not text or len(text) > max_len or any(c not in "0123456789abcdef" for c in text):
        raise AuditError(f"{what} must be a hexadecimal string")
    return text


def _json(value) -> str:
    """JSON for a stored field: unsafe characters (see `printable`) inside strings as JSON escapes."""
    return printable(json.dumps(value, ensure_ascii=False, default=str))


class AuditLog:
    """Append-only request log at ``path`` (default ``data_dir()/audit.db``), SQLite in WAL mode.

    Safe to use from several threads and processes: each call opens its own connection and writes in
    its own ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else data_dir() / "audit.db"
        init_private_db(self.path, _SCHEMA, self._connect)

    def _connect(self) -> sqlite3.Connection:
        con = connect_db(self.path, autocommit=True)
        con.row_factory = sqlite3.Row
        return con

    # ---------------------------------------------------------------------------------------- writes
    def start(self, *, allowed: bool, reason: str, image_sha256: str | None = None,
              audio_sha256: str | None = None, selfie_sha256: str | None = None,
              consent_choice: str | None = None, consent_name: str | None = None,
              screening: dict | list | None = None, selfie_distance: float | None = None,
              chosen_face: int | None = None, extra: dict | None = None, request_id: str | None = None) -> str:
        """Record a new request and return its id (committed to disk before returning).

        Hashes only: pass SHA-256 hex digests of the inputs, never their content. ``image_sha256`` /
        ``audio_sha256`` / ``selfie_sha256`` are always the digest of the input *file's bytes* as received
        (the gate, the CLI and the Python API alike), so a file can be matched to its record; inputs that
        arrive decoded (arrays) have no file digest, and the caller names what it hashed in ``extra``
        (e.g. ``audio_samples_sha256``). ``screening`` and ``extra`` are stored as JSON.
        """
        rid = request_id or uuid.uuid4().hex
        values: dict[str, Any] = {
            "id": str(rid), "time": _now(),
            "image_sha256": _hex_or_none(image_sha256, "image_sha256"),
            "audio_sha256": _hex_or_none(audio_sha256, "audio_sha256"),
            "selfie_sha256": _hex_or_none(selfie_sha256, "selfie_sha256"),
            "consent_choice": clean_text(consent_choice, 200), "consent_name": clean_text(consent_name, 200),
            "allowed": 1 if allowed else 0, "reason": clean_text(str(reason), 1000),
            "screening": None if screening is None else _json(screening),
            "selfie_distance": None if selfie_distance is None else float(selfie_distance),
            "chosen_face": None if chosen_face is None else int(chosen_face),
            "extra": None if extra is None else _json(extra),
        }
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                last = con.execute("SELECT row_hash FROM request ORDER BY seq DESC LIMIT 1").fetchone()
                prev = last[0] if last else _GENESIS
                values["prev_hash"] = prev
                values["row_hash"] = _row_hash(prev, values)
                cols = ",".join(values)
                con.execute(f"INSERT INTO request ({cols}) VALUES ({','.join('?' * len(values))})",
                            list(values.values()))
                con.execute("COMMIT")
            except sqlite3.IntegrityError:
                con.execute("ROLLBACK")
                raise AuditError("a request with this id is already recorded") from None
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
        return values["id"]

    def update(self, request_id: str, *, watermark_payload: str | bytes | None = None,
               output_sha256: str | None = None) -> dict:
        """Attach the output's watermark payload (hex) and/or SHA-256 to a recorded request.

        Each can be set once; setting it again to the same value is a no-op, to a different value raises
        :class:`AuditError`. Returns the updated record.
        """
        wm = _hex_or_none(watermark_payload, "watermark_payload", max_len=1024)
        out = _hex_or_none(output_sha256, "output_sha256")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT watermark_payload, output_sha256 FROM request WHERE id = ?",
                                  (request_id,)).fetchone()
                if row is None:
                    raise AuditError(f"no request with id {request_id!r} in the audit log")
                for new, old, what in ((wm, row[0], "watermark payload"), (out, row[1], "output hash")):
                    if new is not None and old is not None and new != old:
                        raise AuditError(f"the {what} of request {request_id} is already recorded")
                con.execute(
                    "UPDATE request SET watermark_payload = COALESCE(watermark_payload, ?), "
                    "output_sha256 = COALESCE(output_sha256, ?), completed = COALESCE(completed, ?) WHERE id = ?",
                    (wm, out, _now() if (wm or out) else None, request_id))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
        return self.get(request_id)  # type: ignore[return-value]

    def finish(self, request_id: str, outcome: str, detail: str | None = None) -> None:
        """Append how request ``request_id`` ended (one of :data:`OUTCOMES`), with an optional short detail."""
        if outcome not in OUTCOMES:
            raise AuditError(f"unknown outcome {outcome!r}")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                if con.execute("SELECT 1 FROM request WHERE id = ?", (str(request_id),)).fetchone() is None:
                    raise AuditError(f"no request with id {request_id!r} in the audit log")
                con.execute("INSERT INTO request_event (request_id, time, outcome, detail) VALUES (?, ?, ?, ?)",
                            (str(request_id), _now(), outcome, clean_text(detail, 500)))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    def mark_abandoned(self, older_than_s: float, current: str | None = None) -> list[str]:
        """Record 'abandoned' for every allowed request that has neither an output nor an outcome and whose
        process is gone: at once when the gate recorded its process (``extra.process``, see
        `process_identity`) and that process is no longer running, whatever the request's age; by age (older
        than ``older_than_s`` seconds) when its process cannot be told. A request of a process still running
        (this one, ``current``, included) is never marked. Returns their ids."""
        cutoff = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=float(older_than_s))
                  ).isoformat(timespec="milliseconds")
        current = current or process_identity()
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT id, time, extra FROM request r WHERE allowed = 1 AND completed IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM request_event e WHERE e.request_id = r.id) ORDER BY seq").fetchall()
        finally:
            con.close()
        ids = []
        for rid, when, extra in rows:
            try:
                proc = (json.loads(extra) or {}).get("process") if extra else None
            except (ValueError, AttributeError):
                proc = None
            alive = True if proc == current else process_alive(proc)
            if alive is False or (alive is None and when < cutoff):
                ids.append(rid)
        for rid in ids:
            self.finish(rid, "abandoned", "found unfinished (the process stopped mid-job)")
        return ids

    # ----------------------------------------------------------------------------------------- reads
    def _with_outcome(self, con: sqlite3.Connection, rec: dict) -> dict:
        ev = con.execute("SELECT time, outcome, detail FROM request_event WHERE request_id = ? ORDER BY seq DESC "
                         "LIMIT 1", (rec["id"],)).fetchone()
        rec["outcome"] = ev["outcome"] if ev else None
        rec["outcome_time"] = ev["time"] if ev else None
        rec["outcome_detail"] = ev["detail"] if ev else None
        return rec

    @staticmethod
    def _record(row: sqlite3.Row) -> dict:
        rec = dict(row)
        rec["allowed"] = bool(rec["allowed"])
        for key in ("screening", "extra"):
            if rec.get(key):
                try:
                    rec[key] = json.loads(rec[key])
                except ValueError:
                    pass
        return rec

    def get(self, request_id: str) -> dict | None:
        """The record of ``request_id`` as a dict, or None."""
        con = self._connect()
        try:
            row = con.execute("SELECT * FROM request WHERE id = ?", (str(request_id),)).fetchone()
            return self._with_outcome(con, self._record(row)) if row else None
        finally:
            con.close()

    def find_by_watermark(self, payload_hex: str | bytes) -> list[dict]:
        """Every request whose output carries ``payload_hex`` (case/0x-insensitive), newest first."""
        try:
            wm = _hex_or_none(payload_hex, "watermark_payload", max_len=1024)
        except AuditError:
            return []
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM request WHERE watermark_payload = ? ORDER BY seq DESC",
                               (wm,)).fetchall()
            return [self._with_outcome(con, self._record(r)) for r in rows]
        finally:
            con.close()

    def tail(self, n: int = 20) -> list[dict]:
        """The last ``n`` requests, oldest first."""
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM request ORDER BY seq DESC LIMIT ?", (max(0, int(n)),)).fetchall()
            return [self._with_outcome(con, self._record(r)) for r in reversed(rows)]
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM request").fetchone()[0])
        finally:
            con.close()

    def verify_chain(self) -> tuple[bool, str]:
        """(ok, message): SQLite integrity check plus the row hash chain from the first row to the last."""
        con = self._connect()
        try:
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                return False, f"database integrity check failed: {integrity}"
            prev = _GENESIS
            n = 0
            for row in con.execute("SELECT * FROM request ORDER BY seq"):
                values = dict(row)
                if values["prev_hash"] != prev:
                    return False, f"chain broken before request {values['id']} (a row was removed or reordered)"
                if _row_hash(prev, values) != values["row_hash"]:
                    return False, f"request {values['id']} was altered after it was recorded"
                prev = values["row_hash"]
                n += 1
        finally:
            con.close()
        return True, f"{n} request(s); integrity ok; hash chain intact"


# ------------------------------------------------------------------------------------------------- CLI

def _summary(rec: dict) -> str:
    decision = "ALLOWED" if rec["allowed"] else "REFUSED"
    wm = rec.get("watermark_payload") or "-"
    if rec.get("outcome"):
        decision = f"{decision}/{rec['outcome']}"
    return printable(f"{rec['time']}  {rec['id']}  {decision:7s}  consent="
                     f"{rec.get('consent_choice') and _short(rec['consent_choice'])}"
                     f"  name={rec.get('consent_name') or '-'}  wm={wm}  {rec['reason']}")


def _dump(value) -> str:
    """JSON for the terminal: indented, unsafe characters escaped, rows stored before `clean_text` included."""
    return printable(json.dumps(value, indent=2, ensure_ascii=False, default=str), keep_newlines=True)


def _short(choice: str) -> str:
    from safety.consent import CONSENT_KEYS

    return CONSENT_KEYS.get(choice, choice)


def cli(argv: list[str]) -> int:
    """Entry point for `python -m safety audit show ID | tail [-n N] | find-watermark HEX | verify`."""
    p = argparse.ArgumentParser(prog="python -m safety audit", description="Read the audit log.")
    p.add_argument("--db", help="audit database (default: $VASA_DATA_DIR/audit.db)")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("show", help="one request as JSON")
    s.add_argument("id")
    t = sub.add_parser("tail", help="the last requests")
    t.add_argument("-n", type=int, default=20)
    t.add_argument("--json", action="store_true")
    f = sub.add_parser("find-watermark", help="requests whose output carries this payload")
    f.add_argument("payload")
    sub.add_parser("verify", help="check the database and the hash chain")
    args = p.parse_args(argv[1:] if argv and argv[0] == "audit" else argv)
    log = AuditLog(args.db)
    if args.action == "show":
        rec = log.get(args.id)
        if rec is None:
            print(printable(f"error: no request with id {args.id!r}"), file=sys.stderr)
            return 1
        print(_dump(rec))
        return 0
    if args.action == "tail":
        recs = log.tail(args.n)
        if args.json:
            print(_dump(recs))
        else:
            for rec in recs:
                print(_summary(rec))
            if not recs:
                print("(the audit log is empty)")
        return 0
    if args.action == "find-watermark":
        recs = log.find_by_watermark(args.payload)
        print(_dump(recs))
        return 0 if recs else 1
    if args.action == "verify":
        ok, message = log.verify_chain()
        print(printable(message), file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    return 2
