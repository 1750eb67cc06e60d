import json

import numpy as np
import pytest
import zmq
from hypothesis import given, settings, strategies as st

from streamcam import protocol
from streamcam.errors import ProtocolError
from streamcam.protocol import Detection, decode, encode, raw_part
from streamcam.transport import make_socket


def _frame_msg(img, pf="BGR8", **fields):
    return encode("frame", "cam1", 5, 123, [raw_part("image", img, pf)], **fields)


def test_roundtrip_over_a_real_socket_is_exact_and_zero_copy(short_tmp):
    ctx = zmq.Context()
    ep = f"ipc://{short_tmp}/p.sock"
    pull = make_socket(ctx, "PULL", ep, bind=True)
    push = make_socket(ctx, "PUSH", ep, bind=False)
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    raw = np.random.default_rng(1).integers(0, 65535, (48, 64), dtype=np.uint16)
    parts = encode("frame", "cam1", 7, 99, [raw_part("image", img, "BGR8"), raw_part("raw", raw, "GRAY16")])
    assert parts[2] is img  # the array itself goes to zmq: no serialisation copy
    push.send_multipart(parts, copy=False)
    assert pull.poll(2000)
    msg = decode(pull.recv_multipart(copy=False))
    assert (msg.kind, msg.stream, msg.seq, msg.t_capture_ns) == ("frame", "cam1", 7, 99)
    np.testing.assert_array_equal(msg.part("image"), img)
    np.testing.assert_array_equal(msg.part("raw"), raw)
    assert not msg.part("image").flags.writeable
    push.close(); pull.close(); ctx.term()


def test_detection_schema_roundtrip():
    d = Detection((1.0, 2.0, 30.5, 40.0), 0.9, "person", track_id=3)
    parts = encode("detections", "s", 1, 2, (), width=64, height=48, detections=[d.to_json()])
    msg = decode(parts)
    assert msg.detections() == [d]
    rec = protocol.detections_record("s", 1, 2, 64, 48, [d])
    assert set(rec) == {"seq", "t_capture_ns", "stream", "width", "height", "detections"}
    assert rec["detections"][0] == {"box": [1.0, 2.0, 30.5, 40.0], "score": 0.9, "label": "person", "track_id": 3}


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda p: p[:1], "too_few_parts"),
        (lambda p: p + [b"x"], "part_count"),
        (lambda p: [p[0], b"\xff\xfe", *p[2:]], "bad_header"),
        (lambda p: [p[0], b"{not json", *p[2:]], "bad_header"),
        (lambda p: [p[0], b"[1,2]", *p[2:]], "bad_header"),
        (lambda p: [p[0], _hdr(p, v=2), *p[2:]], "bad_version"),
        (lambda p: [p[0], _hdr(p, kind="nope"), *p[2:]], "bad_kind"),
        (lambda p: [b"frame/other", *p[1:]], "bad_topic"),
        (lambda p: [p[0], _hdr(p, seq="5"), *p[2:]], "bad_field"),
        (lambda p: [p[0], _hdr(p, seq=-1), *p[2:]], "bad_field"),
        (lambda p: [p[0], _part(p, shape=[48, 64, 4]), *p[2:]], "bad_shape"),
        (lambda p: [p[0], _part(p, shape=[100000, 100000, 3]), *p[2:]], "bad_shape"),
        (lambda p: [p[0], _part(p, shape=[16000, 16000, 3]), *p[2:]], "too_large"),
        (lambda p: [p[0], _part(p, dtype="float64"), *p[2:]], "bad_dtype"),
        (lambda p: [p[0], _part(p, dtype="uint16"), *p[2:]], "bad_shape"),
        (lambda p: [p[0], _part(p, encoding="png"), *p[2:]], "bad_encoding"),
        (lambda p: [p[0], p[1], b"short"], "size_mismatch"),
        (lambda p: [p[0], _hdr(p, detections=[{"box": [0, 0, 1]}]), *p[2:]], "bad_detection"),
        (lambda p: [p[0], _hdr(p, detections=[{"box": [5, 0, 1, 1], "score": 1, "label": "x"}]), *p[2:]], "bad_detection"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(mutate, reason):
    good = [bytes(memoryview(x)) for x in _frame_msg(np.zeros((48, 64, 3), np.uint8))]
    decode(good)
    with pytest.raises(ProtocolError) as err:
        decode(mutate(good))
    assert err.value.reason == reason


def _hdr(parts, **changes):
    h = json.loads(parts[1])
    h.update(changes)
    return json.dumps(h).encode()


def _part(parts, **changes):
    h = json.loads(parts[1])
    h["parts"][0].update(changes)
    return json.dumps(h).encode()


def test_reject_counter_counts_by_reason():
    c = protocol.RejectCounter()
    for parts in ([b"x"], [b"t", b"{"], [b"t", b"{"]):
        try:
            decode(parts)
        except ProtocolError as exc:
            c.reject(exc)
    assert c.counts == {"too_few_parts": 1, "bad_header": 2} and c.total == 3


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=6))
def test_decoder_never_crashes_on_random_parts(parts):
    try:
        msg = decode(parts)
    except ProtocolError as exc:
        assert exc.reason  # rejected with a reason, never another exception
    else:
        assert len(msg.payloads) == len(msg.header["parts"])


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["v", "kind", "stream", "seq", "t_capture_ns", "parts", "detections"]),
                    st.one_of(st.none(), st.integers(-5, 10**12), st.text(max_size=10), st.lists(st.integers(), max_size=3),
                              st.lists(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)), max_size=2))),
    st.lists(st.binary(max_size=64), max_size=3),
)
def test_decoder_never_crashes_on_lying_headers(header, payloads):
    try:
        msg = decode([b"frame/x", json.dumps(header).encode(), *payloads])
    except ProtocolError as exc:
        assert exc.reason
    else:
        assert msg.kind == "frame" and len(msg.payloads) == len(payloads)
