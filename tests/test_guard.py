"""One message never stops a stage: what escapes its handling is counted by reason, logged once, skipped."""

import logging
import time

import numpy as np
import pytest

from streamcam import protocol
from streamcam.guard import MessageGuard
from streamcam.metrics import StageMetrics


def test_failures_are_counted_by_type_and_logged_once_per_reason(caplog):
    guard = MessageGuard("test", StageMetrics("test", None), logging.getLogger("streamcam.test"))
    with caplog.at_level(logging.ERROR, logger="streamcam.test"):
        for i in range(5):
            with guard.message("s"):
                raise OverflowError("int too large to convert to float")
            with guard.message("s"):
                [][i]
        with guard.message("s"):
            pass  # a message handled fine counts nothing
    assert guard.counts == {"error:OverflowError": 5, "error:IndexError": 5} and guard.total == 10
    logged = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(logged) == 2 and all(r.exc_info for r in logged)  # the traceback, once per reason


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_shutdown_still_goes_through(exc):
    guard = MessageGuard("test", StageMetrics("test", None), logging.getLogger("streamcam.test"))
    with pytest.raises(exc):
        with guard.message("s"):
            raise exc()
    assert guard.total == 0


def test_a_message_that_breaks_the_publisher_is_counted_and_the_next_one_published(short_tmp, tiny_model, monkeypatch):
    """A fault injected where no validation can reach (the drawing code): the stage must go on."""
    from streamcam.config import load_config
    from streamcam.publisher import annotate as annotate_mod
    from _processor_fixtures import stats_when
    from _pipeline_fixtures import pipeline_yaml, published
    from _publisher_fixtures import publisher_running
    from _wait import wait_for

    real = annotate_mod.annotate

    def annotate(image, *a, stream="", **k):
        if stream == "bad":
            raise OverflowError("a fault no decoder check foresaw")
        return real(image, *a, stream=stream, **k)

    monkeypatch.setattr(annotate_mod, "annotate", annotate)
    cfg = load_config(pipeline_yaml(short_tmp, tiny_model))
    img = np.zeros((24, 32), np.uint8)
    got = []
    with publisher_running(cfg) as running:
        # Once its bound addresses are written both its sockets are bound (its port the OS picked).
        sub = running.subscribe(("detections/good", "detections/probe", "frames/"), published(cfg.run_dir, timeout=10))

        def probe() -> bool:  # a result of a third stream, until one comes back: the subscription is live
            running.push.send_multipart(protocol.encode("result", "probe", 0, time.time_ns(),
                                                        [protocol.raw_part("image", img, "GRAY8")],
                                                        width=32, height=24, detections=[]))
            return sub.poll(100)

        wait_for("the subscription to reach the publisher", probe, timeout=10)
        # frames/ subscribed too: the publisher draws only frames someone receives (publisher/demand.py)
        stats_when(cfg.run_dir, lambda s: "frames/" in s.get("subscribed", ()), stage="publisher")
        for seq in range(20):
            for sid in ("bad", "good"):
                running.push.send_multipart(protocol.encode("result", sid, seq, time.time_ns(),
                                                            [protocol.raw_part("image", img, "GRAY8")],
                                                            width=32, height=24, detections=[]))
            time.sleep(0.03)  # pacing: the results arrive spread out, as from a processor
            while sub.poll(0):
                got += [m.seq for m in [protocol.decode(sub.recv_multipart())] if m.stream == "good" and m.kind == "detections"]
        stats = stats_when(cfg.run_dir, lambda s: s["failed"] == {"error:OverflowError": 20}, stage="publisher")
        while sub.poll(0):
            got += [m.seq for m in [protocol.decode(sub.recv_multipart())] if m.stream == "good" and m.kind == "detections"]
    assert len(got) >= 15, got  # the good stream went on (the slow joiner may miss the first few)
    assert stats["failed"] == {"error:OverflowError": 20}
    assert "bad" not in stats["streams"] or stats["streams"]["bad"]["published"] == 0
