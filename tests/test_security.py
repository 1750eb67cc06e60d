"""CURVE on real tcp sockets: allowed clients get data, others get nothing."""

import time

import numpy as np
import pytest
import zmq

from streamcam import protocol
from streamcam.errors import ConfigError
from streamcam.security import Curve, generate_keys, stop_authenticators
from streamcam.transport import bound_endpoint, make_socket, send_nowait


@pytest.fixture
def keys(tmp_path):
    generate_keys(tmp_path / "keys", "client")
    # A second key pair that is NOT in allowed/: an intruder with valid CURVE keys.
    import zmq.auth

    (tmp_path / "intruder").mkdir()
    zmq.auth.create_certificates(str(tmp_path / "intruder"), "client")
    import shutil

    shutil.copy(tmp_path / "keys" / "server.key", tmp_path / "intruder" / "server.key")
    yield tmp_path
    stop_authenticators()


def _pump(sender, receiver, parts, seconds=2.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send_nowait(sender, parts)
        if receiver.poll(100):
            return protocol.decode(receiver.recv_multipart())
    return None


def _msg():
    return protocol.encode("detections", "cam0", 1, 2, (), detections=[])


def test_allowed_subscriber_receives_and_intruders_do_not(keys):
    ctx = zmq.Context()
    pub = make_socket(ctx, "PUB", "tcp://127.0.0.1:*", bind=True, curve=Curve(str(keys / "keys")))
    ep = bound_endpoint(pub)  # the port the OS picked: no free-port-then-bind race
    good = make_socket(ctx, "SUB", ep, bind=False, curve=Curve(str(keys / "keys")))
    intruder = make_socket(ctx, "SUB", ep, bind=False, curve=Curve(str(keys / "intruder")))
    plain = make_socket(ctx, "SUB", ep, bind=False)  # no CURVE at all
    try:
        assert _pump(pub, good, _msg()) is not None
        for s in (intruder, plain):
            assert _pump(pub, s, _msg(), 1.0) is None
    finally:
        for s in (pub, good, intruder, plain):
            s.close(0)
        stop_authenticators()
        ctx.term()


def test_unauthorised_client_cannot_push_frames(keys):
    ctx = zmq.Context()
    pull = make_socket(ctx, "PULL", "tcp://127.0.0.1:*", bind=True, curve=Curve(str(keys / "keys")))
    ep = bound_endpoint(pull)
    intruder = make_socket(ctx, "PUSH", ep, bind=False, curve=Curve(str(keys / "intruder")))
    good = make_socket(ctx, "PUSH", ep, bind=False, curve=Curve(str(keys / "keys")))
    frame = protocol.encode("frame", "cam0", 0, 1, [protocol.raw_part("image", np.zeros((4, 4), np.uint8), "GRAY8")])
    try:
        assert _pump(intruder, pull, frame, 1.0) is None
        got = _pump(good, pull, frame)
        assert got is not None and got.kind == "frame"
    finally:
        for s in (pull, intruder, good):
            s.close(0)
        stop_authenticators()
        ctx.term()


def test_missing_keys_are_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="streamcam keys"):
        Curve(str(tmp_path / "nokeys"))


def test_the_dispatcher_stops_with_curve_on(keys, tmp_path):
    """Its own context serves CURVE (a ZAP thread whose socket lives in it): stopping must not hang
    in ctx.term() (docs/deployment.md's workers on other hosts)."""
    import dataclasses
    import threading

    from _wait import wait_for
    from streamcam.config import config_from_dict
    from streamcam.processor.dispatch import run_dispatcher

    cfg = config_from_dict({"processor": {"scale_out": True}, "serve": {"enabled": False},
                            "security": {"curve": True, "keys_dir": str(keys / "keys")},
                            "run": {"run_dir": str(tmp_path / "run")}, "endpoints": {"frames": f"ipc://{tmp_path}/f.sock"}})
    # Work on tcp, where CURVE applies, on a port the OS picks (past the config's check, which wants a
    # number there for the workers).
    cfg = dataclasses.replace(cfg, endpoints=dataclasses.replace(cfg.endpoints, work="tcp://127.0.0.1:*"))
    stop = threading.Event()
    th = threading.Thread(target=run_dispatcher, args=(cfg, stop), daemon=True)
    th.start()
    try:
        wait_for("the dispatcher's first stats", (tmp_path / "run" / "stats" / "dispatcher.json").exists, 10)
    finally:
        stop.set()
        th.join(5)
    assert not th.is_alive(), "the dispatcher hung in ctx.term() (its ZAP authenticator still running)"
