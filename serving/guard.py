"""An ASGI middleware in front of the Gradio app: the bounds Gradio has no option for.

* Security headers on every response: no framing by other sites (CSP frame-ancestors + X-Frame-Options),
  nosniff, no referrer, camera/microphone for this origin only.
* On the routes that start a job (queue/join, call/NAME): the request body is capped (1 MB: files are uploaded
  separately, and Gradio's own max_file_size caps those); file inputs given as URLs are refused (Gradio would
  fetch them from the internet with no size cap); and the heavy events (`limited` api names) are admitted
  per client: at most `client_concurrent` waiting or running, and `client_per_minute` per minute. A refused job
  gets HTTP 429 with one sentence; the whole queue's bound is Gradio's own (`queue(max_size=...)`, HTTP 503).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from serving.limits import HostLimits, RateLimiter, client_key

__all__ = ["HostGuard", "MSG_CLIENT_BUSY", "MSG_CLIENT_RATE", "MSG_URL_INPUT", "security_headers"]

MSG_CLIENT_BUSY = ("You already have {n} job(s) waiting or running, the most one visitor may have at once here; "
                   "please wait for them to finish.")
MSG_CLIENT_RATE = "You have started {n} jobs in the last minute, the most allowed here; please try again shortly."
MSG_URL_INPUT = "Files must be uploaded; links to files elsewhere are not fetched here."
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
                 prefix: str = "/gradio_api"):
        self.app = app
        self.blocks = blocks
        self.limits = limits or HostLimits.from_env()
        self.limited = set(limited)
        self.prefix = prefix
        self.rate = RateLimiter(self.limits.client_per_minute)
        self.headers = security_headers(self.limits.frame_ancestors)

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
                if _has_url_file(payload):
                    return await self._reply(send_with_headers, 400, MSG_URL_INPUT)
                if api_name == "" and isinstance(payload, dict):
                    api_name = self._api_name(payload.get("fn_index"))
                if api_name in self.limited:
                    refusal = self._admit(scope, api_name)
                    if refusal:
                        return await self._reply(send_with_headers, 429, refusal)
                return await self.app(scope, self._replay(body, receive), send_with_headers)
        return await self.app(scope, receive, send_with_headers)

    # ---------------------------------------------------------------------------------------------------
    def _api_name(self, fn_index) -> str | None:
        try:
            fn = self.blocks.fns.get(int(fn_index)) if self.blocks is not None else None
        except (TypeError, ValueError):
            return None
        return getattr(fn, "api_name", None) if fn is not None else None

    def _key(self, host: str | None, headers: dict) -> str:
        return client_key(host, headers, self.limits.trust_proxy)

    def _pending(self, key: str) -> int:
        """Jobs of `key` waiting or running in Gradio's queue."""
        queue = getattr(self.blocks, "_queue", None)
        if queue is None:
            return 0
        n = 0
        for event in list(queue.event_ids_to_events.values()):
            req = getattr(event, "request", None)
            if req is None or getattr(event.fn, "api_name", None) not in self.limited:
                continue
            host = req.client.host if req.client else None
            if self._key(host, {k.lower(): v for k, v in req.headers.items()}) == key:
                n += 1
        return n

    def _admit(self, scope, api_name: str) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client")
        key = self._key(client[0] if client else None, headers)
        if self._pending(key) >= self.limits.client_concurrent:
            return MSG_CLIENT_BUSY.format(n=self.limits.client_concurrent)
        if not self.rate.admit(key):
            return MSG_CLIENT_RATE.format(n=self.limits.client_per_minute)
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
    async def _reply(send, status: int, sentence: str) -> None:
        body = json.dumps({"detail": sentence, "error": sentence}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
