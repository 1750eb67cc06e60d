"""The page's events in headless Chromium (Debian's): events appear with their snapshot, and a clip
written by the one H.264 writer plays in the browser's <video> (decoded: time advances, size known)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import browser
from _publisher_fixtures import FakePublisher, pub_endpoint  # noqa: F401 (fixture)
from streamcam.protocol import encode
from streamcam.publisher.annotate import encode_jpeg
from streamcam.publisher.mjpeg import MjpegServer
from streamcam.video import write_clip

pytestmark = pytest.mark.slow
W, H = 320, 240


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from browser.chromium_driver()


def _event(kind: str) -> dict[str, Any]:
    return {"type": kind, "id": "cam0-1-7", "stream": "cam0", "label": "person", "track_id": 7, "zones": ["yard"],
            "entered_zones": ["yard"], "start_ns": time.time_ns(), "end_ns": time.time_ns() if kind == "end" else None,
            "score": 0.91, "box": [10, 20, 60, 200], "stationary": False, "loitering": False,
            "snapshot": "cam0/cam0-1-7.jpg", "clip": "cam0/cam0-1-7.mp4"}


def test_events_appear_and_their_clip_plays(pub_endpoint, driver, tmp_path: Path):  # noqa: F811 (fixture)
    frames = []
    for i in range(30):  # a bright bar sweeping across: a clip whose frames differ
        f = np.full((H, W, 3), 30, np.uint8)
        f[:, (i * 10) % W:(i * 10) % W + 20] = (40, 200, 240)
        frames.append(f)
    (tmp_path / "cam0").mkdir()
    write_clip(str(tmp_path / "cam0" / "cam0-1-7.mp4"), frames, 10.0)
    (tmp_path / "cam0" / "cam0-1-7.jpg").write_bytes(encode_jpeg(frames[5]))
    pub = FakePublisher(pub_endpoint, W, H)
    stop = threading.Event()
    kind = ["new"]

    def feed() -> None:
        while not stop.is_set():
            pub.publish("cam0")
            pub.sock.send_multipart(encode("events", "cam0", pub.seq, time.time_ns(), (), events=[_event(kind[0])]))
            time.sleep(0.1)  # pacing: a live feed at 10 fps

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    try:
        with MjpegServer(pub_endpoint, port=0, events_dir=str(tmp_path)) as server:
            driver.get(server.url)
            items = "return Array.from(document.querySelectorAll('.events li')).map(li => " \
                    "[li.dataset.type, li.querySelector('img') && li.querySelector('img').naturalWidth, " \
                    "li.querySelector('button').disabled])"
            got = browser.wait_for("the new event listed with its snapshot",
                                   lambda: [x for x in driver.execute_script(items) if x[1]], timeout=15)
            assert got == [["new", W, True]]  # the clip is not written until the event ends
            kind[0] = "end"
            browser.wait_for("the event ended", lambda: driver.execute_script(items) == [["end", W, False]], 10)
            driver.execute_script("document.querySelector('.events li button').click()")
            state = "var v = document.querySelector('video.clip'); " \
                    "return [v.readyState, v.videoWidth, v.videoHeight, v.currentTime, v.error && v.error.code]"
            played = browser.wait_for("the clip playing", lambda: (lambda s: s if s[3] > 0.3 else None)(
                driver.execute_script(state)), timeout=15)
            assert played[1:3] == [W, H] and played[4] is None, played
            driver.save_screenshot(str(browser.artifact_path("events.png")))
            api = json.loads(urllib.request.urlopen(server.url + "api/events/cam0").read())
            assert [e["type"] for e in api["events"]] == ["end"]
            for bad in ("events/cam0/..%2F..%2Fetc%2Fpasswd.jpg", "events/cam0/missing.mp4", "events/cam0/x.txt"):
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(server.url + bad)
                assert err.value.code == 404
    finally:
        stop.set()
        th.join(2)
        pub.close()
