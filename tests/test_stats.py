"""What a stage counts and when it reports."""

from __future__ import annotations

from streamcam.stats import Every, LatencyWindow, read_bound, read_stats, write_bound, write_stats


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


def test_bound_addresses_are_written_apart_from_the_stats(tmp_path):
    assert read_bound(tmp_path, "publisher") == {}  # not bound yet
    write_bound(tmp_path, "publisher", publish="tcp://127.0.0.1:40001", metrics=None)
    assert read_bound(tmp_path, "publisher") == {"publish": "tcp://127.0.0.1:40001"}
    assert not list((tmp_path / "bound").glob(".*"))  # written atomically: no temporary file left
    assert read_stats(tmp_path) == {}  # not a stage's stats
    write_bound(None, "publisher", publish="x")  # no run dir: nothing written


def test_send_tally_counts_what_went_and_what_was_dropped():
    from streamcam.stats import SendTally

    tally = SendTally()
    assert tally(True) is True and tally(True) is True and tally(False) is False
    assert (tally.sent, tally.dropped) == (2, 1)
    assert tally.rate >= 0.0
