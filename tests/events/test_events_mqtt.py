"""The publisher stage with events on, a real mosquitto, real sockets and files.

Results are the synthetic scene's frames with its ground-truth person as the tracked
detection (id = the ground-truth id), so what is checked is the event plumbing, not the
detector: one person walks into the zone and out of the frame -> exactly one ``new`` and
one ``end`` on ``events/<stream>`` and on MQTT, a snapshot, and an H.264 clip PyAV reads.
The broker is stopped while the person is inside and started again: the ``end`` produced
while it was away arrives after it is back, and the published frame rate did not change.
"""

from __future__ import annotations

import json
import time


from _mqtt_fixtures import Mosquitto, Subscriber, mosquitto  # noqa: F401 (fixture)
from _wait import wait_for
from streamcam import protocol
from streamcam.datasets.synthetic import SyntheticIRScene
from streamcam.config import config_from_dict

FPS = 20.0
ZONE = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]
# Seed 0, one person, no confusers: frames 68-114 show a person who crosses x = 0.6 W at ~94.
SCENE = dict(width=320, height=240, seed=0, people=1, confusers=0, fps=10)
WALK = range(60, 136)
EMPTY = 150


def _cfg(tmp, mqtt_port):
    return config_from_dict({
        "name": "events-test",
        "streams": [{"id": "yard", "zones": [{"name": "lawn", "points": ZONE, "min_frames": 3}]}],
        "serve": {"enabled": False},
        "endpoints": {"results": f"ipc://{tmp}/results.sock", "publish": f"ipc://{tmp}/pub.sock"},
        "run": {"run_dir": str(tmp / "run")},
        "events": {"enabled": True, "min_frames": 3, "lost_frames": 5, "pre_roll_s": 1.0, "post_roll_s": 1.0,
                   "update_interval_s": 0.5, "dir": str(tmp / "events"),
                   "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "prefix": "sc", "reconnect_max_s": 1.0}},
    })


def _result(scene, index, seq, t_ns):
    f = scene.frame(index)
    dets = [protocol.Detection(tuple(float(v) for v in o.box), 0.9, "person", int(o.id)).to_json() for o in f.persons]
    return protocol.encode("result", "yard", seq, t_ns, [protocol.raw_part("image", f.image, "GRAY8")],
                           width=f.image.shape[1], height=f.image.shape[0], detections=dets, timings_ms={})


def test_one_person_one_new_one_end_through_a_broker_restart(short_tmp, mosquitto: Mosquitto):
    from _publisher_fixtures import PublisherRunning
    from streamcam.video import probe

    cfg = _cfg(short_tmp, mosquitto.port)
    scene = SyntheticIRScene(**SCENE)
    frames = {i: _result(scene, i, 0, 0) for i in [*WALK, EMPTY]}  # rendered once: the pace is the test's
    sub = Subscriber(mosquitto.port, ("sc/#",))
    assert sub.wait(lambda: sub.subscribed, 5)
    running = PublisherRunning(cfg, join_s=10)  # the clip being written may take a while to close
    push = running.push
    zsub = running.subscribe(("events/", "detections/"))
    zmq_events, fps_seen, heard, sent_t, published_t = [], [], [], [], []
    seq = 0

    def step(index: int) -> None:
        nonlocal seq
        parts = frames[index]
        header = json.loads(parts[1])
        header.update(seq=seq, t_capture_ns=time.time_ns())
        push.send_multipart([parts[0], json.dumps(header).encode(), *parts[2:]])
        sent_t.append(time.monotonic())
        seq += 1
        t_end = time.monotonic() + 1.0 / FPS
        while (left := t_end - time.monotonic()) > 0:
            if zsub.poll(max(1, int(left * 1000))):
                msg = protocol.decode(zsub.recv_multipart())
                heard.append(msg.kind)
                if msg.kind == "detections":
                    published_t.append(time.monotonic())
                if msg.kind == "events":
                    zmq_events.extend(msg.header["events"])
                elif msg.header.get("fps"):
                    fps_seen.append((time.monotonic(), msg.header["fps"]))

    def mqtt_events():
        return [json.loads(p) for t, p, _ in sub.messages if t == "sc/events"]

    try:
        # The publisher up and this subscription through to it: empty frames until one comes back.
        wait_for("the publisher's first message on the bus", lambda: (step(EMPTY), heard)[1], timeout=10)
        walk = iter(WALK)
        for index in walk:  # until the person is in the zone and MQTT has said so
            step(index)
            if any(e["type"] == "new" for e in mqtt_events()):
                break
        assert [e["type"] for e in mqtt_events()] == ["new"], "no new event over MQTT while the person was in the zone"
        assert mqtt_events()[0]["zones"] == ["lawn"] and mqtt_events()[0]["snapshot"] == f"yard/{mqtt_events()[0]['id']}.jpg"
        fps_before = fps_seen[-1][1]
        mosquitto.stop()
        t_down = time.monotonic()
        for index in walk:  # the person walks out of the frame while the broker is away
            step(index)
        for _ in range(int(FPS * 3)):  # long enough for the rate's 2 s window to hold outage frames only
            step(EMPTY)
        assert "end" in [e["type"] for e in zmq_events], "the end was not produced while the broker was away"
        assert "end" not in [e["type"] for e in mqtt_events()]
        t_up = time.monotonic()
        # the rate once its 2 s window lies wholly inside the outage, and any pause in publishing
        fps_outage = [f for t, f in fps_seen if t_down + 3.0 < t <= t_up]
        during = [t for t in published_t if t_down <= t <= t_up]
        pause_s = max((b - a for a, b in zip(during, during[1:])), default=float("inf"))
        sent_outage = [t for t in sent_t if t > t_down]
        # the rate this test itself fed frames at meanwhile: a loaded machine slows the feeder too
        fed_fps = (len(sent_outage) - 1) / max(sent_outage[-1] - sent_outage[0], 1e-6)
        mosquitto.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "end" not in [e["type"] for e in mqtt_events()]:
            step(EMPTY)
        for _ in range(int(FPS * 1.5)):  # the post-roll, so the clip is cut and written
            step(EMPTY)
    finally:
        running.close()
        sub.close()
    assert not running.thread.is_alive(), "the publisher did not stop"
    types = [e["type"] for e in zmq_events]
    assert types.count("new") == 1 and types.count("end") == 1, types
    got = mqtt_events()
    stats = json.loads((cfg.run_dir / "stats" / "publisher.json").read_text())
    why = (got, stats.get("events"), (mosquitto.folder / "mosquitto.log").read_text()[-1500:])
    assert [e["type"] for e in got if e["type"] != "update"] == ["new", "end"], why
    assert got[0]["id"] == got[-1]["id"] and got[-1]["end_ns"] >= got[-1]["start_ns"] > 0
    # the pipeline did not slow down while the broker was away: it kept up with what it was fed
    assert fps_outage and min(fps_outage) > 0.7 * min(fps_before, fed_fps), (fps_before, fed_fps, fps_outage)
    assert pause_s < 2.0, f"publishing paused {pause_s:.2f} s while the broker was away"  # as a hostile client may not
    print(f"broker outage: longest pause between published frames {pause_s:.3f} s")
    # retained count of open person events: 1 while inside, back to 0
    counts = [p for t, p, _ in sub.messages if t == "sc/yard/person"]
    assert counts[0] == b"1" and counts[-1] == b"0"
    ev = got[-1]
    snap = cfg.resolve(cfg.events.dir) + "/" + ev["snapshot"]
    with open(snap, "rb") as fh:
        assert fh.read(2) == b"\xff\xd8"
    clean = snap.replace(".jpg", "-clean.jpg")
    assert open(clean, "rb").read(2) == b"\xff\xd8"
    info = probe(cfg.resolve(cfg.events.dir) + "/" + ev["clip"])
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["width"] == 320
    # pre-roll + the walk in the zone + post-roll, at the published rate
    assert info["frames"] >= FPS * 1.5, info
    mq = stats["events"]["sinks"][0]
    assert mq["kind"] == "MqttSink" and mq["dropped"] == {} and mq["queued"] == 0
