"""The per-stream detect rate: which frames go through the network (streamcam/processor/schedule.py)."""

import numpy as np
import pytest

import conftest
from streamcam.processor.schedule import DetectSchedule

MS = 1_000_000


def _due(s, stream, times_ms):
    return [s.due(stream, int(t * MS)) for t in times_ms]


def test_every_nth_frame_counts_frames_per_stream():
    s = DetectSchedule(every=3)
    assert _due(s, "a", range(7)) == [True, False, False, True, False, False, True]
    assert _due(s, "b", range(2)) == [True, False]  # its own count


@pytest.mark.parametrize("fps, every_nth", [(10, 3), (15, 2), (30, 1), (5, 6)])
def test_detect_fps_keeps_a_timetable_through_timestamp_jitter(fps, every_nth):
    """A 30 fps camera whose timestamps jitter by up to +-4 ms is detected on every n-th frame."""
    rng = np.random.default_rng(fps)
    times = np.arange(90) * 1000 / 30 + rng.uniform(-4, 4, 90)
    due = _due(DetectSchedule(fps=fps), "a", np.maximum(times, 0))
    assert [i for i, d in enumerate(due) if d] == list(range(0, 90, every_nth))


def test_a_stream_that_fell_behind_restarts_its_timetable_without_a_burst():
    s = DetectSchedule(fps=10)
    assert _due(s, "a", [0, 100, 200]) == [True] * 3
    # a 1 s gap: the next frame is detected, and then one every 100 ms again, not a catch-up burst
    assert _due(s, "a", [1200, 1233, 1266, 1300, 1333]) == [True, False, False, True, False]


def test_per_stream_rates_override_the_common_one_and_forget_starts_afresh():
    s = DetectSchedule(fps=10, per_stream_fps={"fast": 30.0})
    assert s.rate("fast") == 30.0 and s.rate("other") == 10.0
    assert _due(s, "fast", [0, 33.3, 66.7]) == [True, True, True]
    assert _due(s, "other", [0, 33.3, 66.7]) == [True, False, False]
    s.forget("other")
    assert _due(s, "other", [70]) == [True]


@pytest.mark.parametrize("kwargs, match", [
    ({"every": 0}, "every"), ({"every": 1.5}, "every"), ({"fps": 0}, "fps"), ({"fps": -3.0}, "fps"),
    ({"per_stream_fps": {"cam1": 0.0}}, r"per_stream_fps\['cam1'\]"),
])
def test_bad_rates_are_refused_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DetectSchedule(**kwargs)


def test_the_processor_detects_each_stream_at_its_rate_and_publishes_every_frame(short_tmp, tiny_model):
    """processor.detect_fps 10 with a stream of its own at 30: of nine 30 fps frames per stream, the
    network sees 0, 3, 6 of one and all of the other; every frame is answered, the counts add up."""
    import time

    from _processor_fixtures import processor_thread, stats_when
    from streamcam import protocol
    from streamcam.config import config_from_dict

    cfg = config_from_dict({
        "streams": [{"id": "slow"}, {"id": "fast", "detect_fps": 30}],
        "processor": {"model": tiny_model, "min_score": 0.0, "detect_fps": 10},
        "serve": {"enabled": False}, "run": {"run_dir": str(short_tmp / "run")},
    })
    img = np.zeros((48, 64), np.uint8)
    got = {"slow": [], "fast": []}
    with processor_thread(cfg) as (push, pull):
        t0 = time.time_ns()
        for seq in range(9):
            for sid in got:
                push.send_multipart(protocol.encode("frame", sid, seq, t0 + seq * 33_333_333,
                                                    [protocol.raw_part("image", img, "GRAY8")]))
                deadline = time.monotonic() + 10  # one at a time: the newest-frame policy skips none
                while time.monotonic() < deadline and len(got[sid]) <= seq:
                    if pull.poll(200):
                        m = protocol.decode(pull.recv_multipart())
                        got[m.stream].append(m)
        for sid, msgs in got.items():
            assert [m.seq for m in msgs] == list(range(9)), sid
        detected = {sid: [m.header["timings_ms"]["engine"] > 0 for m in msgs] for sid, msgs in got.items()}
        assert detected["slow"] == [True, False, False] * 3
        assert detected["fast"] == [True] * 9
        stats = stats_when(cfg.run_dir, lambda s: (s["detected"], s["predicted"]) == (12, 6))
        assert (stats["detected"], stats["predicted"], stats["detect_fps"]) == (12, 6, 10.0)


@pytest.mark.parametrize("overrides, match", [
    ({"processor": {"detect_fps": 0}}, r"processor\.detect_fps: expected 0 < frames/s"),
    ({"streams": [{"id": "a", "detect_fps": -1}]}, r"streams\[0\]\.detect_fps"),
    ({"processor": {"detect_fps": 5, "detect_every": 2}}, "either a detect rate or processor.detect_every"),
    ({"processor": {"detect_fps": 5, "frame_path": "reference"}}, "needs frame_path cpu"),
])
def test_a_bad_detect_rate_is_rejected_before_anything_starts(overrides, match):
    from streamcam.config import config_from_dict
    from streamcam.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        config_from_dict(overrides)


def test_with_a_detect_rate_every_waiting_frame_is_answered_in_order_none_skipped(short_tmp, tiny_model):
    """A burst of four frames of one stream with detect_every 2: all four are answered, in order,
    nothing skipped; frames 0 and 2 go through the network, 1 and 3 are predicted. Frame 2 is
    published with its detection, or, when frame 3 came before that detection was back (the engine
    runs beside the frame loop), predicted and its detection "late" (it feeds the tracks only).
    (Four: the results fit the processor's send queue however late the test reads them.)"""
    import time

    from _processor_fixtures import processor_thread, stats_when
    from streamcam import protocol
    from streamcam.config import config_from_dict

    cfg = config_from_dict({
        "streams": [{"id": "cam0"}], "processor": {"model": tiny_model, "min_score": 0.0, "detect_every": 2},
        "serve": {"enabled": False}, "run": {"run_dir": str(short_tmp / "run")},
    })
    # The first frame is big (its resize keeps the processor busy) so the next three wait together.
    images = [np.zeros((3000, 4000), np.uint8)] + [np.zeros((48, 64), np.uint8)] * 3
    got = []
    with processor_thread(cfg) as (push, pull):
        t0 = time.time_ns()
        for seq, img in enumerate(images):
            push.send_multipart(protocol.encode("frame", "cam0", seq, t0 + seq * 33_333_333,
                                                [protocol.raw_part("image", img, "GRAY8")]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(got) < 4:
            if pull.poll(200):
                got.append(protocol.decode(pull.recv_multipart()))
        assert [m.seq for m in got] == list(range(4))
        with_detection = [m.header["timings_ms"]["engine"] > 0 for m in got]
        assert with_detection in ([True, False, True, False], [True, False, False, False])
        stats = stats_when(cfg.run_dir, lambda s: s["detected"] == 2)
        assert (stats["skipped"], stats["detected"], stats["dropped"]) == (0, 2, 0)
        assert stats["late"] == int(not with_detection[2]) and stats["predicted"] == 4 - sum(with_detection)


def test_frames_that_arrive_during_the_engine_call_are_answered_without_waiting_for_it(short_tmp):
    """The visible model (768x576: tens of ms per frame) at detect_every 2: frame 2 goes to the
    engine beside the loop, frame 3 comes right behind it; both are answered by the stabilizer's
    prediction at once, in order, and frame 2's detection, when it is back, feeds the tracks only.
    A due frame with nothing behind it is published with its detection, after the frames before it."""
    import json
    import time
    
    from _processor_fixtures import processor_thread
    from streamcam import protocol
    from streamcam.config import config_from_dict

    model = conftest.ROOT / "engines" / "person-rgb.onnx"
    cfg = config_from_dict({
        "streams": [{"id": "cam0"}], "processor": {"model": str(model), "detect_every": 2},
        "serve": {"enabled": False}, "run": {"run_dir": str(short_tmp / "run")},
    })
    img = np.zeros((576, 768, 3), np.uint8)
    got = []

    def send(seq):
        push.send_multipart(protocol.encode("frame", "cam0", seq, t0 + seq * 40_000_000,
                                            [protocol.raw_part("image", img, "BGR8")]))

    def stats_of(ready):  # the processor's stats once `ready` holds (written each second)
        deadline = time.monotonic() + 30
        while True:
            path = cfg.run_dir / "stats" / "processor.json"
            st = json.loads(path.read_text()) if path.is_file() else None
            if st is not None and ready(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.2)

    def receive(n):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < n:
            if pull.poll(200):
                got.append(protocol.decode(pull.recv_multipart()))

    with processor_thread(cfg) as (push, pull):
        t0 = time.time_ns()
        for seq in (0, 1):  # one at a time: 0 detected (a stream's first frame), 1 predicted
            send(seq)
            receive(seq + 1)
        send(2)
        send(3)
        receive(4)
        assert [m.seq for m in got] == [0, 1, 2, 3]
        assert [m.header["timings_ms"]["engine"] > 0 for m in got] == [True, False, False, False]
        stats_of(lambda st: st["late"] == 1)  # frame 2's detection is back: the engine is free
        send(4)  # due, alone: held until its detection is back, then published with it
        receive(5)
        send(5)  # not due, and 6 (due, the newest) right behind it: 5 goes first, 6 waits for its detection
        send(6)
        receive(7)
        assert [m.seq for m in got] == list(range(7))
        assert [m.header["timings_ms"]["engine"] > 0 for m in got[4:]] == [True, False, True]
        stats = stats_of(lambda st: st["processed"] == 7)
        assert (stats["detected"], stats["late"], stats["predicted"], stats["skipped"]) == (4, 1, 4, 0)
