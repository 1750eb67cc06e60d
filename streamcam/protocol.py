"""Wire protocol v1: multipart ZeroMQ messages ``[topic, header, payload...]``.

* ``topic``: UTF-8, ``<kind>/<stream>`` (kinds: ``frame``, ``result``, ``frames``,
  ``detections``, ``events``, ``stats``), so subscribers filter by prefix.
* ``header``: a UTF-8 JSON object; ``v`` (protocol version), ``kind``, ``stream``,
  ``seq``, ``t_capture_ns`` and ``parts``, one descriptor per payload part
  (``name``, ``encoding`` ``raw``/``jpeg``, and for raw parts ``shape``, ``dtype``,
  ``pixel_format``). Stages add their fields (``detections``, ``timings``, ...).
* payloads: raw C-contiguous pixel buffers (sent without copies) or JPEG bytes.
* ``heatmap_blended`` (optional, ``result`` messages): ``true`` when the ``image`` part
  already carries the CAM heatmap (``processor.frame_path`` gpu/reference); such a result
  has no ``cam`` part, and ``image_plain`` is the frame as captured when sent.

The decoder trusts nothing: every field is type-checked, raw sizes must equal
shape × itemsize exactly, and sizes are bounded before anything is allocated.
Every number in a header is bounded as it is parsed (integers in int64) or in the walk right after (floats
finite), nesting is bounded, stream ids hold no control characters, and every
optional field a stage reads (``detections``, ``tracks``, ``truth``, ``width``, ...)
is checked here, so a stage never meets a value it cannot use.
A bad message raises :class:`ProtocolError` whose ``reason`` is a short tag the
stages count by. See ``docs/protocol.md``.

Why one module of ~560 lines: the encoder and the validating decoder are the wire format's two
halves, mirrored by docs/protocol.md; kept together, one cannot change without the other.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ProtocolError

PROTOCOL_VERSION = 1
KINDS = ("frame", "result", "frames", "detections", "events", "stats")
PLAIN_DEMAND = "want/plain/"
"""Prefix of the demand topics: see :func:`plain_demand_topic`."""


def plain_demand_topic(stream: str) -> str:
    """Subscribing to this topic asks the publisher for the heatmap-free ``image_plain`` part of
    ``frames/<stream>`` (``publisher.plain_frames`` unset: on request); nothing is ever published
    on it. The trailing ``/`` keeps one stream's request from matching another id it prefixes."""
    return f"{PLAIN_DEMAND}{stream}/"
DTYPES = ("uint8", "uint16", "float32")
PIXEL_FORMATS = ("BGR8", "GRAY8", "GRAY16", "CAM32")
ENCODINGS = ("raw", "jpeg")
MAX_HEADER_BYTES = 1 << 20
MAX_DIM = 16384
MAX_PAYLOAD_BYTES = 256 << 20
MAX_PARTS = 8
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_DEPTH = 16
"""Deepest nesting of JSON arrays/objects a header may have (the deepest field, a trail, is 4)."""
MAX_COORD = 1e6
"""Largest |coordinate| of a box or trail point: far outside any frame, still drawable."""
_ITEMSIZE = {"uint8": 1, "uint16": 2, "float32": 4}
_PIXEL_DTYPE = {"BGR8": ("uint8", 3), "GRAY8": ("uint8", None), "GRAY16": ("uint16", None), "CAM32": ("float32", None)}


@dataclass(frozen=True)
class Detection:
    """One detected object: ``box`` is ``[x0, y0, x1, y1]`` in frame pixels."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    track_id: int | None = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"Detection.box: expected 4 numbers, got {len(self.box)}")
        x0, y0, x1, y1 = self.box
        if not all(math.isfinite(v) for v in self.box) or x1 < x0 or y1 < y0:
            raise ValueError(f"Detection.box: expected finite x0<=x1, y0<=y1, got {self.box}")
        if not math.isfinite(self.score):
            raise ValueError(f"Detection.score: expected a finite number, got {self.score}")

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
            "track_id": self.track_id,
        }

    @classmethod
    def from_json(cls, d: Any) -> "Detection":
        if not isinstance(d, dict):
            raise ProtocolError("bad_detection", f"expected an object, got {type(d).__name__}")
        try:
            box = d["box"]
            if not _is_coords(box, 4):
                raise ValueError(f"box must be 4 numbers within ±{MAX_COORD:g}, got {box!r:.80}")
            tid = d.get("track_id")
            if tid is not None and not _is_int(tid):
                raise ValueError(f"track_id must be an integer or null, got {tid!r:.40}")
            label = d["label"]
            if not isinstance(label, str):
                raise ValueError(f"label must be a string, got {label!r:.40}")
            score = d["score"]
            if not _is_number(score):
                raise ValueError(f"score must be a number, got {score!r:.40}")
            return cls(tuple(float(v) for v in box), float(score), label, tid)  # type: ignore[arg-type]
        except KeyError as exc:
            raise ProtocolError("bad_detection", f"missing key {exc.args[0]!r}") from None
        except ValueError as exc:
            raise ProtocolError("bad_detection", str(exc)) from None


def detections_record(
    stream: str, seq: int, t_capture_ns: int, width: int, height: int, detections: Sequence[Detection]
) -> dict[str, Any]:
    """The detections object of the ``detections`` topic, also one line of ``streamcam detect``."""
    return {
        "seq": seq,
        "t_capture_ns": t_capture_ns,
        "stream": stream,
        "width": width,
        "height": height,
        "detections": [d.to_json() for d in detections],
    }


@dataclass
class Message:
    """A decoded message: the header (validated) and its payloads as arrays or bytes."""

    topic: str
    header: dict[str, Any]
    payloads: list[Any] = field(default_factory=list)
    parsed_detections: tuple[list[Any], list["Detection"]] | None = field(default=None, repr=False, compare=False)
    """``(header["detections"] as decoded, its Detections)``: :func:`decode` parses them to validate
    them, and :meth:`detections` reuses that while the header still holds that list."""

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def stream(self) -> str:
        return self.header["stream"]

    @property
    def seq(self) -> int:
        return self.header["seq"]

    @property
    def t_capture_ns(self) -> int:
        return self.header["t_capture_ns"]

    def part(self, name: str) -> Any:
        for desc, payload in zip(self.header["parts"], self.payloads):
            if desc["name"] == name:
                return payload
        raise KeyError(name)

    def has_part(self, name: str) -> bool:
        return any(d["name"] == name for d in self.header["parts"])

    def detections(self) -> list[Detection]:
        raw = self.header.get("detections", [])
        if self.parsed_detections is not None and self.parsed_detections[0] is raw \
                and len(raw) == len(self.parsed_detections[1]):
            return list(self.parsed_detections[1])
        return [Detection.from_json(d) for d in raw]


def raw_part(name: str, array: np.ndarray, pixel_format: str) -> tuple[dict[str, Any], np.ndarray]:
    """Describe a raw array payload; the array itself is sent without a copy when contiguous."""
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"pixel_format: expected one of {PIXEL_FORMATS}, got {pixel_format!r}")
    a = np.ascontiguousarray(array)
    dtype, channels = _PIXEL_DTYPE[pixel_format]
    if a.dtype.name != dtype:
        raise ValueError(f"{name}: pixel_format {pixel_format} expects dtype {dtype}, got {a.dtype.name}")
    if channels is not None and (a.ndim != 3 or a.shape[2] != channels):
        raise ValueError(f"{name}: pixel_format {pixel_format} expects shape [H, W, {channels}], got {list(a.shape)}")
    if channels is None and a.ndim != 2:
        raise ValueError(f"{name}: pixel_format {pixel_format} expects shape [H, W], got {list(a.shape)}")
    return {"name": name, "encoding": "raw", "shape": list(a.shape), "dtype": dtype, "pixel_format": pixel_format}, a


def jpeg_part(name: str, data: bytes, width: int, height: int) -> tuple[dict[str, Any], bytes]:
    return {"name": name, "encoding": "jpeg", "pixel_format": "BGR8", "shape": [height, width, 3]}, data


def encode(
    kind: str,
    stream: str,
    seq: int,
    t_capture_ns: int,
    parts: Iterable[tuple[dict[str, Any], Any]] = (),
    **fields: Any,
) -> list[Any]:
    """Build the multipart list for ``socket.send_multipart(..., copy=False)``."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    descs, payloads = [], []
    for desc, payload in parts:
        descs.append(desc)
        payloads.append(payload)
    header = {"v": PROTOCOL_VERSION, "kind": kind, "stream": stream, "seq": int(seq),
              "t_capture_ns": int(t_capture_ns), "parts": descs, **fields}
    return [f"{kind}/{stream}".encode(), json.dumps(header, separators=(",", ":")).encode(), *payloads]


def _require(header: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    if key not in header:
        raise ProtocolError("missing_field", f"header lacks {key!r}")
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ProtocolError("bad_field", f"{key!r}: expected {what}, got {value!r:.60}")
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    # Finite and in range already: the header parser bounds every number it reads.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_coords(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(_is_number(x) and abs(x) <= MAX_COORD for x in v)


def _bounded_int(text: str) -> int:
    # Called by json.loads for every integer literal: refuse before Python builds a huge int
    # (a 400-digit integer overflows float() and every C long downstream).
    if len(text) > 20 or not INT64_MIN <= (value := int(text)) <= INT64_MAX:
        raise ProtocolError("bad_number", f"integer {text:.24}{'...' if len(text) > 24 else ''} is outside int64")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError("bad_number", f"number {text:.24} is not finite")
    return value


def _no_constant(text: str) -> Any:
    raise ProtocolError("bad_number", f"{text} is not a JSON number")


def _check_depth(value: Any) -> None:
    """Raise when arrays/objects nest deeper than :data:`MAX_DEPTH` (iterative: a deep header cannot
    exhaust the stack here or in any stage that walks it)."""
    todo = [(value, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (list, dict)):
            if depth > MAX_DEPTH:
                raise ProtocolError("too_deep", f"header nests deeper than {MAX_DEPTH} levels")
            todo.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))


def _walk(value: Any) -> bool:
    """One pass over a parsed header: raise ``bad_number`` at a non-finite float; True when arrays/objects
    nest deeper than :data:`MAX_DEPTH`. The fast path of the parser's ``parse_float`` hook (a Python call
    per float literal) plus :func:`_check_depth`: what they refuse, with the reasons in their order (a bad
    number is refused first, as the parser would while parsing; the depth after the header's type)."""
    too_deep = False
    isfinite = math.isfinite
    todo = [([value], 0)]  # the header itself as an item: a bare number is checked too
    pop, push = todo.pop, todo.append
    while todo:
        v, depth = pop()
        if depth > MAX_DEPTH:
            too_deep = True
        for x in (v.values() if type(v) is dict else v):
            t = type(x)
            if t is float:
                if not isfinite(x):
                    raise ProtocolError("bad_number", f"number {x!r} is not finite")
            elif t is list:
                # Most lists hold only numbers (trail points, boxes): checked here rather than pushed.
                for y in x:
                    ty = type(y)
                    if ty is float:
                        if not isfinite(y):
                            raise ProtocolError("bad_number", f"number {y!r} is not finite")
                    elif ty is list or ty is dict:
                        push((x, depth + 1))
                        break
                else:
                    too_deep = too_deep or depth + 1 > MAX_DEPTH
            elif t is dict:
                push((x, depth + 1))
    return too_deep


def _bad_stream_char(stream: str) -> str | None:
    """The first character a stream id may not hold: '/', a control, format, surrogate or
    unassigned code point, or a line separator (ids become topics, file names and log lines)."""
    for ch in stream:
        if ch == "/" or unicodedata.category(ch)[0] in "CZ" and ch != " ":
            return ch
    return None


def _parse_header(text: bytes) -> dict[str, Any]:
    """The header object, every number bounded and the nesting at most :data:`MAX_DEPTH`.

    Integers are bounded by the parser's hook (before Python builds a huge one); floats are checked
    finite in the one walk over the result that also measures the depth (:func:`_walk`), not by a
    Python call per float literal. :func:`_parse_header_reference` is the obvious version, every
    number through a hook; the two accept the same headers and refuse the rest with the same reason
    (tests compare them)."""
    try:
        header = json.loads(text.decode("utf-8"), parse_int=_bounded_int, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ProtocolError("bad_header", "header is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_header", f"header is not JSON: {str(exc)[:80]}") from None
    too_deep = _walk(header)
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", f"expected a JSON object, got {type(header).__name__}")
    if too_deep:
        raise ProtocolError("too_deep", f"header nests deeper than {MAX_DEPTH} levels")
    return header


def _parse_header_reference(text: bytes) -> dict[str, Any]:
    """:func:`_parse_header` written out: every integer and float literal through a bounding hook,
    then the depth checked."""
    try:
        header = json.loads(text.decode("utf-8"), parse_int=_bounded_int, parse_float=_finite_float,
                            parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ProtocolError("bad_header", "header is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_header", f"header is not JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", f"expected a JSON object, got {type(header).__name__}")
    _check_depth(header)
    return header


def _buffer(frame: Any) -> memoryview:
    # zmq.Frame exposes .buffer; bytes/memoryview/ndarray work with memoryview directly.
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf)


def _decode_raw(desc: dict[str, Any], frame: Any, index: int) -> np.ndarray:
    shape = desc.get("shape")
    dtype = desc.get("dtype")
    pf = desc.get("pixel_format")
    if dtype not in DTYPES:
        raise ProtocolError("bad_dtype", f"part {index}: expected dtype in {DTYPES}, got {dtype!r:.40}")
    if pf not in PIXEL_FORMATS:
        raise ProtocolError("bad_pixel_format", f"part {index}: expected pixel_format in {PIXEL_FORMATS}, got {pf!r:.40}")
    if (
        not isinstance(shape, list)
        or not 2 <= len(shape) <= 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_DIM for s in shape)
    ):
        raise ProtocolError("bad_shape", f"part {index}: expected [H, W] or [H, W, C] with 0 < dims <= {MAX_DIM}, got {shape!r:.60}")
    want_dtype, channels = _PIXEL_DTYPE[pf]
    if dtype != want_dtype or (channels is not None and (len(shape) != 3 or shape[2] != channels)) or (
        channels is None and len(shape) != 2
    ):
        raise ProtocolError("bad_shape", f"part {index}: shape {shape} / dtype {dtype} do not fit pixel_format {pf}")
    buf = _buffer(frame)
    expected = math.prod(shape) * _ITEMSIZE[dtype]
    if expected > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"part {index}: {expected} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if buf.nbytes != expected:
        raise ProtocolError("size_mismatch", f"part {index}: header says {expected} bytes, payload has {buf.nbytes}")
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    arr.flags.writeable = False  # a view of the wire buffer: stages must not draw on it
    return arr


def decode(parts: Sequence[Any]) -> Message:
    """Validate and decode one multipart message; raw payloads become read-only arrays (no copy)."""
    if len(parts) < 2:
        raise ProtocolError("too_few_parts", f"expected at least [topic, header], got {len(parts)} part(s)")
    if len(parts) > 2 + MAX_PARTS:
        raise ProtocolError("too_many_parts", f"expected at most {2 + MAX_PARTS} parts, got {len(parts)}")
    try:
        topic = bytes(_buffer(parts[0])).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_topic", "topic is not UTF-8") from None
    hbuf = _buffer(parts[1])
    if hbuf.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"header of {hbuf.nbytes} bytes exceeds {MAX_HEADER_BYTES}")
    header = _parse_header(bytes(hbuf))
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"expected v={PROTOCOL_VERSION}, got {version!r:.20}")
    kind = _require(header, "kind", str, "a string")
    if kind not in KINDS:
        raise ProtocolError("bad_kind", f"expected kind in {KINDS}, got {kind!r:.40}")
    stream = _require(header, "stream", str, "a string")
    bad_char = _bad_stream_char(stream)
    if not stream or len(stream) > 128 or bad_char is not None:
        raise ProtocolError("bad_field", f"'stream': expected 1-128 characters without '/' or control characters, "
                                         f"got {stream!r:.40}" + (f" (holds {bad_char!r})" if bad_char else ""))
    if topic != f"{kind}/{stream}":
        raise ProtocolError("bad_topic", f"topic {topic!r:.60} does not match header {kind}/{stream}")
    seq = _require(header, "seq", int, "an integer")
    t_ns = _require(header, "t_capture_ns", int, "an integer")
    if seq < 0 or t_ns < 0:
        raise ProtocolError("bad_field", "'seq' and 't_capture_ns' must be >= 0")
    descs = _require(header, "parts", list, "a list of part descriptors")
    if len(descs) != len(parts) - 2:
        raise ProtocolError("part_count", f"header describes {len(descs)} payload(s), message has {len(parts) - 2}")
    payloads: list[Any] = []
    for i, (desc, frame) in enumerate(zip(descs, parts[2:])):
        if not isinstance(desc, dict) or not isinstance(desc.get("name"), str):
            raise ProtocolError("bad_part", f"part {i}: expected an object with a 'name'")
        enc = desc.get("encoding")
        if enc == "raw":
            payloads.append(_decode_raw(desc, frame, i))
        elif enc == "jpeg":
            buf = _buffer(frame)
            if buf.nbytes > MAX_PAYLOAD_BYTES or buf.nbytes < 4:
                raise ProtocolError("bad_jpeg", f"part {i}: implausible JPEG size {buf.nbytes}")
            payloads.append(bytes(buf))
        else:
            raise ProtocolError("bad_encoding", f"part {i}: expected encoding in {ENCODINGS}, got {enc!r:.40}")
    if "heatmap_blended" in header:
        _check_blended(header, payloads)
    if header["kind"] == "events":
        _check_events(header)
    if "detections" in header:
        dets = header["detections"]
        if not isinstance(dets, list):
            raise ProtocolError("bad_detection", "'detections' must be a list")
        parsed = (dets, [Detection.from_json(d) for d in dets])
    else:
        parsed = None
    _check_optional(header)
    return Message(topic, header, payloads, parsed)


def _check_track(t: Any) -> str | None:
    if not isinstance(t, dict) or not _is_int(t.get("id")):
        return f"expected an object with an integer 'id', got {t!r:.60}"
    if "state" in t and not isinstance(t["state"], str):
        return f"track {t['id']}: 'state' must be a string"
    if not _is_trail(t.get("trail", [])):
        return f"track {t['id']}: 'trail' must be a list of [x, y] within ±{MAX_COORD:g}"
    return None


def _is_trail(trail: Any) -> bool:
    """A list of ``[x, y]`` points within ±MAX_COORD: ``isinstance(trail, list) and all(_is_coords(p, 2)
    for p in trail)`` (the reference, tests compare them) unrolled, as the publisher checks ~20 points
    per track per frame. Exact types are enough: the header comes from ``json.loads`` (bool is its own type)."""
    if type(trail) is not list:
        return False
    for p in trail:
        if type(p) is not list or len(p) != 2:
            return False
        x, y = p
        tx, ty = type(x), type(y)
        if (tx is not float and tx is not int) or (ty is not float and ty is not int) \
                or not -MAX_COORD <= x <= MAX_COORD or not -MAX_COORD <= y <= MAX_COORD:
            return False
    return True


def _check_truth(o: Any) -> str | None:
    if not isinstance(o, dict) or not _is_int(o.get("id")) or not isinstance(o.get("label"), str):
        return f"expected an object with an integer 'id' and a string 'label', got {o!r:.60}"
    if not _is_coords(o.get("box"), 4):
        return f"object {o['id']}: 'box' must be 4 numbers within ±{MAX_COORD:g}"
    return None


def _check_optional(header: dict[str, Any]) -> None:
    """The optional fields stages read, checked once here (absent is always fine)."""
    for key, reason, check in (("tracks", "bad_tracks", _check_track), ("truth", "bad_truth", _check_truth)):
        if key in header:
            items = header[key]
            if not isinstance(items, list):
                raise ProtocolError(reason, f"{key!r} must be a list, got {type(items).__name__}")
            for item in items:
                if (why := check(item)) is not None:
                    raise ProtocolError(reason, f"{key!r}: {why}")
    for key in ("width", "height"):
        if key in header and not (_is_int(header[key]) and 0 <= header[key] <= MAX_DIM):
            raise ProtocolError("bad_field", f"{key!r}: expected an integer 0-{MAX_DIM}, got {header[key]!r:.40}")
    if "t_processed_ns" in header and not (_is_int(header["t_processed_ns"]) and header["t_processed_ns"] >= 0):
        raise ProtocolError("bad_field", f"'t_processed_ns': expected an integer >= 0, got {header['t_processed_ns']!r:.40}")
    for key in ("latency_ms", "fps"):
        if key in header and not _is_number(header[key]):
            raise ProtocolError("bad_field", f"{key!r}: expected a number, got {header[key]!r:.40}")
    if "probs" in header and not (isinstance(header["probs"], list) and all(_is_number(p) for p in header["probs"])):
        raise ProtocolError("bad_field", f"'probs': expected a list of numbers, got {header['probs']!r:.60}")
    if "timings_ms" in header:
        t = header["timings_ms"]
        if not isinstance(t, dict) or not all(_is_number(v) for v in t.values()):
            raise ProtocolError("bad_field", f"'timings_ms': expected an object of numbers, got {t!r:.60}")


EVENT_TYPES = ("new", "update", "end")


def _check_events(header: dict[str, Any]) -> None:
    """``events`` messages: a list of event objects, each with a ``type``, an ``id`` and a ``label``."""
    events = header.get("events")
    if not isinstance(events, list):
        raise ProtocolError("bad_event", "'events' must be a list of event objects")
    for e in events:
        if not isinstance(e, dict) or e.get("type") not in EVENT_TYPES or not isinstance(e.get("id"), str) \
                or not isinstance(e.get("label"), str):
            raise ProtocolError("bad_event", f"expected an object with type in {EVENT_TYPES}, a string id and label, "
                                             f"got {e!r:.80}")


def _check_blended(header: dict[str, Any], payloads: list[Any]) -> None:
    """``heatmap_blended``: a boolean; when true on a result, ``image`` is a raw BGR8 frame, there is no ``cam``
    part (it is already in the pixels), and a raw ``image_plain`` has the frame's size."""
    flag = header["heatmap_blended"]
    if not isinstance(flag, bool):
        raise ProtocolError("bad_field", f"'heatmap_blended': expected true or false, got {flag!r:.40}")
    if not flag or header["kind"] != "result":
        return
    arrays = {d["name"]: (d, p) for d, p in zip(header["parts"], payloads)}
    desc, image = arrays.get("image", (None, None))
    if desc is None or desc.get("encoding") != "raw" or desc.get("pixel_format") != "BGR8":
        raise ProtocolError("bad_part", "heatmap_blended: expected a raw BGR8 'image' part")
    if "cam" in arrays:
        raise ProtocolError("bad_part", "heatmap_blended: a blended frame comes without a 'cam' part")
    plain = arrays.get("image_plain")
    if plain is not None and (plain[0].get("encoding") != "raw" or plain[1].shape[:2] != image.shape[:2]):
        raise ProtocolError("bad_part", f"heatmap_blended: expected a raw 'image_plain' of {list(image.shape[:2])}, "
                                        f"got {plain[0].get('encoding')} {list(plain[0].get('shape') or [])}")


class RejectCounter:
    """Counts rejected messages by reason, and logs the first few of each kind (never all)."""

    def __init__(self, log_first: int = 3) -> None:
        self.counts: Counter[str] = Counter()
        self._log_first = log_first

    def reject(self, exc: ProtocolError, logger: Any = None) -> None:
        self.counts[exc.reason] += 1
        if logger is not None and self.counts[exc.reason] <= self._log_first:
            logger.warning("rejected message (%s): %s", exc.reason, exc.detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
