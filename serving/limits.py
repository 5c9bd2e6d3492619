"""Host bounds for the public demo: every knob an operator can set, read from environment variables with safe
defaults, plus the two mechanisms that enforce the ones Gradio does not: a per-client rate limiter and a job
timeout.

    HostLimits.from_env()      the knobs (README "Hosting" lists them)
    RateLimiter                per-client sliding one-minute window (admissions), thread-safe
    run_with_timeout(fn, s)    run fn in this thread; raise JobTimeout in it when it runs past s seconds

A "client" is the connecting IP address (or, with VASA_TRUST_PROXY=1 behind a reverse proxy that sets it, the
last address the proxy appended to X-Forwarded-For). Without a proxy in front, everyone behind one NAT shares one
budget, and anyone with many addresses gets many budgets: IP-based limits belong in the proxy as well.
"""
from __future__ import annotations

import collections
import ctypes
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

__all__ = ["HostLimits", "RateLimiter", "JobTimeout", "run_with_timeout", "client_key", "MSG_BUSY"]

MSG_BUSY = "The demo is busy right now (too many requests are waiting); please try again in a minute."


def _env(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or not str(raw).strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie between {lo:g} and {hi:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class HostLimits:
    """The operator's knobs (environment variable in brackets; units in the names).

    queue_size: jobs waiting or running in the whole demo before new ones get "busy" [VASA_QUEUE_SIZE].
    client_concurrent: jobs one client may have waiting or running at once [VASA_CLIENT_CONCURRENT].
    client_per_minute: jobs one client may submit per minute [VASA_CLIENT_PER_MINUTE].
    upload_mb: largest upload, any file [VASA_MAX_UPLOAD_MB].
    audio_s: longest audio clip, and longest live session [VASA_MAX_AUDIO_S].
    image_mp: largest portrait in megapixels, checked from the header before decoding [VASA_MAX_IMAGE_MP].
    max_size: largest output size in pixels offered [VASA_MAX_SIZE].
    generate_timeout_s / detect_timeout_s: a job running longer is stopped with a sentence
        [VASA_GENERATE_TIMEOUT_S, VASA_DETECT_TIMEOUT_S].
    detect_max_mp: largest video frame Detect decodes, megapixels [VASA_DETECT_MAX_MP].
    detect_max_frames: frames Detect decodes at most [VASA_DETECT_MAX_FRAMES].
    output_ttl_s: results (and Gradio's cached copies) are deleted this long after they were made
        [VASA_OUTPUT_TTL_S]; the cleaner runs at start and every clean_every_s [VASA_CLEAN_EVERY_S].
    trust_proxy: take the client address from X-Forwarded-For (only behind your own proxy) [VASA_TRUST_PROXY].
    frame_ancestors: sites allowed to embed the demo in a frame (CSP frame-ancestors), default none
        [VASA_FRAME_ANCESTORS].
    """

    queue_size: int = 8
    client_concurrent: int = 2
    client_per_minute: int = 6
    upload_mb: float = 30.0
    audio_s: float = 60.0
    image_mp: float = 40.0
    max_size: int = 512
    generate_timeout_s: float = 300.0
    detect_timeout_s: float = 60.0
    detect_max_mp: float = 2.2
    detect_max_frames: int = 250
    output_ttl_s: float = 3600.0
    clean_every_s: float = 300.0
    trust_proxy: bool = False
    frame_ancestors: str = "'none'"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "HostLimits":
        """Read the knobs from `env` (default os.environ); raise ValueError naming a bad variable."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            queue_size=int(_env(env, "VASA_QUEUE_SIZE", d.queue_size, 1, 10_000)),
            client_concurrent=int(_env(env, "VASA_CLIENT_CONCURRENT", d.client_concurrent, 1, 1_000)),
            client_per_minute=int(_env(env, "VASA_CLIENT_PER_MINUTE", d.client_per_minute, 1, 100_000)),
            upload_mb=_env(env, "VASA_MAX_UPLOAD_MB", d.upload_mb, 0.1, 50),
            audio_s=_env(env, "VASA_MAX_AUDIO_S", d.audio_s, 1, 600),
            image_mp=_env(env, "VASA_MAX_IMAGE_MP", d.image_mp, 0.1, 40),
            max_size=int(_env(env, "VASA_MAX_SIZE", d.max_size, 256, 1024)),
            generate_timeout_s=_env(env, "VASA_GENERATE_TIMEOUT_S", d.generate_timeout_s, 1, 24 * 3600),
            detect_timeout_s=_env(env, "VASA_DETECT_TIMEOUT_S", d.detect_timeout_s, 1, 24 * 3600),
            detect_max_mp=_env(env, "VASA_DETECT_MAX_MP", d.detect_max_mp, 0.01, 40),
            detect_max_frames=int(_env(env, "VASA_DETECT_MAX_FRAMES", d.detect_max_frames, 10, 10_000)),
            output_ttl_s=_env(env, "VASA_OUTPUT_TTL_S", d.output_ttl_s, 10, 365 * 86400),
            clean_every_s=_env(env, "VASA_CLEAN_EVERY_S", d.clean_every_s, 1, 86400),
            trust_proxy=env.get("VASA_TRUST_PROXY", "0").strip() in ("1", "true", "yes"),
            frame_ancestors=env.get("VASA_FRAME_ANCESTORS", d.frame_ancestors).strip() or d.frame_ancestors,
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def client_key(host: str | None, headers: Mapping[str, str] | None = None, trust_proxy: bool = False) -> str:
    """The address a client is counted under: the peer address, or behind a trusted proxy the last hop it
    appended to X-Forwarded-For (the earlier hops are whatever the client wrote and cannot be trusted)."""
    if trust_proxy and headers is not None:
        fwd = headers.get("x-forwarded-for") or headers.get("X-Forwarded-For")
        if fwd:
            last = fwd.split(",")[-1].strip()
            if last:
                return last[:64]
    return (host or "unknown")[:64]


class RateLimiter:
    """At most `per_minute` admissions per key in any sliding 60-second window (thread-safe)."""

    def __init__(self, per_minute: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.per_minute = int(per_minute)
        self.window_s = float(window_s)
        self._clock = clock
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> bool:
        """Record one admission for `key` and return True, or return False (nothing recorded) when over."""
        now = self._clock()
        with self._lock:
            q = self._seen.setdefault(key, collections.deque())
            while q and now - q[0] >= self.window_s:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            if len(self._seen) > 10_000:                       # forget idle clients (bounded memory)
                for k in [k for k, v in self._seen.items() if not v or now - v[-1] >= self.window_s][:5_000]:
                    del self._seen[k]
            return True


class JobTimeout(BaseException):
    """Raised inside a job that ran past its time limit. A BaseException (like KeyboardInterrupt), so that the
    job's own ``except Exception`` handlers do not swallow it; ``finally`` blocks still run."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


def run_with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run `fn()` in the calling thread; if it is still running after `timeout_s` seconds, raise
    :class:`JobTimeout` inside it (delivered at its next Python bytecode, so a job stuck in one long C call
    stops when that call returns). The job's own ``finally`` blocks run, so half-written files are removed.
    """
    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire():
        with lock:
            if not state["done"]:
                state["fired"] = True
                _set_async_exc(tid, JobTimeout)

    timer = threading.Timer(float(timeout_s), fire)
    timer.daemon = True
    timer.start()
    try:
        return fn()
    finally:
        with lock:
            state["done"] = True
            timer.cancel()
            if state["fired"]:
                _set_async_exc(tid, ctypes.py_object())      # clear it if it has not been delivered yet
