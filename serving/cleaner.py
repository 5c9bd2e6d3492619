"""Output time-to-live: the demo's results (and Gradio's cached copies of them) are deleted after a while, at
start and then periodically, so the disk does not grow forever.

    clean(folders, ttl_s)          delete files older than ttl_s (and half-written ".unsigned" files at once)
    Cleaner(folders, ttl_s, every_s, audit=..., stale_job_s=..., uploads=...)   the same in a daemon thread; at
                                   start it also marks requests left unfinished by a killed process as
                                   'abandoned'; with an `UploadLedger` it deletes unclaimed uploads as they expire
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["CleanReport", "clean", "Cleaner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanReport:
    """What one pass did: files and bytes removed, empty folders removed."""

    files: int
    bytes: int
    folders: int


def clean(folders: Sequence[str | Path], ttl_s: float, unsigned_ttl_s: float = 0.0,
          now: float | None = None) -> CleanReport:
    """Delete every file under `folders` last modified more than `ttl_s` seconds ago; files whose name contains
    ".unsigned" (an encoder's output a killed job never signed) once older than `unsigned_ttl_s`; then empty
    sub-folders. Symlinks are removed, never followed. Missing folders are fine."""
    now = time.time() if now is None else now
    files = nbytes = nfolders = 0
    for root in folders:
        root = Path(root)
        if not root.is_dir():
            continue
        dirs = []
        for path in root.rglob("*"):
            try:
                if path.is_symlink() or path.is_file():
                    st = path.lstat()
                    limit = unsigned_ttl_s if ".unsigned" in path.name else ttl_s
                    if now - st.st_mtime > limit:
                        path.unlink(missing_ok=True)
                        files += 1
                        nbytes += st.st_size
                elif path.is_dir():
                    dirs.append(path)
            except OSError:
                continue
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()                      # only succeeds when empty
                nfolders += 1
            except OSError:
                pass
    return CleanReport(files, nbytes, nfolders)


class Cleaner:
    """Runs :func:`clean` at start and every `every_s` seconds in a daemon thread.

    At start it also records 'abandoned' in the audit log for allowed requests that never got an output or an
    outcome and whose process is gone (`AuditLog.mark_abandoned`: by the process recorded with the request, or,
    for requests without one, by age over `stale_job_s`), and removes ".unsigned" leftovers older than
    `stale_job_s`. With `uploads` (a `serving.uploads.UploadLedger`) it also sweeps unclaimed uploads, waking
    at least every quarter of their time-to-live.
    """

    def __init__(self, folders: Sequence[str | Path], ttl_s: float, every_s: float, audit=None,
                 stale_job_s: float = 600.0, uploads=None):
        self.folders = [Path(f) for f in folders]
        self.ttl_s, self.every_s, self.stale_job_s = float(ttl_s), float(every_s), float(stale_job_s)
        self.audit = audit
        self.uploads = uploads
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> CleanReport:
        rep = clean(self.folders, self.ttl_s, unsigned_ttl_s=self.stale_job_s)
        self.passes += 1
        if rep.files:
            log.info("cleaner: removed %d file(s), %.1f MB", rep.files, rep.bytes / 1e6)
        return rep

    def start(self) -> "Cleaner":
        if self.audit is not None:
            try:
                ids = self.audit.mark_abandoned(self.stale_job_s)
                if ids:
                    log.warning("audit: %d request(s) left unfinished by an earlier run marked abandoned", len(ids))
            except Exception:
                log.exception("could not mark abandoned requests")
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="vasa-cleaner", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        wake = self.every_s if self.uploads is None else max(0.5, min(self.every_s, self.uploads.ttl_s / 4))
        last = time.monotonic()
        while not self._stop.wait(wake):
            try:
                if self.uploads is not None:
                    self.uploads.sweep()
                if time.monotonic() - last >= self.every_s - 1e-3:
                    last = time.monotonic()
                    self.run_once()
            except Exception:
                log.exception("cleaner pass failed")

    def stop(self) -> None:
        self._stop.set()
