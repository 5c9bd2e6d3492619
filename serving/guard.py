"""An ASGI middleware in front of the Gradio app: the bounds Gradio has no option for.

* Security headers on every response: no framing by other sites (CSP frame-ancestors + X-Frame-Options),
  nosniff, no referrer, camera/microphone for this origin only.
* On the routes that start a job (queue/join, call/NAME): the request body is capped (1 MB: files are uploaded
  separately, and Gradio's own max_file_size caps those); file inputs given as URLs are refused (Gradio would
  fetch them from the internet with no size cap), and so are file inputs naming a path outside Gradio's upload
  folder (one sentence and an audit row, not Gradio's own error); every event that spends CPU is admitted per
  client (visitor): the jobs (`limited`: Generate, Detect, Live) at most `client_concurrent` waiting or running
  and `client_per_minute` per minute; the lighter calls (`light`: the face finder, the detector report) at most
  one of each waiting or running and `client_light_per_minute` per minute. A refused call gets HTTP 429 with one
  sentence; the whole queue's bound is Gradio's own (`queue(max_size=...)`, HTTP 503).
* On the upload route: each client may upload `upload_mb_per_minute` megabytes a minute (HTTP 429 beyond);
  an upload must say its size (Content-Length), which is what is counted.

The client address is the peer address as uvicorn reports it; X-Forwarded-For is believed only from a trusted
proxy (`serving.limits.forwarded_allow_ips`). A refusal made here is also remembered for the browser session
that asked (`last_refusal`), so the page can keep the sentence in its status box.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from serving.limits import HostLimits, RateLimiter, client_key

__all__ = ["HostGuard", "MSG_CLIENT_BUSY", "MSG_CLIENT_RATE", "MSG_URL_INPUT", "MSG_SERVER_PATH", "MSG_UPLOAD_BUDGET",
           "security_headers", "remember_refusal", "last_refusal"]

log = logging.getLogger(__name__)

MSG_CLIENT_BUSY = ("You already have {n} job(s) waiting or running, the most one visitor may have at once here; "
                   "please wait for them to finish.")
MSG_CLIENT_RATE = "You have started {n} jobs in the last minute, the most allowed here; please try again shortly."
MSG_URL_INPUT = "Files must be uploaded; links to files elsewhere are not fetched here."
MSG_SERVER_PATH = "Files must be uploaded to this demo; paths to files on the server are not accepted."
MSG_CLIENT_LIGHT_BUSY = "Your previous request of this kind is still running; please wait for it to finish."
MSG_CLIENT_LIGHT_RATE = ("You have made {n} requests of this kind in the last minute, the most allowed here; please "
                         "try again shortly.")
MSG_UPLOAD_BUDGET = ("You have uploaded {mb:g} MB in the last minute, the most one visitor may upload here; please "
                     "wait a minute and try again.")
MSG_UPLOAD_LENGTH = "Uploads must state their size (a Content-Length header)."
MSG_BODY = "The request is too large."
MAX_BODY = 1 << 20


def security_headers(frame_ancestors: str = "'none'") -> list[tuple[bytes, bytes]]:
    """The headers added to every response."""
    h = [(b"content-security-policy", f"frame-ancestors {frame_ancestors}".encode()),
         (b"x-content-type-options", b"nosniff"),
         (b"referrer-policy", b"no-referrer"),
         (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
         (b"cross-origin-opener-policy", b"same-origin")]
    if frame_ancestors.strip() == "'none'":
        h.append((b"x-frame-options", b"DENY"))
    return h


_REFUSALS: collections.OrderedDict[str, str] = collections.OrderedDict()
_REFUSALS_LOCK = threading.Lock()


def remember_refusal(session_hash: str | None, sentence: str) -> None:
    """Keep the last refusal of a browser session (bounded), for `last_refusal`."""
    if not session_hash:
        return
    with _REFUSALS_LOCK:
        _REFUSALS[str(session_hash)] = sentence
        _REFUSALS.move_to_end(str(session_hash))
        while len(_REFUSALS) > 5_000:
            _REFUSALS.popitem(last=False)


def last_refusal(session_hash: str | None) -> str | None:
    """The refusal `remember_refusal` kept for this session, once (None when there is none)."""
    with _REFUSALS_LOCK:
        return _REFUSALS.pop(str(session_hash), None) if session_hash else None


def _file_paths(data: Any) -> list[str]:
    """Every "path" string of a dict in `data` (FileData, with or without its "meta": Gradio reads both)."""
    found, stack = [], [data]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if isinstance(x.get("path"), str):
                found.append(x["path"])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return found


def _has_url_file(data: Any) -> bool:
    """True if any FileData-like dict in `data` points at a URL."""
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k in ("path", "url"):
                v = x.get(k)
                if k == "path" and isinstance(v, str) and v.strip().lower().startswith(("http://", "https://",
                                                                                        "ftp://", "//")):
                    return True
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


class HostGuard:
    """ASGI middleware. `blocks` is the Gradio Blocks (to count a client's pending jobs in its queue);
    `limited` the api names that count as jobs."""

    def __init__(self, app, blocks=None, limits: HostLimits | None = None, limited: Iterable[str] = (),
                 light: Iterable[str] = (), prefix: str = "/gradio_api", upload_dir: str | Path | None = None,
                 audit: Callable[[], Any] | None = None):
        self.app = app
        self.blocks = blocks
        self.limits = limits or HostLimits.from_env()
        self.limited = set(limited)
        self.light = set(light)
        self.prefix = prefix
        self.rate = RateLimiter(self.limits.client_per_minute)
        self.light_rate = RateLimiter(self.limits.client_light_per_minute)
        self.upload_rate = RateLimiter(self.limits.upload_mb_per_minute * 1e6)
        self.upload_dir = Path(upload_dir or os.environ.get("GRADIO_TEMP_DIR") or "/nonexistent").resolve()
        self.audit = audit
        self.headers = security_headers(self.limits.frame_ancestors)
        self._joining: collections.Counter = collections.Counter()   # (client, api) admitted, not yet queued

    # ---------------------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in names]
            await send(message)

        path = scope.get("path", "")
        if scope.get("method") == "POST" and path.startswith(self.prefix):
            sub = path[len(self.prefix):].rstrip("/")
            api_name = None
            if sub == "/queue/join":
                api_name = ""              # from the body
            elif sub.startswith("/call/"):
                api_name = sub.split("/")[-1]
            if api_name is not None:
                body, too_big = await self._read_body(receive)
                if too_big:
                    return await self._reply(send_with_headers, 413, MSG_BODY)
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {}
                session = payload.get("session_hash") if isinstance(payload, dict) else None
                if api_name == "" and isinstance(payload, dict):
                    api_name = self._api_name(payload.get("fn_index"))
                metered = api_name in self.limited or api_name in self.light
                if metered:                            # first: refusals below spend the visitor's budget too
                    refusal = self._admit(scope, api_name)
                    if refusal:
                        return await self._reply(send_with_headers, 429, refusal, session)
                bad = None
                if _has_url_file(payload):
                    bad = MSG_URL_INPUT
                elif any(not self._uploaded(p) for p in _file_paths(payload)) or self._bare_file(api_name, payload):
                    bad = MSG_SERVER_PATH
                if bad:
                    if metered:                        # an audit row, as for every refusal of a job (metered,
                        self._record(api_name, bad)    # so a flood of them cannot grow the log unbounded)
                    return await self._reply(send_with_headers, 400, bad, session)
                if metered:
                    joining = (self._key(scope), api_name)
                    self._joining[joining] += 1        # until Gradio has queued it (it answers after that)
                    try:
                        return await self.app(scope, self._replay(body, receive), send_with_headers)
                    finally:
                        self._joining[joining] -= 1
                        if self._joining[joining] <= 0:
                            del self._joining[joining]
                return await self.app(scope, self._replay(body, receive), send_with_headers)
            if sub == "/upload":
                refusal = self._admit_upload(scope)
                if refusal:
                    code, sentence = refusal
                    return await self._reply(send_with_headers, code, sentence)
        return await self.app(scope, receive, send_with_headers)

    # ---------------------------------------------------------------------------------------------------
    def _api_name(self, fn_index) -> str | None:
        try:
            fn = self.blocks.fns.get(int(fn_index)) if self.blocks is not None else None
        except (TypeError, ValueError):
            return None
        return getattr(fn, "api_name", None) if fn is not None else None

    def _bare_file(self, api_name: str | None, payload: Any) -> bool:
        """True when a file input of a metered event (`limited`, `light`) is given as something other than an
        upload's description (e.g. a bare path string, which Gradio answers with its own error)."""
        if api_name not in self.limited and api_name not in self.light or not isinstance(payload, dict):
            return False
        fns = getattr(self.blocks, "fns", {}) if self.blocks is not None else {}
        fn = next((f for f in fns.values() if getattr(f, "api_name", None) == api_name), None)
        data = payload.get("data")
        if fn is None or not isinstance(data, list):
            return False
        import gradio as gr
        for comp, value in zip(getattr(fn, "inputs", []), data):
            if (isinstance(comp, (gr.Image, gr.Audio, gr.Video, gr.File)) and not getattr(comp, "streaming", False)
                    and value is not None and not (isinstance(value, dict) and isinstance(value.get("path"), str))):
                return True
        return False

    @staticmethod
    def _key(scope) -> str:
        client = scope.get("client")
        return client_key(client[0] if client else None)

    def _uploaded(self, path: str) -> bool:
        """Is `path` inside Gradio's upload/cache folder (where uploads and the demo's own examples live)?"""
        try:
            return Path(path).resolve().is_relative_to(self.upload_dir)
        except (OSError, ValueError):
            return False

    def _record(self, api_name: str | None, sentence: str) -> None:
        """An audit row for a refusal made here (the gate never saw the request)."""
        if self.audit is None:
            return
        try:
            self.audit().start(allowed=False, reason=sentence, extra={"api": api_name, "refused_by": "host"})
        except Exception:
            log.exception("could not record a refusal in the audit log")

    def _pending(self, key: str, names: set[str]) -> int:
        """Events of `key` named in `names` waiting or running in Gradio's queue, plus those admitted here that
        Gradio has not answered yet (a burst arrives before Gradio has queued the first of it)."""
        queue = getattr(self.blocks, "_queue", None)
        n = 0
        if queue is not None:
            for event in list(queue.event_ids_to_events.values()):
                req = getattr(event, "request", None)
                if req is None or getattr(event.fn, "api_name", None) not in names:
                    continue
                if client_key(req.client.host if req.client else None) == key:
                    n += 1
        return n + sum(self._joining[(key, name)] for name in names if (key, name) in self._joining)

    def _admit(self, scope, api_name: str) -> str | None:
        key = self._key(scope)
        if api_name in self.light:
            if self._pending(key, {api_name}) >= 1:
                return MSG_CLIENT_LIGHT_BUSY
            if not self.light_rate.admit(key):
                return MSG_CLIENT_LIGHT_RATE.format(n=self.limits.client_light_per_minute)
        else:
            if self._pending(key, self.limited) >= self.limits.client_concurrent:
                return MSG_CLIENT_BUSY.format(n=self.limits.client_concurrent)
            if not self.rate.admit(key):
                return MSG_CLIENT_RATE.format(n=self.limits.client_per_minute)
        return None

    def _admit_upload(self, scope) -> tuple[int, str] | None:
        """(status, sentence) when an upload is over its client's budget or does not state its size."""
        length = None
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
        if length is None or length < 0:
            return 411, MSG_UPLOAD_LENGTH
        if not self.upload_rate.admit(self._key(scope), float(length)):
            return 429, MSG_UPLOAD_BUDGET.format(mb=self.limits.upload_mb_per_minute)
        return None

    @staticmethod
    async def _read_body(receive) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False

    @staticmethod
    def _replay(body: bytes, original) -> Callable:
        sent = {"done": False}

        async def receive():
            if not sent["done"]:
                sent["done"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await original()           # what comes next (a disconnect, when it comes)
        return receive

    @staticmethod
    async def _reply(send, status: int, sentence: str, session: str | None = None) -> None:
        remember_refusal(session, sentence)
        body = json.dumps({"detail": sentence, "error": sentence}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
