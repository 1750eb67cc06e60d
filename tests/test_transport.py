import time

import pytest
import zmq

from _wait import wait_for
from streamcam.errors import ConfigError
from streamcam.transport import bound_endpoint, check_endpoint, make_socket, send_nowait


@pytest.mark.parametrize("ep", ["tcp://127.0.0.1:5555", "ipc:///tmp/x.sock", "inproc://a"])
def test_good_endpoints(ep):
    assert check_endpoint(ep) == ep


@pytest.mark.parametrize("ep", ["tcp://127.0.0.1", "udp://x:1", "127.0.0.1:5", "ipc://", "tcp://:5"])
def test_bad_endpoints_name_the_key(ep):
    with pytest.raises(ConfigError, match="endpoints.frames"):
        check_endpoint(ep, "endpoints.frames")


def test_push_never_blocks_without_a_peer_and_counts_drops(short_tmp):
    ctx = zmq.Context()
    push = make_socket(ctx, "PUSH", f"ipc://{short_tmp}/nobody.sock", bind=False)
    t0 = time.monotonic()
    results = [send_nowait(push, [b"frame/x", b"{}"]) for _ in range(100)]
    assert time.monotonic() - t0 < 1.0
    assert not any(results)  # IMMEDIATE: nothing queues for a peer that is not there
    push.close(); ctx.term()


def test_stale_ipc_file_is_replaced(short_tmp):
    path = short_tmp / "stale.sock"
    path.write_text("left by a killed stage")
    ctx = zmq.Context()
    s = make_socket(ctx, "PULL", f"ipc://{path}", bind=True)
    try:
        import stat

        assert stat.S_ISSOCK(path.stat().st_mode)  # the stale regular file became a live socket
        push = make_socket(ctx, "PUSH", f"ipc://{path}", bind=False)
        # A PUSH drops what it cannot hand to a connected peer: it goes through once connected.
        wait_for("the PUSH to connect over the replaced file", lambda: send_nowait(push, [b"frame/x", b"{}"]), 2)
        assert s.poll(2000)
        push.close()
    finally:
        s.close()
        ctx.term()


def test_tcp_bind_conflict_is_a_clear_error():
    ctx = zmq.Context()
    # The first socket takes a port the OS picks and reads it back: no free-port-then-bind race.
    a = make_socket(ctx, "PUB", "tcp://127.0.0.1:*", bind=True)
    taken = bound_endpoint(a)
    assert taken.startswith("tcp://127.0.0.1:") and not taken.endswith(":*")
    with pytest.raises(ConfigError, match="cannot bind PUB"):
        make_socket(ctx, "PUB", taken, bind=True)
    a.close(0); ctx.term()


def test_any_port_is_for_a_binding_socket_only_never_a_config():
    with pytest.raises(ConfigError, match="endpoints.publish"):
        check_endpoint("tcp://127.0.0.1:*", "endpoints.publish")  # the connecting stages need the port
    ctx = zmq.Context()
    try:
        with pytest.raises(ConfigError):
            make_socket(ctx, "SUB", "tcp://127.0.0.1:*", bind=False)
    finally:
        ctx.term()
