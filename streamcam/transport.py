"""The one socket factory: every ZeroMQ socket in streamcam is made here, with one policy.

Policy (why):
* ``LINGER 0`` — a stopping stage never hangs on unsent frames.
* small high-water marks — a live pipeline wants the newest frame, not a backlog;
  a full queue means *drop and count*, never block (sends use ``NOBLOCK``).
* receive timeouts — loops wake up regularly to see the stop event.
* no ``CONFLATE``: it silently breaks multipart messages. Latest-frame behaviour
  comes from draining on the receiver (:func:`drain`; the processor's intake keeps
  the newest frame of each stream).
* tcp binds default to loopback; binding elsewhere must be explicit in the config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import zmq

from .errors import ConfigError

_TYPES = {"PUSH": zmq.PUSH, "PULL": zmq.PULL, "PUB": zmq.PUB, "XPUB": zmq.XPUB, "SUB": zmq.SUB,
          "PAIR": zmq.PAIR, "REQ": zmq.REQ, "REP": zmq.REP}
"""XPUB: a PUB that hands its owner the subscriptions (the publisher makes only what is subscribed)."""


def check_endpoint(endpoint: str, key: str = "endpoint") -> str:
    """Validate a ZeroMQ endpoint string, naming the config key when it is wrong."""
    if not isinstance(endpoint, str):
        raise ConfigError(f"{key}: expected an endpoint string, got {endpoint!r}")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc"):
        raise ConfigError(f"{key}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {endpoint!r}")
    if scheme == "tcp":
        parsed = urlparse(endpoint)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None or not 0 < port < 65536:
            raise ConfigError(f"{key}: expected tcp://HOST:PORT with a port in 1-65535, got {endpoint!r}")
    elif not rest:
        raise ConfigError(f"{key}: {scheme} endpoint needs a path/name, got {endpoint!r}")
    elif scheme == "ipc" and len(rest.encode()) > 100:
        raise ConfigError(f"{key}: ipc path longer than the OS limit (~107 bytes): {endpoint!r}")
    return endpoint


@dataclass(frozen=True)
class SocketPolicy:
    sndhwm: int = 4
    rcvhwm: int = 4
    rcvtimeo_ms: int = 100
    linger_ms: int = 0
    heartbeat_ms: int = 0
    """ZMTP heartbeats every this many ms, the peer dropped after 4 unanswered (0: off). A PUSH that
    load-balances over workers uses them: a worker whose host went silent (no FIN, no RST) stops
    getting frames within 4 intervals instead of at TCP's timeout, minutes later."""


def make_socket(
    ctx: zmq.Context,
    kind: str,
    endpoint: str,
    *,
    bind: bool,
    policy: SocketPolicy = SocketPolicy(),
    subscribe: str | bytes | tuple[str, ...] | None = None,
    curve: Any = None,
) -> zmq.Socket:
    """Create, configure and bind/connect a socket of ``kind`` (PUSH, PULL, PUB, XPUB, SUB, PAIR, REQ or REP).

    ``curve``: a :class:`streamcam.security.Curve` to authenticate and encrypt tcp endpoints.
    A binding socket may name the port ``*`` (``tcp://127.0.0.1:*``): the OS picks a free one, and
    :func:`bound_endpoint` reads it back (tests: no free-port-then-bind race). In a config only
    ``endpoints.publish`` may (the publisher writes the bound one to ``<run_dir>/bound/``): the
    stages that connect to the others need their port before the binder starts.
    """
    any_port = bind and endpoint.startswith("tcp://") and endpoint.endswith(":*")
    check_endpoint(endpoint[:-1] + "1" if any_port else endpoint)
    sock = ctx.socket(_TYPES[kind])
    sock.setsockopt(zmq.LINGER, policy.linger_ms)
    sock.setsockopt(zmq.SNDHWM, policy.sndhwm)
    sock.setsockopt(zmq.RCVHWM, policy.rcvhwm)
    sock.setsockopt(zmq.RCVTIMEO, policy.rcvtimeo_ms)
    if policy.heartbeat_ms > 0:
        sock.setsockopt(zmq.HEARTBEAT_IVL, policy.heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 4 * policy.heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 4 * policy.heartbeat_ms)
    if kind == "PUSH":
        # Don't queue for peers that are not connected yet: a frame nobody can take is dropped.
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if kind == "SUB":
        for prefix in subscribe if isinstance(subscribe, tuple) else (subscribe or b"",):
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode() if isinstance(prefix, str) else prefix)
    if curve is not None:
        # CURVE options must be set before bind/connect (see streamcam.security).
        curve.apply(sock, bind, endpoint)
    try:
        if bind:
            if endpoint.startswith("ipc://"):
                path = endpoint[len("ipc://"):]
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                if os.path.exists(path):
                    # A stale socket file left by a killed stage: binding over it is safe
                    # because ipc endpoints are owned by exactly one binding stage.
                    os.unlink(path)
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise ConfigError(f"cannot {'bind' if bind else 'connect'} {kind} socket to {endpoint}: {exc}") from exc
    return sock


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket really bound (its port when it asked for ``*``)."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def send_nowait(sock: zmq.Socket, parts: list[Any]) -> bool:
    """Send a multipart message without blocking or copying; False when it had to be dropped."""
    try:
        sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        return True
    except zmq.Again:
        return False


def drain(sock: zmq.Socket, limit: int = 64) -> list[list[zmq.Frame]]:
    """Take every message waiting on ``sock`` (at most ``limit``), without blocking."""
    out = []
    for _ in range(limit):
        try:
            out.append(sock.recv_multipart(flags=zmq.NOBLOCK, copy=False))
        except zmq.Again:
            break
    return out


def ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None
