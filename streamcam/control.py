"""The supervisor's control endpoint: streams added, removed and listed at run time.

A REP socket (from the one socket factory) on ``endpoints.control`` answers one JSON request
with one JSON reply; `streamcam streams add|remove|list CONFIG` is its client:

    {"op": "list"}                                   -> {"ok": true, "streams": [{"id": ..., "source": {...}}]}
    {"op": "add", "stream": {"id": "cam2", "source": {"kind": "url", "uri": "rtsp://..."}}}
    {"op": "remove", "id": "cam2"}                   -> {"ok": true, "streams": [...]}  or  {"ok": false, "error": "..."}

A new stream is validated as a whole config with it added (the same checks as at start, naming
the key), so a bad one is refused and nothing changes. Added streams are captured and detected
like the configured ones; settings the other stages read at start (zones, per-stream detect
rate, the publisher's frame log) apply to them after a restart of those stages.
"""

from __future__ import annotations

import json
from typing import Any

import zmq

from .errors import ConfigError, StreamcamError
from .transport import SocketPolicy, make_socket

CONTROL_POLICY = SocketPolicy(sndhwm=16, rcvhwm=16, rcvtimeo_ms=5000)
MAX_REQUEST = 64 * 1024


def parse_request(raw: bytes) -> dict[str, Any]:
    """A request as a dict with a known ``op``, or ConfigError saying what is wrong with it."""
    if len(raw) > MAX_REQUEST:
        raise ConfigError(f"request: larger than {MAX_REQUEST} bytes")
    try:
        req = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"request: not JSON: {exc}") from None
    if not isinstance(req, dict) or req.get("op") not in ("list", "add", "remove"):
        raise ConfigError(f"request: expected an object with op list, add or remove, got {str(req)[:80]}")
    if req["op"] == "add" and not isinstance(req.get("stream"), dict):
        raise ConfigError("add: expected 'stream': {id, source: {...}}")
    if req["op"] == "remove" and not isinstance(req.get("id"), str):
        raise ConfigError("remove: expected 'id': a stream id")
    return req


def request(endpoint: str, req: dict[str, Any], timeout_s: float = 5.0, curve: Any = None) -> dict[str, Any]:
    """Send one request to a running supervisor's control endpoint and return its reply."""
    ctx = zmq.Context.instance()
    sock = make_socket(ctx, "REQ", endpoint, bind=False, policy=CONTROL_POLICY, curve=curve)
    try:
        sock.send(json.dumps(req).encode())
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise StreamcamError(f"no answer from {endpoint} within {timeout_s:g} s: is the pipeline running "
                                 "(streamcam run with this config)?")
        return json.loads(sock.recv())
    finally:
        sock.close(0)
