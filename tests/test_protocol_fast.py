"""The decoder's fast paths against their slow, obvious references: the header parser (floats checked
in one walk, not a hook per literal), the trail check, and the detections parsed once per message."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from streamcam import protocol
from streamcam.errors import ProtocolError
from streamcam.protocol import Detection, decode, encode, raw_part


def _outcome(parse, text: str):
    """What a header parser makes of ``text``: ``("ok", header)`` or ``("refused", reason)``."""
    try:
        return "ok", parse(text.encode("utf-8", "surrogatepass"))
    except ProtocolError as exc:
        return "refused", exc.reason


def _both(text: str) -> tuple:
    """The fast parser's outcome and the reference's."""
    return _outcome(protocol._parse_header, text), _outcome(protocol._parse_header_reference, text)


def _nest(n: int, inner: str = "1") -> str:
    return "[" * n + inner + "]" * n


_BASE = '{"v": 1, "kind": "frame", "stream": "s", "seq": 0, "t_capture_ns": 0, "parts": []'


@pytest.mark.parametrize("text", [
    _BASE + "}",
    _BASE + ', "x": 1e999}', _BASE + ', "x": -1e400}', _BASE + ', "x": NaN}', _BASE + ', "x": Infinity}',
    _BASE + ', "x": [[1.5, 1e999]]}', _BASE + ', "x": {"y": [[[2e308]]]}}', _BASE + f', "x": {"1" * 400}.0}}',
    _BASE + f', "x": {"9" * 400}}}', _BASE + ', "x": 9223372036854775808}', _BASE + ', "x": -9223372036854775808}',
    _BASE + f', "x": {_nest(protocol.MAX_DEPTH - 1)}}}', _BASE + f', "x": {_nest(protocol.MAX_DEPTH)}}}',
    _BASE + f', "x": {_nest(protocol.MAX_DEPTH - 1, "[]")}}}', _BASE + f', "x": {_nest(protocol.MAX_DEPTH, "1e999")}}}',
    _BASE + f', "x": {_nest(protocol.MAX_DEPTH + 3, "2.5")}, "y": 1e999}}',
    _BASE + f', "x": [{_nest(protocol.MAX_DEPTH)}, [1.0, 2.0]]}}',
    _BASE + f', "x": [[1.0, {{"a": {_nest(protocol.MAX_DEPTH - 3)}}}]]}}',
    "1e999", "[1e999]", "1.5", "[]", _nest(protocol.MAX_DEPTH + 2), "null", '"text"', "{", "[" * 100000,
    _BASE + ', "tracks": [{"id": 1, "trail": [[1.0, 2.0], [3, 4.5]]}]}',
])
def test_the_header_parser_agrees_with_its_reference(text):
    fast, ref = _both(text)
    assert fast == ref, text[:200]


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=4))
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                         max_size=3), max_leaves=60)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(_value, st.integers(0, protocol.MAX_DEPTH + 2))
def test_the_header_parser_agrees_with_its_reference_on_any_json(value, wrap):
    # json.dumps writes NaN/Infinity literals, huge integers; `wrap` puts the value at any depth.
    for text in (_BASE + ', "x": ' + "[" * wrap + json.dumps(value) + "]" * wrap + "}", json.dumps(value)):
        fast, ref = _both(text)
        assert fast == ref, text[:200]


_coord = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2 * 10 ** 6, 2 * 10 ** 6),
                   st.booleans(), st.none(), st.text(max_size=2))
_point = st.one_of(st.lists(_coord, min_size=0, max_size=3), _coord, st.tuples(_coord, _coord))


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.lists(_point, max_size=5), _point))
def test_the_trail_check_agrees_with_its_reference(trail):
    trail = json.loads(json.dumps(trail))  # as the parser hands it over: tuples are lists
    reference = isinstance(trail, list) and all(protocol._is_coords(p, 2) for p in trail)
    assert protocol._is_trail(trail) == reference


def _result(dets):
    import numpy as np

    parts = [raw_part("image", np.zeros((4, 6), np.uint8), "GRAY8")]
    return decode(encode("result", "s", 1, 2, parts, detections=[d.to_json() for d in dets]))


def test_the_detections_are_parsed_once_and_a_replaced_list_is_parsed_again():
    dets = [Detection((1.0, 2.0, 3.0, 4.0), 0.5, "person", 7), Detection((0.0, 0.0, 1.0, 1.0), 0.25, "car")]
    msg = _result(dets)
    reference = [Detection.from_json(d) for d in msg.header["detections"]]
    assert msg.detections() == reference == dets
    assert msg.detections() is not msg.detections()  # a new list each call: callers may change theirs
    msg.header["detections"] = []
    assert msg.detections() == []
    msg.header["detections"] = [dets[1].to_json()]
    assert msg.detections() == [dets[1]]
