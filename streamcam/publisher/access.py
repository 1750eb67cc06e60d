"""Who the HTTP bridge serves: a connection cap, a Host allow-list and an access token.

* **Connection cap**: each MJPEG viewer holds a thread and a socket for as long as it
  watches; past ``max_clients`` open connections a new one is answered ``503`` at once
  and closed, so a client opening connections in a loop cannot exhaust threads.
* **Host allow-list** (DNS rebinding): a page on ``evil.example`` whose name is made
  to resolve to 127.0.0.1 reaches a loopback bridge *from the victim's browser*, with
  ``Host: evil.example``. Only the names this bridge is known by are answered (``421``);
  a request with no Host at all (HTTP/1.0 tools; never a browser) is let through.
* **Token**: when the bus is CURVE-secured or the bridge is bound beyond loopback, video
  is served only to clients that present the token: ``?token=...`` once (the response
  sets an ``HttpOnly``, ``SameSite=Strict`` cookie, so the page's own requests carry it)
  or ``Authorization: Bearer ...``. Compared in constant time.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Mapping, Optional
from urllib.parse import parse_qs

COOKIE = "streamcam_token"
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def host_names(bind_host: str, allowed: tuple[str, ...] = ()) -> frozenset[str]:
    """The Host header names served: ``allowed`` when given, else the loopback names and the bind host."""
    if allowed:
        return frozenset(h.lower() for h in allowed)
    names = set(LOCAL_NAMES)
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(bind_host.lower())
    return frozenset(names)


def _host_only(header: str) -> str:
    """``Host`` without its port: ``example.org:8080`` → ``example.org``, ``[::1]:80`` → ``[::1]``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


@dataclass
class BridgeAccess:
    """The bridge's admission rules; ``check(headers, query)`` says whether one request may be served."""

    hosts: frozenset[str]
    token: Optional[str] = None
    max_clients: int = 16
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _open: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError(f"max_clients: expected >= 1, got {self.max_clients}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token: expected at least 16 characters (use `streamcam keys` to make one)")
        self._slots = threading.BoundedSemaphore(self.max_clients)

    def admit(self) -> bool:
        """Take a connection slot; False when ``max_clients`` are open (answer 503 and close)."""
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self._open += 1
        return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1
        self._slots.release()

    @property
    def open(self) -> int:
        """Connections holding a slot now."""
        return self._open

    def check(self, headers: Mapping[str, str], query: str) -> tuple[int, str] | None:
        """None when the request may be served, else ``(status, why)``."""
        host = headers.get("Host")
        # Browsers always send Host (the rebinding attack rides on a browser); an HTTP/1.0 tool may not.
        if host is not None and _host_only(host) not in self.hosts:
            return 421, f"Host {host!r:.60} is not one this bridge serves (serve.allowed_hosts)"
        if self.token is None:
            return None
        if self.presented(headers, query) is None:
            return 401, "this bridge needs its access token (?token=... or Authorization: Bearer ...)"
        return None

    def presented(self, headers: Mapping[str, str], query: str) -> Optional[str]:
        """The valid token this request carries (query, bearer header or cookie), None otherwise."""
        candidates = parse_qs(query).get("token", [])
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            candidates.append(auth[len("Bearer "):].strip())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("Cookie", ""))
        except Exception:  # noqa: BLE001 (a malformed cookie header is simply no token)
            cookie = SimpleCookie()
        if COOKIE in cookie:
            candidates.append(cookie[COOKIE].value)
        assert self.token is not None
        want = self.token.encode()
        for c in candidates:
            if hmac.compare_digest(c.encode(errors="replace"), want):
                return c
        return None

    def set_cookie(self, headers: Mapping[str, str], query: str) -> Optional[str]:
        """A ``Set-Cookie`` value when the token came in the query (so later requests carry it)."""
        if self.token is None or self.token not in parse_qs(query).get("token", []):
            return None
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"


def read_token(path: str) -> str:
    """The token in ``path`` (first line, stripped); errors name the file."""
    from ..errors import ConfigError

    try:
        token = open(path, encoding="utf-8").readline().strip()
    except OSError as exc:
        raise ConfigError(f"serve.token_file: cannot read {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"serve.token_file: {path} holds no token of at least 16 characters")
    return token
