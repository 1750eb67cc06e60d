"""The viewer page in headless Chromium: streams, live images, tracks, heatmap toggle, stall and restart.

A fake publisher (real PUB socket, real wire messages) publishes annotated JPEGs with a frame
counter drawn in; the bridge serves them; selenium drives the page. Skips with the reason when
chromium, chromedriver or selenium is missing (see ``tests/browser.py``). Keeps a screenshot of
the page in ``test-artifacts/viewer.png``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

import browser
from _publisher_fixtures import FakePublisher, pub_endpoint, publish_until  # noqa: F401 (fixture)
from streamcam.protocol import Detection
from streamcam.publisher.mjpeg import MjpegServer

pytestmark = pytest.mark.slow

TRACK_IDS = {"cam0": 7, "cam1": 42, "cam2": 3}
W, H = 320, 240


class TrackedPublisher(FakePublisher):
    """Per stream one tracked person (its own id) and one untracked detection, inside the frame.

    Streams in ``plain_streams`` also carry ``image_plain`` (the frame without the heatmap).
    """

    def __init__(self, endpoint: str, plain_streams: tuple[str, ...] = ("cam0", "cam1"), seq: int = 0) -> None:
        super().__init__(endpoint, W, H, seq=seq)
        self.plain_streams = plain_streams

    def detections_for(self, stream: str, seq: int) -> list[Detection]:
        x = 20.0 + (seq * 3) % 120
        return [Detection((x, 40.0, x + 70.0, 200.0), 0.9, "person", TRACK_IDS[stream]),
                Detection((230.0, 60.0, 300.0, 150.0), 0.61, "person", None)]

    def publish(self, stream: str, **kw: Any) -> int:
        self.plain = stream in self.plain_streams
        return super().publish(stream, **kw)


class Feed:
    """Publishes the given streams at ~12 Hz from a thread until stopped."""

    def __init__(self, pub: TrackedPublisher, streams: list[str]) -> None:
        self.pub, self.streams = pub, streams
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                for s in list(self.streams):
                    self.pub.publish(s)
            time.sleep(0.08)  # pacing: a live feed at ~12 fps

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as r:
        return json.loads(r.read())


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from browser.chromium_driver()


def cards(drv: Any) -> list[dict[str, Any]]:
    return drv.execute_script("""
        return Array.from(document.querySelectorAll('.card')).map(function (c) {
          var img = c.querySelector('img'), box = c.querySelector('input.heatmap');
          return {id: c.dataset.id, state: c.dataset.state, seq: c.dataset.seq, src: img.getAttribute('src'),
                  variant: img.dataset.variant, natural: [img.naturalWidth, img.naturalHeight],
                  complete: img.complete, title: c.querySelector('h2').textContent,
                  fps: c.querySelector('.fps').textContent, latency: c.querySelector('.latency').textContent,
                  count: c.querySelector('.count').textContent, toggleDisabled: box.disabled,
                  toggleTip: c.querySelector('.toggle').title,
                  overlay: getComputedStyle(c.querySelector('.overlay')).display !== 'none'
                           ? c.querySelector('.overlay').textContent : null,
                  tracks: Array.from(c.querySelectorAll('tbody tr')).map(function (tr) {
                    return Array.from(tr.cells).map(function (td) { return td.textContent; })
                      .concat([tr.dataset.trackId || null]);
                  })};
        });""")


def card(drv: Any, sid: str) -> dict[str, Any]:
    return next((c for c in cards(drv) if c["id"] == sid), {})


def image_png(drv: Any, sid: str) -> bytes:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, f'.card[data-id="{sid}"] img').screenshot_as_png


def blue_minus_red(png: bytes) -> float:
    """How blue the image is: the JET heatmap of a mostly-cold CAM tints everything blue."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(np.float64)
    return float(bgr[..., 0].mean() - bgr[..., 2].mean())


def test_viewer_page_in_headless_chromium(pub_endpoint, driver):  # noqa: F811 (fixture)
    t_start = time.monotonic()
    pub = TrackedPublisher(pub_endpoint)
    server = MjpegServer(pub_endpoint, port=0).start()
    feed = None
    try:
        publish_until(pub, lambda: len(get_json(server.url + "api/streams")["streams"]) == 2, streams=("cam0", "cam1"))
        feed = Feed(pub, ["cam0", "cam1"])
        driver.get(server.url + "?max_mjpeg=2")  # a third stream falls back to refreshed snapshots

        # the page lists both streams, live, with their images decoded at full size
        browser.wait_for("two live cards with images", lambda: [c["id"] for c in cards(driver)
                                                       if c["state"] == "live" and c["natural"] == [W, H]]
                 == ["cam0", "cam1"])
        assert [c["title"] for c in cards(driver)] == ["cam0", "cam1"]
        driver.execute_script("window.__noReload = true")

        # the image updates: the counter from /api/streams moves, and the pixels change
        seq0 = int(card(driver, "cam0")["seq"])
        browser.wait_for("cam0 frame counter to advance", lambda: int(card(driver, "cam0")["seq"] or -1) >= seq0 + 3)
        first = image_png(driver, "cam0")
        browser.wait_for("cam0 image pixels to change", lambda: image_png(driver, "cam0") != first)

        # the track table shows the ids published on detections/<id>; figures are filled in
        for sid in ("cam0", "cam1"):
            c = browser.wait_for(f"{sid} track table", lambda sid=sid: (lambda c: c if len(c["tracks"]) == 2 else None)(
                card(driver, sid)))
            published = get_json(server.url + f"api/detections/{sid}")["detections"]
            assert published[0]["track_id"] == TRACK_IDS[sid]
            assert c["tracks"][0] == [str(TRACK_IDS[sid]), "person", "0.90", str(TRACK_IDS[sid])]
            assert c["tracks"][1] == ["–", "person", "0.61", None]
            assert c["fps"] == "10.0" and c["latency"] == "13 ms" and c["count"] == "2"
            assert c["toggleDisabled"] is False and "heatmap" in c["toggleTip"]

        # heatmap off: the img switches to the plain variant, and the blue JET tint goes away
        heat_tint = blue_minus_red(image_png(driver, "cam0"))
        driver.execute_script("document.querySelector('.card[data-id=\"cam0\"] input.heatmap').click()")
        c = browser.wait_for("cam0 plain image", lambda: (lambda c: c if c["variant"] == "plain" and c["state"] == "live"
                                                               and c["natural"] == [W, H] else None)(card(driver, "cam0")))
        assert "heatmap=0" in c["src"] and c["src"].startswith("/stream/cam0.mjpg")
        assert "heatmap=1" in card(driver, "cam1")["src"]
        browser.wait_for("the plain frames to show", lambda: blue_minus_red(image_png(driver, "cam0")) < 10)
        assert heat_tint > 30, heat_tint

        # a new stream (without image_plain) appears without a reload; its toggle is disabled, with the reason
        with feed.lock:
            feed.streams.append("cam2")
        c = browser.wait_for("a third card, live, its image loaded", lambda: (
            lambda c: c if c.get("state") == "live" and len(c["tracks"]) == 2 and c["natural"] == [W, H]
            else None)(card(driver, "cam2")))
        assert [c["id"] for c in cards(driver)] == ["cam0", "cam1", "cam2"]
        assert driver.execute_script("return window.__noReload") is True
        assert c["toggleDisabled"] is True and "plain_frames: true" in c["toggleTip"]
        assert c["tracks"][0][0] == str(TRACK_IDS["cam2"])
        assert c["src"].startswith("/snapshot/cam2.jpg?heatmap=1") and c["natural"] == [W, H]
        first = image_png(driver, "cam2")
        browser.wait_for("cam2 snapshots to refresh", lambda: image_png(driver, "cam2") != first)

        shot = browser.artifact_path("viewer.png")
        browser.wait_for("all three images loaded", lambda: all(c["natural"] == [W, H] for c in cards(driver)))
        driver.save_screenshot(str(shot))
        print(f"viewer screenshot: {shot}")

        # the publisher goes away: every card says "stream stalled"
        feed.stop()
        pub.close()
        browser.wait_for("stalled cards", lambda: all(c["state"] == "stalled" and "stream stalled" in (c["overlay"] or "")
                                              for c in cards(driver)))
        driver.save_screenshot(str(browser.artifact_path("viewer-stalled.png")))
        last_seq = min(int(c["seq"]) for c in cards(driver))
        # ... and restarts (sequence numbers from 0 again): the cards go live and the images move again
        pub = TrackedPublisher(pub_endpoint, seq=0)
        feed = Feed(pub, ["cam0", "cam1", "cam2"])
        browser.wait_for("live again after the restart",
                 lambda: all(c["state"] == "live" and int(c["seq"]) < last_seq for c in cards(driver)))
        before = image_png(driver, "cam1")
        browser.wait_for("cam1 image moving after the restart", lambda: image_png(driver, "cam1") != before)
        assert time.monotonic() - t_start < 30
    finally:
        if feed is not None:
            feed.stop()
        server.stop()
        pub.close()
