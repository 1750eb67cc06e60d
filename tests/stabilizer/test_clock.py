"""The stabilizer's clock: capture-clock steps and late frames never make the dynamics' time go back."""

import time

import numpy as np
import pytest

from streamcam import protocol
from streamcam.stabilizer.clock import STEP_NS, StreamClock
from streamcam.stabilizer.stabilizer import Stabilizer

HOUR = 3600 * 10**9
FRAME = 50_000_000  # 20 fps


def _times(clock, captures, nows=None):
    return [clock(c, None if nows is None else n) for c, n in zip(captures, nows or captures)]


def test_steady_capture_times_keep_their_spacing():
    c = StreamClock()
    caps = [10**18 + i * FRAME for i in range(10)]
    nows = [5 * 10**9 + i * FRAME + (7_000_000 if i % 2 else 0) for i in range(10)]  # arrival jitter
    ts = _times(c, caps, nows)
    assert np.allclose(np.diff(ts), FRAME / 1e9)  # capture spacing, not arrival jitter
    assert c.steps == 0


@pytest.mark.parametrize("live", [True, False])
def test_a_wall_clock_step_back_is_one_step_and_time_goes_on(live):
    c = StreamClock()
    caps = [10**18 + i * FRAME for i in range(5)] + [10**18 - HOUR + i * FRAME for i in range(5, 10)]
    nows = [i * FRAME for i in range(10)]
    ts = _times(c, caps, nows if live else None)
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert c.steps == 1
    assert np.allclose(np.diff(ts[5:]), FRAME / 1e9)  # after the step, capture spacing again


def test_a_step_forward_does_not_run_ahead_of_the_host():
    c = StreamClock()
    caps = [10**18 + i * FRAME for i in range(5)] + [10**18 + HOUR + i * FRAME for i in range(5, 10)]
    nows = [i * FRAME for i in range(10)]
    ts = _times(c, caps, nows)
    assert c.steps == 1
    assert max(np.diff(ts)) < 2 * FRAME / 1e9
    assert all(t <= n / 1e9 for t, n in zip(ts, nows))


def test_a_late_older_frame_gets_no_motion_not_negative_time():
    c = StreamClock()
    t1 = c(10**18 + 2 * FRAME, 2 * FRAME)
    t2 = c(10**18 + FRAME, 2 * FRAME + 1)  # captured earlier, arrived later
    assert t2 == t1 and c.steps == 0
    assert c(10**18 + 1 * FRAME - 2 * STEP_NS, 3 * FRAME) >= t2 and c.steps == 1


def test_the_stabilizer_keeps_its_track_across_clock_steps_both_ways():
    clock, stab = StreamClock(), Stabilizer()
    caps = ([10**18 + i * FRAME for i in range(15)] + [10**18 - HOUR + i * FRAME for i in range(15, 30)]
            + [10**18 + 5 * HOUR + i * FRAME for i in range(30, 45)])
    ids = set()
    for i, cap in enumerate(caps):
        x = 100 + 3 * i
        out = stab.update([((x, 50, x + 40, 150), 0.9)], clock(cap, i * FRAME), (640, 480))
        if i > 5:
            assert len(out) == 1, (i, out)
            ids.add(out[0].track_id)
    assert ids == {1} and clock.steps == 2


def test_the_live_processor_goes_on_through_a_clock_step(short_tmp, tiny_model):
    from _processor_fixtures import processor_thread, stats_when
    from streamcam.config import load_config
    from _pipeline_fixtures import pipeline_yaml

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model))
    img = np.zeros((240, 320), np.uint8)
    t0 = time.time_ns()
    with processor_thread(cfg) as (push, pull):
        got = []
        for seq in range(12):
            t = t0 + seq * FRAME - (HOUR if seq >= 6 else 0)  # NTP stepped the capture host back an hour
            push.send_multipart(protocol.encode("frame", "cam0", seq, t, [protocol.raw_part("image", img, "GRAY8")]))
            if pull.poll(3000):
                got.append(protocol.decode(pull.recv_multipart()))
            time.sleep(0.05)  # pacing: this host's clock advances a frame per frame, as for a live camera
        stats = stats_when(cfg.run_dir, lambda s: s["clock_steps"] == 1)
    assert [m.seq for m in got] == list(range(12))
    assert got[-1].t_capture_ns == t0 + 11 * FRAME - HOUR  # the capture time stays on the wire as sent
    assert stats["failed"] == {} and stats["clock_steps"] == 1
