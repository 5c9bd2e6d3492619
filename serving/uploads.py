"""Uploads that no job claims are deleted within minutes.

Gradio keeps every file posted to its upload route (in its cache folder, listed in `Blocks.upload_file_set`)
until its cache clean-up, an hour by default: a client could park gigabytes there without ever starting a
job. `UploadLedger` watches that set: the app `claim`s the files a job (Generate, Detect, Live) receives, and
`sweep` deletes every other upload older than `ttl_s` seconds (by the file's modification time: when the upload
finished). Claimed files are left to the output clean-up (`serving.cleaner`).

    ledger = UploadLedger(demo.upload_file_set, ttl_s=600)
    ledger.claim(path)          # in a job
    ledger.sweep()              # from the cleaner's thread, every few seconds to minutes
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Iterable, MutableSet

__all__ = ["UploadLedger", "MSG_UPLOAD_EXPIRED"]

log = logging.getLogger(__name__)

MSG_UPLOAD_EXPIRED = ("Your uploaded file was deleted because no video was made from it within {minutes:g} "
                      "minutes; please upload it again.")


class UploadLedger:
    """Deletes uploads no job claimed within `ttl_s` seconds (thread-safe).

    uploaded: the set Gradio adds every uploaded path to (`Blocks.upload_file_set`; read, and pruned of what
    is deleted). ttl_s: how long an unclaimed upload is kept.
    """

    def __init__(self, uploaded: MutableSet[str] | None, ttl_s: float):
        self.uploaded = uploaded if uploaded is not None else set()
        self.ttl_s = float(ttl_s)
        self._claimed: set[str] = set()
        self._swept: collections.OrderedDict[str, None] = collections.OrderedDict()   # recent, bounded
        self._lock = threading.Lock()

    def claim(self, *paths: str | Path | None) -> None:
        """Mark uploads as used by a job: `sweep` leaves them alone."""
        with self._lock:
            for p in paths:
                if p:
                    self._claimed.add(str(p))

    def was_swept(self, path: str | Path | None) -> bool:
        """True when `path` was an upload this ledger deleted (the visitor should upload it again)."""
        with self._lock:
            return bool(path) and str(path) in self._swept

    def sweep(self, now: float | None = None) -> int:
        """Delete unclaimed uploads older than ttl_s (and their folder when it is left empty); return how many."""
        now = time.time() if now is None else now
        removed = 0
        for path in list(self.uploaded):            # a copy: Gradio adds to the set from other threads
            key = str(path)
            with self._lock:
                if key in self._claimed:
                    continue
            p = Path(key)
            try:
                st = p.lstat()
            except FileNotFoundError:
                self.uploaded.discard(path)
                continue
            except OSError:
                continue
            if now - st.st_mtime <= self.ttl_s:
                continue
            try:
                p.unlink()
                removed += 1
            except OSError:
                continue
            self.uploaded.discard(path)
            with self._lock:
                self._swept[key] = None
                while len(self._swept) > 10_000:
                    self._swept.popitem(last=False)
            try:
                p.parent.rmdir()                    # Gradio's per-upload folder, when now empty
            except OSError:
                pass
        with self._lock:                            # forget claims on files that are gone
            self._claimed = {c for c in self._claimed if Path(c).exists()}
        if removed:
            log.info("uploads: deleted %d upload(s) no job used within %.0f s", removed, self.ttl_s)
        return removed

    def claimed(self) -> Iterable[str]:
        with self._lock:
            return set(self._claimed)
