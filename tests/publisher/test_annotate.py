"""The publisher's drawing: heatmap blend against its numpy reference, boxes, banner, JPEG."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from streamcam.protocol import Detection
from streamcam.processor.cam import upsample_reference
from streamcam.publisher import annotate as an


def _frame(h: int, w: int, channels: int | None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img.flags.writeable = False  # like a zero-copy ZeroMQ buffer: any write would raise
    return img


def _tie_mask(cam: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixels whose colour-map index is a rounding tie (255 * v within 1e-3 of k + 0.5).

    There float32 (OpenCV) and float64 (reference) may pick neighbouring colour-map
    entries; everywhere else the two must agree within one grey level.
    """
    v = np.clip(upsample_reference(cam, (h, w)), 0, 1) * 255.0
    return np.abs(v - np.floor(v) - 0.5) < 1e-3


@pytest.mark.parametrize(
    "h, w, ch, cam_shape, alpha",
    [
        (480, 640, 3, (15, 20), 0.4),
        (480, 640, None, (7, 7), 0.4),
        (240, 320, 3, (240, 320), 0.0),
        (97, 131, 3, (5, 9), 1.0),
        (64, 64, 1, (2, 2), 0.25),
        (50, 80, 3, (1, 1), 0.6),
    ],
)
def test_heatmap_overlay_matches_reference(h, w, ch, cam_shape, alpha):
    img = _frame(h, w, ch)
    cam = np.random.default_rng(1).random(cam_shape, dtype=np.float32)
    before = img.copy()
    fast = an.heatmap_overlay(img, cam, alpha=alpha)
    ref = an.heatmap_overlay_reference(img, cam, alpha=alpha)
    assert fast.shape == (h, w, 3) and fast.dtype == np.uint8
    diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16)).max(axis=2)
    ties = _tie_mask(cam, h, w)
    assert ties.mean() < 0.01
    assert diff[~ties].max() <= 1
    np.testing.assert_array_equal(img, before)


def test_heatmap_clips_out_of_range_cam():
    img = _frame(32, 32, 3)
    cam = np.array([[-1.0, 2.0], [np.float32(0.5), 10.0]], dtype=np.float32)
    fast = an.heatmap_overlay(img, cam)
    ref = an.heatmap_overlay_reference(img, cam)
    assert np.abs(fast.astype(int) - ref).max() <= 1
    # alpha 1: the output is the colour map itself; cam 0 -> the map's first entry (JET: dark blue)
    pure = an.heatmap_overlay(img, np.zeros((4, 4), np.float32), alpha=1.0)
    lut = an.colormap_lut(cv2.COLORMAP_JET)
    assert (pure == lut[0]).all()


def test_heatmap_hot_spot_is_where_the_cam_peaks():
    img = np.zeros((120, 160, 3), np.uint8)
    cam = np.zeros((12, 16), np.float32)
    cam[3, 12] = 1.0  # top-right quadrant
    out = an.heatmap_overlay(img, cam, alpha=1.0).astype(int)
    redness = out[:, :, 2] - out[:, :, 0]
    y, x = np.unravel_index(np.argmax(redness), redness.shape)
    assert abs(y - 35) <= 10 and abs(x - 125) <= 10


def test_bad_inputs_raise_clear_errors():
    img = _frame(10, 10, 3)
    with pytest.raises(ValueError, match="alpha"):
        an.heatmap_overlay(img, np.zeros((2, 2), np.float32), alpha=1.5)
    with pytest.raises(ValueError, match="cam"):
        an.heatmap_overlay(img, np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        an.annotate(img.astype(np.float32), None, [])
    with pytest.raises(ValueError, match="quality"):
        an.encode_jpeg(img, 0)


def test_draw_detections_draws_boxes_in_track_colours_without_touching_input():
    img = np.zeros((200, 300, 3), np.uint8)
    img.flags.writeable = False
    dets = [
        Detection((20, 40, 120, 160), 0.91, "person", 1),
        Detection((150, 50, 280, 190), 0.55, "person", 2),
        Detection((0, 0, 10, 10), 0.3, "car", None),
    ]
    out = an.draw_detections(img, dets)
    assert not img.any()
    c1, c2 = an.track_color(1), an.track_color(2)
    assert c1 != c2 and an.track_color(1) == c1  # distinct and stable
    # box edges carry the track colour (left edge, away from the caption)
    assert tuple(out[120, 20]) == c1
    assert tuple(out[150, 280]) == c2
    # the caption sits above/at the box top: something is drawn there in the track colour
    assert (out[20:40, 20:120] == c1).all(axis=2).any()
    # interior untouched
    assert not out[80:140, 40:100].any()


def test_track_colours_are_distinct_for_many_ids():
    colours = {an.track_color(i) for i in range(30)}
    assert len(colours) == 30
    assert an.track_color(None) == (255, 255, 255)


def test_caption_has_track_id_label_and_score():
    assert an.detection_caption(Detection((0, 0, 1, 1), 0.876, "person", 12)) == "#12 person 0.88"
    assert an.detection_caption(Detection((0, 0, 1, 1), 0.5, "car")) == "car 0.50"


def test_draw_status_writes_a_banner_top_left_only():
    img = np.full((100, 200, 3), 100, np.uint8)
    out = an.draw_status(img, "ir0", fps=29.97, latency_ms=41.2)
    assert (img == 100).all()
    assert (out[:5, :40] != 100).any()
    assert (out[60:, :] == 100).all()
    assert (an.draw_status(img) == img).all()  # nothing to say, nothing drawn


def test_annotate_composes_and_is_pure():
    img = _frame(480, 640, None)
    before = img.copy()
    cam = np.random.default_rng(2).random((15, 20), dtype=np.float32)
    dets = [Detection((100, 100, 200, 300), 0.8, "person", 7)]
    out = an.annotate(img, cam, dets, stream="ir0", fps=30.0, latency_ms=12.0)
    assert out.shape == (480, 640, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    plain = an.annotate(img, cam, [], heatmap=False)
    np.testing.assert_array_equal(plain, cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    assert tuple(out[250, 100]) == an.track_color(7)
    # the heatmap region away from box and banner equals the bare overlay
    np.testing.assert_array_equal(out[350:, 300:], an.heatmap_overlay(img, cam)[350:, 300:])


def test_jpeg_roundtrip():
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, 32:] = (0, 0, 255)
    data = an.encode_jpeg(img, 90)
    assert data[:2] == b"\xff\xd8"
    back = an.decode_jpeg(data)
    assert back.shape == img.shape
    assert np.abs(back.astype(int) - img).mean() < 4
    assert an.decode_jpeg(b"not a jpeg") is None

def test_trails_are_drawn_in_the_track_colour():
    from streamcam.publisher.annotate import annotate, track_color

    img = np.zeros((120, 160), np.uint8)
    out = annotate(img, None, [], heatmap=False, tracks=[{"id": 4, "trail": [[20, 100], [60, 100], [100, 100]]}])
    colour = np.array(track_color(4))
    row = out[100, 30:90].astype(int)
    assert (np.abs(row - colour).sum(axis=1) < 60).mean() > 0.8
    assert out[20, 30:90].max() == 0  # nothing drawn away from the trail
