"""``streamcam label`` end to end in headless Chromium: scrub, mark ranges, draw a box by mouse, save, check the files.

Skips with the reason when chromium, chromedriver or selenium is missing (see ``tests/browser.py``).
Keeps a screenshot of the page in ``test-artifacts/label.png``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

import browser
from _label_fixtures import H, W, write_video
from streamcam.capture.indexed import IndexedFrames
from streamcam.evaluation.calibration import labelled_frames
from streamcam.labelling.server import LabelServer
from streamcam.training.data import load_data

pytestmark = pytest.mark.slow


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from browser.chromium_driver()


def test_label_page_in_headless_chromium(tmp_path, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    frames = IndexedFrames(write_video(tmp_path / "clip.avi"))
    out = tmp_path / "out"
    server = LabelServer(frames, out, port=0).start()
    try:
        js = driver.execute_script
        keys = lambda *k: ActionChains(driver).send_keys(*k).perform()  # noqa: E731 (to the focused page)
        frame_no = lambda: int(driver.find_element(By.ID, "frame-no").text)  # noqa: E731

        def pixel(x: int, y: int) -> list[int]:
            return js("return Array.from(document.getElementById('canvas').getContext('2d')"
                      ".getImageData(arguments[0], arguments[1], 1, 1).data).slice(0, 3)", x, y)

        def frame_shown(i: int) -> bool:  # the block of frame i (x = 2 i .. 2 i + 30) is drawn: RGB ~ (40, 200, 255)
            r, g, b = pixel(2 * i + 15, 60)
            return frame_no() == i and b > 200 and g > 150 and r < 100 and pixel(2 * i + 40, 60)[2] < 200

        def slide(i: int) -> None:
            js("var s = document.getElementById('slider'); s.value = arguments[0];"
               "s.dispatchEvent(new Event('input'))", i)

        def at(x: float, y: float) -> tuple[int, int]:
            """Offset from the canvas centre (selenium's origin) of frame pixel (x, y)."""
            r = js("return document.getElementById('canvas').getBoundingClientRect().toJSON()")
            return round(x * r["width"] / W - r["width"] / 2), round(y * r["height"] / H - r["height"] / 2)

        def drag(x0: float, y0: float, x1: float, y1: float) -> None:
            (ActionChains(driver).move_to_element_with_offset(canvas, *at(x0, y0)).click_and_hold()
             .move_to_element_with_offset(canvas, *at((x0 + x1) / 2, (y0 + y1) / 2))
             .move_to_element_with_offset(canvas, *at(x1, y1)).release().perform())

        def rows(table: str) -> list[list[str]]:
            return js("return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr:not(.empty-list)'))"
                      ".map(function (tr) { return Array.from(tr.cells).map(function (td) {"
                      " var i = td.querySelector('input'); return i ? i.value : td.textContent; }); })", table)

        driver.get(server.url)
        browser.wait_for("the page to load the session", lambda: js("return document.body.dataset.ready") == "1")
        canvas = driver.find_element(By.ID, "canvas")
        assert driver.find_element(By.ID, "frame-count").text == "39"
        browser.wait_for("frame 0 drawn", lambda: frame_shown(0))

        # scrub: arrow keys (Shift: 10 frames), the slider, Home
        keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        browser.wait_for("frame 3 drawn", lambda: frame_shown(3))
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ARROW_RIGHT).key_up(Keys.SHIFT).perform()
        browser.wait_for("frame 13 drawn", lambda: frame_shown(13))
        slide(20)
        browser.wait_for("frame 20 drawn", lambda: frame_shown(20))

        # a person range 20..29 (keys), then its step set to 3 in the table
        keys("1", "s")
        for _ in range(9):
            keys(Keys.ARROW_RIGHT)
        keys("e")
        browser.wait_for("the person range listed", lambda: rows("ranges") == [["person", "20–29", "1", "10", "×"]])
        step = driver.find_element(By.CSS_SELECTOR, "#ranges input.range-step")
        step.clear()
        step.send_keys("3", Keys.TAB)
        browser.wait_for("its step", lambda: rows("ranges") == [["person", "20–29", "3", "4", "×"]])
        js("document.activeElement.blur()")

        # an empty range 0..9 with step 2 (the step box, the class button and the End range button)
        driver.find_element(By.ID, "step").send_keys(Keys.CONTROL, "a", Keys.NULL, "2")
        js("document.activeElement.blur()")
        driver.find_element(By.CSS_SELECTOR, '#classes button[data-class="empty"]').click()
        keys(Keys.HOME, "s")
        slide(9)
        driver.find_element(By.ID, "end").click()
        browser.wait_for("two ranges", lambda: len(rows("ranges")) == 2)
        assert rows("ranges")[0] == ["empty", "0–9", "2", "5", "×"]
        # an overlapping range is refused, with the reason
        keys("s", Keys.ARROW_RIGHT, "e")
        assert "overlap" in driver.find_element(By.ID, "message").text and len(rows("ranges")) == 2
        keys(Keys.ESCAPE)

        # frame 4 shows no object (N); frame 26: one box drawn by mouse, a second drawn and clicked away
        slide(4)
        keys("n")
        slide(26)
        browser.wait_for("frame 26 drawn", lambda: frame_shown(26))
        drag(50, 30, 84, 90)
        drag(100, 10, 140, 50)
        browser.wait_for("two boxes", lambda: rows("validation") == [["4", "no object", "×"], ["26", "2", "×"]])
        ActionChains(driver).move_to_element_with_offset(canvas, *at(120, 30)).click().perform()
        browser.wait_for("the clicked box deleted", lambda: rows("validation")[1] == ["26", "1", "×"])
        assert rows("ranges")[0][3] == "4" and rows("ranges")[1][3] == "3"  # frames 4 and 26 left out of training

        shot = browser.artifact_path("label.png")
        driver.save_screenshot(str(shot))
        print(f"label page screenshot: {shot}")

        # save: the files
        driver.find_element(By.ID, "save").click()
        browser.wait_for("saved", lambda: js("return document.body.dataset.saved") == "1")
        assert f"streamcam train {out.as_posix()}/train" in driver.find_element(By.ID, "next").text
        names = lambda cls: sorted(p.name for p in (out / "train" / cls).iterdir())  # noqa: E731
        assert names("person") == ["f000020.png", "f000023.png", "f000029.png"]
        assert names("empty") == ["f000000.png", "f000002.png", "f000006.png", "f000008.png"]
        assert load_data(out / "train").counts() == {"empty": 4, "person": 3}
        val = labelled_frames(out / "VAL.json")
        assert [e["frame"] for e in json.loads((out / "VAL.json").read_text())["frames"]] == [4, 26]
        assert val[0][2] == [] and len(val[1][2]) == 1
        box = val[1][2][0]
        assert box == pytest.approx((50, 30, 84, 90), abs=1.0), box  # the dragged corners, in frame pixels

        # a reload shows what was saved
        driver.refresh()
        browser.wait_for("the page to load again", lambda: js("return document.body.dataset.ready") == "1")
        assert len(rows("ranges")) == 2 and rows("validation") == [["4", "no object", "×"], ["26", "1", "×"]]
    finally:
        server.stop()
        frames.close()
