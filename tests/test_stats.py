"""What a stage counts and when it reports."""

from __future__ import annotations

from streamcam.stats import Every, LatencyWindow, read_stats, write_stats


def test_every_is_due_once_per_period():
    assert [Every(0.0).due() for _ in range(3)] == [True, True, True]
    slow = Every(3600.0)
    assert [slow.due() for _ in range(3)] == [False, False, False]  # the first period starts at construction


def test_latency_percentiles_of_the_window_and_the_run(tmp_path):
    w = LatencyWindow(size=4)
    for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
        w.add(ms)
    assert w.count == 5 and w.recent(50) == 3.5  # the window holds 2, 3, 4, 100
    write_stats(tmp_path, "processor", {"published": 5})
    assert read_stats(tmp_path)["processor"]["published"] == 5
