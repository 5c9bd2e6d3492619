"""Host bounds for the public demo: every knob an operator can set, read from environment variables with safe
defaults, plus the two mechanisms that enforce the ones Gradio does not: a per-client rate limiter and a job
timeout.

    HostLimits.from_env()      the knobs (README "Hosting" lists them)
    RateLimiter                per-client sliding one-minute window (admissions), thread-safe
    run_with_timeout(fn, s)    run fn in this thread; raise JobTimeout in it when it runs past s seconds

A "client" (visitor) is the connecting IP address. X-Forwarded-For is ignored unless VASA_TRUST_PROXY=1, and
then only from the proxy addresses in VASA_PROXY_IPS: uvicorn (which Gradio starts) rewrites the client address
from that header itself, trusting FORWARDED_ALLOW_IPS, so `forwarded_allow_ips` sets that variable from these
knobs before the server starts (uvicorn's own default trusts 127.0.0.1, which let any local caller pick its
address). Without a proxy in front, everyone behind one NAT shares one budget, and anyone with many addresses
gets many budgets: IP-based limits belong in the proxy as well.
"""
from __future__ import annotations

import collections
import ctypes
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

__all__ = ["HostLimits", "RateLimiter", "JobTimeout", "run_with_timeout", "client_key", "forwarded_allow_ips",
           "MSG_BUSY"]

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
    client_light_per_minute: lighter CPU calls (the face finder, the detector report) one client may make per
        minute, at most one of each waiting or running at once [VASA_CLIENT_LIGHT_PER_MINUTE].
    upload_mb_per_minute: megabytes one client may upload per minute [VASA_UPLOAD_MB_PER_MINUTE].
    upload_ttl_s: an upload no job has used is deleted this long after it arrived [VASA_UPLOAD_TTL_S].
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
    proxy_ips: the proxy addresses (or networks) whose X-Forwarded-For is believed when trust_proxy is on,
        comma-separated [VASA_PROXY_IPS].
    frame_ancestors: sites allowed to embed the demo in a frame (CSP frame-ancestors), default none
        [VASA_FRAME_ANCESTORS].
    """

    queue_size: int = 8
    client_concurrent: int = 2
    client_per_minute: int = 6
    client_light_per_minute: int = 30
    upload_mb: float = 30.0
    upload_mb_per_minute: float = 100.0
    upload_ttl_s: float = 600.0
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
    proxy_ips: str = "127.0.0.1,::1"
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
            client_light_per_minute=int(_env(env, "VASA_CLIENT_LIGHT_PER_MINUTE", d.client_light_per_minute, 1,
                                             100_000)),
            upload_mb=_env(env, "VASA_MAX_UPLOAD_MB", d.upload_mb, 0.1, 50),
            upload_mb_per_minute=_env(env, "VASA_UPLOAD_MB_PER_MINUTE", d.upload_mb_per_minute, 0.1, 100_000),
            upload_ttl_s=_env(env, "VASA_UPLOAD_TTL_S", d.upload_ttl_s, 2, 7 * 86400),
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
            proxy_ips=",".join(a.strip() for a in env.get("VASA_PROXY_IPS", d.proxy_ips).split(",") if a.strip())
            or d.proxy_ips,
            frame_ancestors=env.get("VASA_FRAME_ANCESTORS", d.frame_ancestors).strip() or d.frame_ancestors,
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def client_key(host: str | None) -> str:
    """The address a client is counted under: the peer address as the server saw it (behind a trusted proxy,
    uvicorn has already replaced it with the address the proxy reported; see `forwarded_allow_ips`)."""
    return (host or "unknown")[:64]


def forwarded_allow_ips(limits: HostLimits, env: dict | None = None) -> str:
    """Set uvicorn's FORWARDED_ALLOW_IPS in `env` (default os.environ) from the host's knobs and return it:
    empty (no address is trusted, X-Forwarded-For is ignored) unless trust_proxy, then the proxy addresses.
    Call before the server starts: uvicorn reads it when Gradio builds its server config."""
    value = limits.proxy_ips if limits.trust_proxy else ""
    (os.environ if env is None else env)["FORWARDED_ALLOW_IPS"] = value
    return value


class RateLimiter:
    """At most `per_minute` units per key in any sliding `window_s` window (thread-safe). A unit is one
    admission by default; `admit(key, amount)` spends more (bytes, for the upload budget)."""

    def __init__(self, per_minute: float, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.per_minute = float(per_minute)
        self.window_s = float(window_s)
        self._clock = clock
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def used(self, key: str) -> float:
        """Units `key` spent in the current window."""
        now = self._clock()
        with self._lock:
            q = self._seen.get(key)
            return sum(a for t, a in q if now - t < self.window_s) if q else 0.0

    def admit(self, key: str, amount: float = 1.0) -> bool:
        """Record `amount` for `key` and return True, or return False (nothing recorded) when it would go over."""
        now = self._clock()
        with self._lock:
            q = self._seen.setdefault(key, collections.deque())
            while q and now - q[0][0] >= self.window_s:
                q.popleft()
            if sum(a for _, a in q) + amount > self.per_minute:
                return False
            q.append((now, float(amount)))
            if len(self._seen) > 10_000:                       # forget idle clients (bounded memory)
                for k in [k for k, v in self._seen.items() if not v or now - v[-1][0] >= self.window_s][:5_000]:
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
