import numpy as np
import pytest

from streamcam.processor.boxes import boxes_from_cam
from streamcam.stabilizer.peaks import find_peaks

FRAME = (640, 480)
YY, XX = np.mgrid[0:60, 0:80]


def blob(cx, cy, sx=3.0, sy=8.0, a=1.0):
    return a * np.exp(-((XX - cx) ** 2 / (2 * sx ** 2) + (YY - cy) ** 2 / (2 * sy ** 2)))


def norm(m):
    return (m / m.max()).astype(np.float32)


def test_two_nearby_blobs_give_two_peaks_and_disjoint_boxes():
    cam = norm(blob(20, 30) + 0.8 * blob(32, 30))
    # The component rule sees one merged region here; the peaks split it.
    assert len(boxes_from_cam(cam, FRAME, 0.2)) == 1
    peaks = find_peaks(cam, FRAME)
    assert len(peaks) == 2
    a, b = peaks
    assert a.value == pytest.approx(1.0) and b.value == pytest.approx(0.8, abs=0.02)
    assert a.x == pytest.approx((20 + 0.5) * 8, abs=2) and b.x == pytest.approx((32 + 0.5) * 8, abs=2)
    assert a.y == pytest.approx((30 + 0.5) * 8, abs=1)
    assert a.box[2] <= b.box[0]  # disjoint: a left of b
    for p in peaks:
        assert p.box[0] < p.x < p.box[2] and p.box[1] < p.y < p.box[3]


def test_single_blob_box_agrees_with_the_component_rule():
    cam = norm(blob(40.3, 25.0))
    (p,) = find_peaks(cam, FRAME, box_threshold=0.2)
    ((box, _),) = boxes_from_cam(cam, FRAME, 0.2)
    assert np.allclose(p.box, box, atol=2.0)  # sub-pixel edges vs. whole pixels of the upsampled map
    assert p.x == pytest.approx((40.3 + 0.5) * 8, abs=1.5)


def test_nms_suppresses_a_shoulder():
    cam = norm(blob(20, 30) + 0.5 * blob(27, 30, 2, 4))  # a 4 % bump at x=26
    assert len(find_peaks(cam, FRAME, nms_radius=0, min_prominence=0.0)) == 2  # there is a second maximum
    (p,) = find_peaks(cam, FRAME)
    # The shoulder's pixels belong to the main peak's box.
    assert p.box[2] > (26 + 0.5) * 8


def test_peaks_within_the_nms_radius_merge():
    cam = norm(blob(20, 30, 1.0, 1.0) + 0.9 * blob(23, 30, 1.0, 1.0))
    assert len(find_peaks(cam, FRAME, nms_radius=0)) == 2  # prominent enough
    assert len(find_peaks(cam, FRAME, nms_radius=2)) == 2  # 3 cells apart
    assert len(find_peaks(cam, FRAME, nms_radius=3)) == 1


@pytest.mark.parametrize("cam", [np.zeros((60, 80)), np.full((60, 80), 0.7), np.full((60, 80), 0.1) + 0.1 * (XX > 40)])
def test_empty_or_flat_maps_have_no_peaks(cam):
    assert find_peaks(cam.astype(np.float32), FRAME) == []


def test_min_value_and_max_peaks():
    cam = norm(blob(10, 10, 2, 2) + 0.5 * blob(40, 30, 2, 2) + 0.2 * blob(70, 50, 2, 2))
    assert len(find_peaks(cam, FRAME, min_value=0.3)) == 2
    assert len(find_peaks(cam, FRAME, min_value=0.1)) == 3
    assert [p.value for p in find_peaks(cam, FRAME, min_value=0.1, max_peaks=1)] == [pytest.approx(1.0)]


def test_boxes_are_in_frame_pixels_and_clipped():
    cam = norm(blob(0, 0, 3, 3))
    (p,) = find_peaks(cam, FRAME)
    assert p.box[0] == 0.0 and p.box[1] == 0.0 and 0 < p.box[2] < 640 and 0 < p.box[3] < 480
