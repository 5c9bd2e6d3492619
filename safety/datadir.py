"""Where the safety layer keeps its state (gallery, audit log, certificates).

Set with the environment variable VASA_DATA_DIR; defaults to a per-user location
(~/.local/share/vasa or $XDG_DATA_HOME/vasa).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def data_dir() -> Path:
    """Return the data directory, creating it (mode 0700) if needed."""
    env = os.environ.get("VASA_DATA_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "vasa"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def connect_db(path: Path, autocommit: bool = False) -> sqlite3.Connection:
    """A connection to one of the safety layer's SQLite files, set up the one way they all use: write-ahead
    log, full fsync on commit, foreign keys enforced, up to 30 s of waiting on another writer's lock.
    autocommit: no implicit transactions (the caller writes its own BEGIN IMMEDIATE / COMMIT)."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None if autocommit else "")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA busy_timeout=30000")
    return con


def init_private_db(path: Path, schema: str, connect) -> None:
    """Create the SQLite file at `path` with `schema` (via `connect()`, the owner's connection factory)
    and make it readable by the operator only (it holds names and hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect()
    try:
        con.executescript(schema)
    finally:
        con.close()
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
