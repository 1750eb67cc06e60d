"""Bounded per-stream state: at most run.max_streams, the least recently seen evicted and counted."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from streamcam import protocol
from streamcam.bounded import StreamTable
from streamcam.errors import ConfigError


def test_the_least_recently_seen_stream_is_evicted_and_counted():
    evicted = []
    t = StreamTable(3, lambda s: {"id": s}, lambda s, v: evicted.append(s))
    for s in ["a", "b", "c", "a", "d"]:  # "a" seen again: "b" is now the oldest
        t.get(s)
    assert list(t) == ["c", "a", "d"] and evicted == ["b"] and t.evicted == 1
    assert t.peek("b") is None and "b" not in t and len(t) == 3
    first = t.get("c")
    assert t.get("c") is first  # state kept while it stays


def test_max_streams_is_validated_naming_the_key(tmp_path):
    from streamcam.config import config_from_dict

    with pytest.raises(ConfigError, match=r"run.max_streams: expected 2 .* got 1"):
        config_from_dict({"streams": [{"id": "a"}, {"id": "b"}], "run": {"max_streams": 1}})
    with pytest.raises(ValueError):
        StreamTable(0, dict)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stabilizer_state_stays_flat_over_20000_stream_ids(tiny_model):
    from streamcam.config import StabilizerConfig
    from streamcam.processor.detector import Detector, FrameResult
    from streamcam.processor.engines import create_engine
    from streamcam.processor.stabilized import StabilizedDetector

    detector = Detector(create_engine(tiny_model, "onnxruntime"), min_score=0.0)
    tracked = StabilizedDetector(detector, StabilizerConfig(), live=True, max_streams=16)
    result = FrameResult([protocol.Detection((10.0, 10.0, 60.0, 90.0), 0.9, "person")], None, np.ones(2) / 2)
    for i in range(20_000):
        tracked.track(f"id-{i}", result, (320, 240), time.time_ns())
        if i == 2_000:
            warm = _rss_kb()
    end = _rss_kb()
    assert len(tracked.streams) == 16 and tracked.streams.evicted == 20_000 - 16
    # Unbounded, 18,000 more stabilizers would be tens of MB (each holds its Kalman state and trails).
    assert end - warm < 2048, f"RSS grew {end - warm} kB over 18,000 new stream ids"


FLOOD_IDS = int(os.environ.get("STREAMCAM_FLOOD_IDS", "20000"))
"""Distinct ids for the stage test (docs/reliability.md records a run with 100000)."""


@pytest.mark.slow
def test_a_live_processor_stays_flat_while_new_stream_ids_arrive(short_tmp, tiny_model):
    from _processor_fixtures import processor_thread, stats_when
    from streamcam.config import load_config
    from _pipeline_fixtures import pipeline_yaml

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model), {"run.max_streams": 32})
    img = np.zeros((8, 8), np.uint8)
    got = 0
    with processor_thread(cfg) as (push, pull):
        for i in range(FLOOD_IDS):
            push.send_multipart(protocol.encode("frame", f"id-{i}", 0, time.time_ns(),
                                                [protocol.raw_part("image", img, "GRAY8")]))
            while pull.poll(0):
                pull.recv_multipart()
                got += 1
            if i == 5_000:
                warm = _rss_kb()
        end = _rss_kb()
        while pull.poll(1000):
            pull.recv_multipart()
            got += 1
        stats = stats_when(cfg.run_dir, lambda s: s["streams"] == 32)
    assert stats["failed"] == {} and stats["streams"] == 32
    # Every id but the 32 held was evicted (ids skipped under the newest-frame policy never got state).
    assert stats["evicted"] + 32 + stats["skipped"] >= FLOOD_IDS - 50, stats
    assert got > 1000
    print(f"RSS {warm} kB after 5,000 ids, {end} kB after {FLOOD_IDS}")
    assert end < warm * 1.05, f"RSS {warm} kB after 5,000 ids, {end} kB after {FLOOD_IDS}"
