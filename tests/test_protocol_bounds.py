"""The decoder's bounds: every number, nesting, stream-id characters and the optional fields stages read."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from streamcam import protocol
from streamcam.errors import ProtocolError


def _frame_header(**fields):
    h = {"v": 1, "kind": "frame", "stream": "s", "seq": 0, "t_capture_ns": 0,
         "parts": [{"name": "image", "encoding": "raw", "shape": [2, 3], "dtype": "uint8", "pixel_format": "GRAY8"}]}
    h.update(fields)
    return h


def _decode(header, stream="s"):
    text = header if isinstance(header, str) else json.dumps(header)
    return protocol.decode([f"frame/{stream}".encode("utf-8", "surrogatepass"), text.encode(), bytes(6)])


def _reason(header, stream="s"):
    with pytest.raises(ProtocolError) as err:
        _decode(header, stream)
    return err.value.reason


BIG = int("9" * 400)


@pytest.mark.parametrize("fields, reason", [
    ({"seq": BIG}, "bad_number"),
    ({"t_capture_ns": BIG}, "bad_number"),
    ({"seq": 2 ** 63}, "bad_number"),
    ({"x": -(2 ** 63) - 1}, "bad_number"),  # unknown fields are bounded too: every number is
    ({"detections": [{"box": [0, 0, BIG, 1], "score": 1, "label": "p"}]}, "bad_number"),
    ({"detections": [{"box": [0, 0, 1, 1], "score": 1, "label": "p", "track_id": BIG}]}, "bad_number"),
    ({"detections": [{"box": [0, 0, 2e6, 1], "score": 1, "label": "p"}]}, "bad_detection"),
    ({"detections": [{"box": [True, 0, 1, 1], "score": 1, "label": "p"}]}, "bad_detection"),
    ({"detections": [{"box": [0, 0, 1, 1], "score": True, "label": "p"}]}, "bad_detection"),
    ({"detections": [{"box": [0, 0, 1, 1], "score": 1, "label": "p", "track_id": False}]}, "bad_detection"),
    ({"tracks": [1]}, "bad_tracks"),
    ({"tracks": {"id": 1}}, "bad_tracks"),
    ({"tracks": [{"id": "1"}]}, "bad_tracks"),
    ({"tracks": [{"id": 1, "trail": [[1, 2, 3]]}]}, "bad_tracks"),
    ({"tracks": [{"id": 1, "trail": [[1, "2"]]}]}, "bad_tracks"),
    ({"tracks": [{"id": 1, "trail": [[1e7, 2]]}]}, "bad_tracks"),
    ({"tracks": [{"id": 1, "state": 5}]}, "bad_tracks"),
    ({"truth": [1]}, "bad_truth"),
    ({"truth": [{"id": 1, "label": "p", "box": [0, 0, 1]}]}, "bad_truth"),
    ({"truth": [{"id": 1, "label": 3, "box": [0, 0, 1, 1]}]}, "bad_truth"),
    ({"truth": "all"}, "bad_truth"),
    ({"width": "wide"}, "bad_field"),
    ({"height": -1}, "bad_field"),
    ({"width": 20000}, "bad_field"),
    ({"t_processed_ns": -3}, "bad_field"),
    ({"latency_ms": "slow"}, "bad_field"),
    ({"fps": None}, "bad_field"),
    ({"probs": [0.5, "x"]}, "bad_field"),
    ({"probs": 0.5}, "bad_field"),
    ({"timings_ms": [1]}, "bad_field"),
    ({"timings_ms": {"engine": "fast"}}, "bad_field"),
    ({"x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}, "too_deep"),
])
def test_each_hostile_case_is_rejected_with_its_reason(fields, reason):
    assert _reason(_frame_header(**fields)) == reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_rejected(literal):
    text = json.dumps(_frame_header())[:-1] + f', "x": {literal}}}'
    assert _reason(text) == "bad_number"


@pytest.mark.parametrize("stream", ["a\x00b", "a\nb", "\x1b[2J", "a\u202eb", "a\u2028b", "a\u200bb", "a\u00a0b",
                                    "a\ud800b", "a\U000e0001b", "a\x7fb"])
def test_control_characters_in_stream_ids_are_rejected(stream):
    # The topic is a clean one: the id itself is refused (a surrogate cannot even be a UTF-8 topic).
    with pytest.raises(ProtocolError) as err:
        _decode(_frame_header(stream=stream), "s")
    assert err.value.reason == "bad_field" and "control" in err.value.detail


@pytest.mark.parametrize("stream", ["ir0", "cam 1", "Kamera-Süd", "入口", "a.b_c-d"])
def test_ordinary_stream_ids_pass(stream):
    assert _decode(_frame_header(stream=stream), stream).stream == stream


def test_nesting_at_the_limit_passes_and_one_deeper_does_not():
    def nest(n):
        return json.loads("[" * n + "]" * n)
    assert _decode(_frame_header(x=nest(protocol.MAX_DEPTH - 1)))  # the header object is level 1
    assert _reason(_frame_header(x=nest(protocol.MAX_DEPTH))) == "too_deep"


def test_int64_limits_pass():
    msg = _decode(_frame_header(seq=2 ** 63 - 1, x=-(2 ** 63)))
    assert msg.seq == 2 ** 63 - 1


def test_a_deep_header_past_the_parser_stack_is_still_a_reason():
    assert _reason(json.dumps(_frame_header())[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}") == "bad_header"


# --- properties ----------------------------------------------------------------------------------

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(alphabet=st.characters(codec=None), max_size=8))
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                              max_size=3), max_leaves=40)
_optional_key = st.sampled_from(["tracks", "truth", "detections", "width", "height", "probs", "timings_ms",
                                 "t_processed_ns", "latency_ms", "fps", "heatmap_blended", "x"])


def _within(v, depth=1):
    """A value the decoder may hand a stage: bounded numbers, bounded nesting."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, int):
        return -(2 ** 63) <= v < 2 ** 63
    if isinstance(v, float):
        return v == v and abs(v) != float("inf")
    if depth > protocol.MAX_DEPTH:
        return False
    items = v.values() if isinstance(v, dict) else v
    return all(_within(x, depth + 1) for x in items)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_optional_key, _json, max_size=4), st.text(alphabet=st.characters(codec=None), min_size=1, max_size=6))
def test_unbounded_values_anywhere_are_decoded_bounded_or_rejected(fields, stream):
    # json.dumps writes NaN/Infinity literals and arbitrarily long integers, as a hostile client would.
    text = json.dumps(_frame_header(stream=stream, **fields))
    try:
        msg = protocol.decode([f"frame/{stream}".encode("utf-8", "surrogatepass"), text.encode(), bytes(6)])
    except ProtocolError as exc:
        assert exc.reason
        return
    assert _within(msg.header)
    assert not any(c in msg.stream for c in "\x00\n\r\x1b/")
    for d in msg.detections():  # what the publisher draws
        assert all(abs(v) <= protocol.MAX_COORD for v in d.box)
    for t in msg.header.get("tracks", []):
        assert isinstance(t["id"], int) and all(len(p) == 2 for p in t.get("trail", []))
    for key in ("width", "height"):
        assert key not in msg.header or 0 <= msg.header[key] <= protocol.MAX_DIM


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(), st.integers())
def test_any_integer_seq_and_time_is_in_range_or_a_bad_number(seq, t):
    try:
        msg = _decode(_frame_header(seq=seq, t_capture_ns=t))
    except ProtocolError as exc:
        assert exc.reason in ("bad_number", "bad_field")
        assert exc.reason == "bad_field" or not (-(2 ** 63) <= seq < 2 ** 63 and -(2 ** 63) <= t < 2 ** 63)
    else:
        assert 0 <= msg.seq < 2 ** 63 and 0 <= msg.t_capture_ns < 2 ** 63
