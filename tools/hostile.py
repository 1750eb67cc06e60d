"""A hostile client, written from ``docs/protocol.md`` alone (it imports nothing of streamcam).

    python tools/hostile.py --frames ipc://RUN/frames.sock --results ipc://RUN/results.sock --seconds 20

It pushes decodable-but-nasty messages at a running pipeline's ``frames`` (processor)
and ``results`` (publisher) endpoints: 400-digit integers, NaN and Infinity, control
characters in stream ids, ``"tracks": [1]``, deep nesting, lying shapes, reversed
boxes, wrong kinds, plus valid frames under ever new stream ids (a flood of per-stream
state). Every case carries the reason the documentation says a receiver rejects it
for (``None``: a valid message the stage must handle), so a test can check that each
reject was counted under its reason and nothing else failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

import zmq

BIG = int("9" * 400)
"""A 400-digit integer: valid JSON, beyond int64 and beyond a float."""


@dataclass(frozen=True)
class Case:
    """One nasty message: where it goes, the reason it must be rejected for (None: accepted)."""

    name: str
    endpoint: str  # "frames" or "results"
    reason: str | None
    build: Callable[[int], list[bytes]]


def _header(kind: str, stream: str, seq: int, parts: list[dict], **fields) -> dict:
    return {"v": 1, "kind": kind, "stream": stream, "seq": seq, "t_capture_ns": time.time_ns(), "parts": parts, **fields}


def _raw(name: str, h: int, w: int, pf: str = "GRAY8") -> dict:
    shape = [h, w, 3] if pf == "BGR8" else [h, w]
    dtype = {"GRAY16": "uint16", "CAM32": "float32"}.get(pf, "uint8")
    return {"name": name, "encoding": "raw", "shape": shape, "dtype": dtype, "pixel_format": pf}


def _msg(header: dict | str, payloads: list[bytes] = (), topic: str | None = None) -> list[bytes]:
    text = header if isinstance(header, str) else json.dumps(header)
    if topic is None:
        h = json.loads(text, parse_int=str, parse_float=str, parse_constant=str) if not isinstance(header, dict) else header
        topic = f"{h.get('kind')}/{h.get('stream')}"
    return [topic.encode("utf-8", "surrogatepass"), text.encode("utf-8", "surrogatepass"), *payloads]


def _frame(stream: str, seq: int, h: int = 24, w: int = 32, **fields) -> list[bytes]:
    return _msg(_header("frame", stream, seq, [_raw("image", h, w)], **fields), [bytes(h * w)])


def _result(stream: str, seq: int, h: int = 24, w: int = 32, **fields) -> list[bytes]:
    fields.setdefault("width", w)
    fields.setdefault("height", h)
    fields.setdefault("detections", [])
    return _msg(_header("result", stream, seq, [_raw("image", h, w)], **fields), [bytes(h * w)])


def _with_big(kind: str, key: str) -> Callable[[int], list[bytes]]:
    """A header whose ``key`` is the 400-digit integer, written as JSON text (json.dumps would too)."""
    def build(seq: int) -> list[bytes]:
        make = _frame if kind == "frame" else _result
        parts = make("evil", seq)
        h = json.loads(parts[1])
        h[key] = BIG
        return [parts[0], json.dumps(h).encode(), *parts[2:]]
    return build


def _deep(seq: int) -> list[bytes]:
    h = _header("frame", "evil", seq, [_raw("image", 24, 32)])
    text = json.dumps(h)[:-1] + ', "x": ' + "[" * 200 + "]" * 200 + "}"
    return _msg(text, [bytes(24 * 32)], topic="frame/evil")


def cases() -> list[Case]:
    """Every case this client sends, with the documented reject reason."""
    big_box = [{"box": [0, 0, BIG, 1], "score": 0.5, "label": "person", "track_id": None}]
    big_tid = [{"box": [0, 0, 1, 1], "score": 0.5, "label": "person", "track_id": BIG}]
    nan_score = '{"box": [0, 0, 1, 1], "score": NaN, "label": "person", "track_id": null}'
    return [
        # --- at the processor (frames endpoint) ---
        Case("seq 400 digits", "frames", "bad_number", _with_big("frame", "seq")),
        Case("t_capture_ns 400 digits", "frames", "bad_number", _with_big("frame", "t_capture_ns")),
        Case("shape 400 digits", "frames", "bad_number", lambda s: _msg(
            _header("frame", "evil", s, [dict(_raw("image", 24, 32), shape=[BIG, 32])]), [bytes(24 * 32)])),
        Case("NUL in stream id", "frames", "bad_field", lambda s: _frame("ev\x00il", s)),
        Case("ESC in stream id", "frames", "bad_field", lambda s: _frame("ev\x1b[2Jil", s)),
        Case("bidi override in stream id", "frames", "bad_field", lambda s: _frame("ev\u202eil", s)),
        Case("line separator in stream id", "frames", "bad_field", lambda s: _frame("ev\u2028il", s)),
        Case("lone surrogate in stream id", "frames", "bad_field", lambda s: _msg(
            json.dumps(_header("frame", "ev\ud800il", s, [_raw("image", 24, 32)])), [bytes(24 * 32)],
            topic="frame/evil")),
        Case("NaN in truth", "frames", "bad_number", lambda s: _msg(
            json.dumps(_header("frame", "evil", s, [_raw("image", 24, 32)]))[:-1]
            + ', "truth": [{"id": 1, "label": "p", "box": [0, 0, NaN, 1]}]}', [bytes(24 * 32)], topic="frame/evil")),
        Case("Infinity literal", "frames", "bad_number", lambda s: _msg(
            json.dumps(_header("frame", "evil", s, [_raw("image", 24, 32)]))[:-1] + ', "x": Infinity}',
            [bytes(24 * 32)], topic="frame/evil")),
        Case("1e999 float", "frames", "bad_number", lambda s: _msg(
            json.dumps(_header("frame", "evil", s, [_raw("image", 24, 32)]))[:-1] + ', "x": 1e999}',
            [bytes(24 * 32)], topic="frame/evil")),
        Case("truth [1]", "frames", "bad_truth", lambda s: _frame("evil", s, truth=[1])),
        Case("truth box reversed length", "frames", "bad_truth", lambda s: _frame(
            "evil", s, truth=[{"id": 1, "label": "p", "box": [0, 0, 1]}])),
        Case("deep nesting", "frames", "too_deep", _deep),
        Case("lying shape", "frames", "size_mismatch", lambda s: _msg(
            _header("frame", "evil", s, [_raw("image", 480, 640)]), [bytes(10)])),
        Case("huge shape", "frames", "too_large", lambda s: _msg(
            _header("frame", "evil", s, [_raw("image", 16384, 16384, "BGR8")]), [bytes(10)])),
        Case("CAM32 image as a frame", "frames", "bad_pixel_format", lambda s: _msg(
            _header("frame", "evil", s, [_raw("image", 24, 32, "CAM32")]), [bytes(24 * 32 * 4)])),
        Case("result sent to the processor", "frames", "unexpected_kind", lambda s: _result("evil", s)),
        Case("negative seq", "frames", "bad_field", lambda s: _msg(
            _header("frame", "evil", -5, [_raw("image", 24, 32)]), [bytes(24 * 32)])),
        Case("1x1 frame", "frames", None, lambda s: _frame("evil-tiny", s, 1, 1)),
        Case("16384x1 frame", "frames", None, lambda s: _frame("evil-thin", s, 1, 16384)),
        Case("new stream id", "frames", None, lambda s: _frame(f"flood-{s}", s)),
        # --- at the publisher (results endpoint) ---
        Case("tracks [1]", "results", "bad_tracks", lambda s: _result("evil", s, tracks=[1])),
        Case("trail of strings", "results", "bad_tracks", lambda s: _result(
            "evil", s, tracks=[{"id": 3, "trail": [["a", "b"], [1, 2]]}])),
        Case("trail far outside", "results", "bad_tracks", lambda s: _result(
            "evil", s, tracks=[{"id": 3, "trail": [[1e300, 0], [0, 1]]}])),
        Case("detection box 400 digits", "results", "bad_number", lambda s: _result("evil", s, detections=big_box)),
        Case("track_id 400 digits", "results", "bad_number", lambda s: _result("evil", s, detections=big_tid)),
        Case("NaN score", "results", "bad_number", lambda s: _msg(
            json.dumps(_header("result", "evil", s, [_raw("image", 24, 32)], width=32, height=24))[:-1]
            + f', "detections": [{nan_score}]}}', [bytes(24 * 32)], topic="result/evil")),
        Case("reversed box", "results", "bad_detection", lambda s: _result(
            "evil", s, detections=[{"box": [5, 5, 1, 1], "score": 0.5, "label": "p", "track_id": None}])),
        Case("boolean box", "results", "bad_detection", lambda s: _result(
            "evil", s, detections=[{"box": [True, 0, 1, 1], "score": 0.5, "label": "p", "track_id": None}])),
        Case("timings_ms a list", "results", "bad_field", lambda s: _result("evil", s, timings_ms=[1, 2])),
        Case("width a string", "results", "bad_field", lambda s: _result("evil", s, width="wide")),
        Case("probs of strings", "results", "bad_field", lambda s: _result("evil", s, probs=["x"])),
        Case("NUL in result stream", "results", "bad_field", lambda s: _result("ev\x00il", s)),
        Case("blended with a cam part", "results", "bad_part", lambda s: _msg(
            _header("result", "evil", s, [_raw("image", 24, 32, "BGR8"), _raw("cam", 3, 4, "CAM32")],
                    heatmap_blended=True, width=32, height=24, detections=[]),
            [bytes(24 * 32 * 3), bytes(48)])),
        Case("frame sent to the publisher", "results", "unexpected_kind", lambda s: _frame("evil", s)),
        Case("1x1 result with a far box", "results", None, lambda s: _result(
            "evil-tiny", s, 1, 1, detections=[{"box": [-9e5, -9e5, 9e5, 9e5], "score": 0.5, "label": "p",
                                               "track_id": 2 ** 62}],
            tracks=[{"id": -7, "state": "confirmed", "trail": [[-9e5, 9e5], [9e5, -9e5]]}])),
        Case("result for a new stream id", "results", None, lambda s: _result(f"flood-r{s}", s)),
    ]


def attack(endpoints: dict[str, str], seconds: float, rate: float = 200.0,
           only: Callable[[Case], bool] = lambda c: True) -> Counter:
    """Send the cases round-robin at ``rate`` messages/s per endpoint for ``seconds``.

    Returns what was sent, counted by ``(endpoint, reason, case name)`` (reason None: valid messages);
    blocking sends, so every counted message was handed to ZeroMQ and reaches the stage.
    """
    ctx = zmq.Context()
    socks = {}
    sent: Counter = Counter()
    try:
        for name, ep in endpoints.items():
            s = ctx.socket(zmq.PUSH)
            # hand over what was sent before closing, however slow the stage is to take it (a CI run
            # on a loaded machine once lost the last round of the publisher's cases with 5 s)
            s.setsockopt(zmq.LINGER, 30000)
            s.setsockopt(zmq.SNDHWM, 64)
            s.connect(ep)
            socks[name] = s
        chosen = [c for c in cases() if c.endpoint in socks and only(c)]
        seq = itertools.count()
        t_end = time.monotonic() + seconds
        interval = 1.0 / (rate * len(socks))
        for case in itertools.cycle(chosen):
            now = time.monotonic()
            if now >= t_end:
                break
            socks[case.endpoint].send_multipart(case.build(next(seq)))
            sent[(case.endpoint, case.reason, case.name)] += 1
            time.sleep(max(0.0, interval - (time.monotonic() - now)))
    finally:
        for s in socks.values():
            s.close()
        ctx.term()
    return sent


def iter_reasons(sent: Counter, endpoint: str) -> Iterator[tuple[str, int]]:
    """``(reason, count)`` of the rejects ``sent`` to ``endpoint`` should have produced."""
    totals: Counter = Counter()
    for (ep, reason, _name), n in sent.items():
        if ep == endpoint and reason is not None:
            totals[reason] += n
    return iter(sorted(totals.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", help="the processor's frames endpoint (PULL)")
    ap.add_argument("--results", help="the publisher's results endpoint (PULL)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=200.0, help="messages per second per endpoint")
    args = ap.parse_args(argv)
    eps = {k: v for k, v in (("frames", args.frames), ("results", args.results)) if v}
    if not eps:
        ap.error("give --frames and/or --results")
    sent = attack(eps, args.seconds, args.rate)
    print(json.dumps({f"{ep} {reason} ({name})": n for (ep, reason, name), n in sorted(sent.items(), key=str)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
