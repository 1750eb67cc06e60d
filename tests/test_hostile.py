"""A hostile client (tools/hostile.py, written from docs/protocol.md) against a running pipeline."""

import json
import signal
import threading
import time

import zmq

from streamcam import protocol
from streamcam.transport import make_socket
from _pipeline_fixtures import pipeline_yaml, published, receive, stage_pids, start_run
from _wait import wait_for
from tools import hostile

ATTACK_S = 8.0


def _watch(endpoint, stop, arrivals):
    ctx = zmq.Context()
    sub = make_socket(ctx, "SUB", endpoint, bind=False, subscribe="detections/cam0")
    try:
        while not stop.is_set():
            if sub.poll(100):
                msg = protocol.decode(sub.recv_multipart())
                if msg.stream == "cam0":
                    arrivals.append(time.monotonic())
    finally:
        sub.close(0)
        ctx.term()


def _stats(run, stage):
    return json.loads((run / "stats" / f"{stage}.json").read_text())


def test_a_hostile_client_never_pauses_the_good_stream_nor_restarts_a_stage(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    text = cfg.read_text().replace("run: {", "run: {max_streams: 8, ")
    cfg.write_text(text)
    run = short_tmp / "run"
    sup = start_run(cfg)
    stop, arrivals = threading.Event(), []
    try:
        pub_ep = published(run)
        assert receive(pub_ep, "detections/cam0", 3), "the pipeline did not start"
        pids = sorted(stage_pids(run))
        watcher = threading.Thread(target=_watch, args=(pub_ep, stop, arrivals), daemon=True)
        watcher.start()
        wait_for("the watcher to see the good stream", lambda: len(arrivals) >= 5, timeout=10)
        t_attack = time.monotonic()
        sent = hostile.attack({"frames": f"ipc://{run}/frames.sock", "results": f"ipc://{run}/results.sock"},
                              ATTACK_S, rate=150)
        t_done = time.monotonic()
        # The good stream's arrivals are judged up to 1 s past the attack: watch until then.
        wait_for("the good stream past the attack", lambda: arrivals and arrivals[-1] > t_done + 1, timeout=10)
        stop.set()
        watcher.join(5)
        expected = {ep: dict(hostile.iter_reasons(sent, ep)) for ep in ("frames", "results")}
        # The stats files are written once a second: wait until every reject has been counted (a
        # loaded machine's stages can be seconds behind the attack).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            proc, pub = _stats(run, "processor"), _stats(run, "publisher")
            if proc["rejected"] == expected["frames"] and all(
                    pub["rejected"].get(r, 0) >= n for r, n in expected["results"].items()):
                break
            time.sleep(0.5)
        assert sorted(stage_pids(run)) == pids, "a stage was restarted"
    finally:
        stop.set()
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=15)
    assert "restart" not in out, out[-3000:]
    assert sum(sent.values()) > 1000, sent
    # Every reject counted under the reason the protocol documents, and nothing failed inside a stage.
    assert proc["rejected"] == expected["frames"], (proc["rejected"], expected["frames"])
    assert proc["failed"] == {}, proc["failed"]
    # The processor forwards what it accepts: the publisher sees only the hostile client's rejects.
    assert pub["rejected"] == expected["results"], (pub["rejected"], expected["results"])
    assert pub["failed"] == {}, pub["failed"]
    # The flood of new stream ids: state for at most max_streams, the rest evicted and counted.
    # Distinct ids at the processor: cam0, the flood, and the two odd-sized frames' ids.
    distinct = 1 + sent[("frames", None, "new stream id")] + 2
    assert proc["streams"] == 8 and proc["evicted"] >= distinct - 8, (proc["streams"], proc["evicted"], distinct)
    assert pub["evicted"] > 0
    assert not any(p.name.startswith("frames-flood") for p in (run / "stats").iterdir())
    # The good stream: published throughout, never a pause over 2 s.
    during = [t for t in arrivals if t_attack - 1 <= t <= t_done + 1]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert len(during) > 10 * ATTACK_S, len(during)
    assert max(gaps) < 2.0, f"the good stream paused {max(gaps):.2f} s"
    assert pub["streams"]["cam0"]["published"] > 0
