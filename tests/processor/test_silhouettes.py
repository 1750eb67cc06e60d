"""Silhouettes against a plate of many moments: boxes on fixtures dropped, boxes on one person snapped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from streamcam.errors import ConfigError
from streamcam.processor.peak_boxes import PeakBoxRule
from streamcam.processor.silhouettes import (FIXTURE_SHARE, Silhouettes, camera_groups, camera_groups_reference,
                                             foreground_share, snap_reference, still_plates)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("seed", range(4))
def test_snap_equals_the_flood_fill_reference(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((50, 70), np.uint8)
    for _ in range(6):  # a few blobs of any size, some touching
        x, y, w, h = rng.integers(0, 60), rng.integers(0, 40), rng.integers(2, 20), rng.integers(2, 30)
        mask[y:y + h, x:x + w] = 1
    mask[rng.random(mask.shape) < 0.03] = 1  # speckle
    s = Silhouettes(mask)
    for _ in range(30):
        x0, y0 = rng.uniform(-5, 65), rng.uniform(-5, 45)
        box = (x0, y0, x0 + rng.uniform(1, 25), y0 + rng.uniform(1, 35))
        assert s.snap(box) == snap_reference(mask, box)


def test_a_box_on_a_fixture_is_dropped_and_a_box_beside_its_person_takes_the_persons_bounds():
    mask = np.zeros((200, 300), np.uint8)
    mask[40:140, 100:140] = 1    # one walker, 100 x 40
    mask[20:180, 200:290] = 1    # a group walking close: one blob far wider than a person
    s = Silhouettes(mask)
    assert s.on_fixture((10, 10, 50, 110))                       # nothing moved there
    assert foreground_share(mask, (100, 40, 140, 140)) == 1.0
    assert s.snap((115, 50, 155, 150)) == (100.0, 40.0, 140.0, 140.0)  # a third of a width beside, too low
    assert s.snap((205, 30, 245, 130)) == (205.0, 30.0, 245.0, 130.0)  # the group's blob: the rule's box stays
    out = s.refine([((112, 45, 152, 145), 0.9), ((95, 35, 135, 135), 0.8), ((10, 10, 50, 110), 0.7)], nms=0.3)
    assert out == [((100.0, 40.0, 140.0, 140.0), 0.9)]  # the second peak on the walker is the walker again
    assert FIXTURE_SHARE == 0.25


def test_a_stronger_peak_on_a_fixture_does_not_suppress_the_person_beside_it():
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.1, size=(0.5, 0.0), centre=0.0, aspect=1.25)
    cam = np.full((10, 16), -3.0, np.float32)
    cam[5, 6], cam[5, 8] = 5.0, 2.0  # the fixture's peak is the stronger, its box overlaps the person's
    size = (160, 100)
    assert len(rule.boxes(cam, size)) == 1  # without the plate the fixture wins the competition
    mask = np.zeros((100, 160), np.uint8)
    mask[30:80, 78:98] = 1  # the person, under the weaker peak (x = 85)
    (box, v), = rule.boxes(cam, size, silhouettes=Silhouettes(mask))
    assert v == 2.0 and box == (78.0, 30.0, 98.0, 80.0)


def _camera(seed: int, person_x: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = (rng.random((8, 8)) * 200).astype(np.uint8).repeat(32, 0).repeat(32, 1)  # the camera's scene
    img = img + (np.random.default_rng(person_x or 0).integers(0, 6, img.shape)).astype(np.uint8)  # sensor noise
    if person_x is not None:
        img[40:100, person_x:person_x + 16] = 250  # a walker, 60 x 16 px
    return img


def test_stills_are_grouped_by_camera_and_each_gets_a_plate_of_its_cameras_other_moments():
    a = [_camera(1, x) for x in (0, 60, 120, 180)]
    b = [_camera(2, x) for x in (10, 100, 200)]
    images = [a[0], b[0], a[1], a[2], b[1], a[3], b[2]]
    groups = camera_groups(images)
    assert groups == camera_groups_reference(images) == [0, 1, 0, 0, 1, 0, 1]
    plates = still_plates(images, groups)
    assert plates[1] is None and plates[4] is None  # camera b has only 2 other moments: no plate
    plate = plates[0]  # camera a without its first still: the walker is elsewhere in every other
    assert np.abs(plate[40:100, 0:16].astype(int) - _camera(1, None)[40:100, 0:16]).max() <= 6
    from streamcam.processor.background import foreground_mask

    fg = foreground_mask(images[0], plate)
    assert fg[45:95, 4:12].all() and fg[:, 40:].sum() == 0  # the walker alone
    with pytest.raises(ConfigError, match="camera indices"):
        still_plates(images, groups[:-1])


def test_the_detector_keeps_a_plate_of_many_moments_per_stream_and_takes_a_given_one():
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine

    det = Detector(create_engine(str(ROOT / "engines" / "person-rgb.onnx")), min_score=0.0)
    assert not det.use_silhouettes and det.silhouettes(_camera(1, 0)) is None
    det.use_silhouettes = True
    clock = iter(np.arange(0.0, 1000.0, 5.0))  # a frame every 5 s: every second one is a sample
    det.clock = lambda: next(clock)
    for k in range(16):
        det.observe(_camera(1, 20 * (k % 9)), "cam")
        assert det.silhouettes(_camera(1, 0), "cam") is None  # 9 samples 10 s apart make it: 80 s in
    det.observe(_camera(1, 40), "cam")
    s = det.silhouettes(_camera(1, 40), "cam")
    assert s is not None and s.mask[50:90, 44:52].all() and s.mask[:, 120:].sum() == 0
    det2 = Detector(create_engine(str(ROOT / "engines" / "person-rgb.onnx")), min_score=0.0)
    det2.set_plate("still", _camera(1, None))
    assert det2.use_silhouettes
    assert det2.silhouettes(_camera(1, 60), "still").share((60, 40, 76, 100)) == 1.0
    r = det2.detect(_camera(1, 60), "GRAY8", stream="still")
    assert r.timings_ms["background"] >= 0.0
    cam = np.full((16, 16), -5.0, np.float32)
    cam[12, 12] = 8.0  # a strong peak where nothing moved: the lower right of the frame
    s = det2.silhouettes(_camera(1, 60), "still")
    assert len(det2.boxes(cam, 0.9, "person", (256, 256))) == 1
    assert det2.boxes(cam, 0.9, "person", (256, 256), silhouettes=s) == []


def test_processor_silhouettes_turns_it_on():
    from streamcam.config import load_config
    from streamcam.processor.stage import build_detector

    cfg = load_config(str(ROOT / "configs" / "thermal.yaml"))
    assert cfg.processor.silhouettes  # the shipped thermal camera uses it (docs/benchmarks.md, "Stop 32")
    det = build_detector(cfg)
    try:
        assert det.use_silhouettes
    finally:
        det.engine.close()
    cfg = load_config(str(ROOT / "configs" / "camera.yaml"))
    assert not cfg.processor.silhouettes


DATA = Path(os.environ.get("STREAMCAM_THERMAL_DATA", ROOT.parent / "shared" / "data" / "thermal" / "LLVIP-sample"))


@pytest.mark.skipif(not (DATA / "ir").is_dir(), reason="the LLVIP sample is not here (../shared/data/thermal)")
def test_on_real_lwir_stills_the_parked_bicycle_goes_and_the_boxes_meet_the_targets():
    """The shipped thermal model on the LLVIP evaluation frames, each with a plate of its camera's
    other frames: the parked bicycle at the top of scene 19 gets no box, and the issue's targets
    (localization 0.6, precision 0.7) hold, where the same model without the plate misses both."""
    import dataclasses

    from streamcam.config import load_config
    from streamcam.evaluation.frames import run_frames_eval

    labels = ROOT / "tests" / "data" / "llvip-sample-labels.json"
    cfg = load_config(str(ROOT / "configs" / "thermal.yaml"))
    on = run_frames_eval(cfg, DATA, labels, split="evaluation")
    off = run_frames_eval(dataclasses.replace(cfg, processor=dataclasses.replace(cfg.processor, silhouettes=False)),
                          DATA, labels, split="evaluation")
    assert on["silhouettes"] and "silhouettes" not in off
    bicycle = [b for f in on["per_frame"] for b in f["pred"] if b[1] < 5 and 900 < b[0] < 1000]
    assert bicycle == [] and len([b for f in off["per_frame"] for b in f["pred"] if b[1] < 5 and 900 < b[0] < 1000]) == 4
    assert on["localization_accuracy"] >= 0.6 and on["box_precision"] >= 0.7
    assert on["box_precision"] > off["box_precision"] and on["localization_accuracy"] > off["localization_accuracy"]
    assert json.loads((ROOT / "docs" / "quality" / "thermal-real-lwir.json").read_text())["silhouettes"]


def test_a_thermal_cores_gain_moving_the_whole_picture_is_not_foreground():
    from streamcam.processor.background import foreground_mask

    plate = _camera(3, None)
    frame = np.clip(plate.astype(int) + 30, 0, 255).astype(np.uint8)  # the AGC lifted everything
    frame[40:100, 60:76] = 255
    assert foreground_mask(frame, plate).mean() > 0.9  # without levelling, the whole frame "moved"
    fg = foreground_mask(frame, plate, level=True)
    ys, xs = np.nonzero(fg)
    assert np.abs(np.array([ys.min(), ys.max(), xs.min(), xs.max()]) - [40, 99, 60, 75]).max() <= 3  # the blur's edge


def test_a_seeded_plate_serves_until_the_live_samples_replace_it():
    from streamcam.processor.background import RunningPlate

    seed = _camera(3, None)
    plate = RunningPlate.given(seed, frozen=False, interval_s=1.0, samples=15, min_samples=9)
    assert plate.foreground(_camera(3, 100)).sum() > 0  # ready at once, before any sample
    moved = np.roll(seed, 32, axis=1)  # the camera was turned: the seed is wrong from here on
    for t in range(8):
        plate.observe(moved, float(t))
        assert np.array_equal(plate.plate, seed)
    plate.observe(moved, 8.0)  # the ninth sample: the live median takes over at once
    assert np.array_equal(plate.plate, moved)
    frozen = RunningPlate.given(seed)
    for t in range(20):
        frozen.observe(moved, float(t))
    assert np.array_equal(frozen.plate, seed)


def test_a_streams_plate_is_checked_before_start_and_seeds_its_stream(tmp_path):
    import cv2

    from streamcam.config import load_config
    from streamcam.processor.stage import build_detector

    text = (ROOT / "configs" / "thermal.yaml").read_text()

    def config(plate, silhouettes=True):
        path = tmp_path / "thermal.yaml"
        path.write_text(text.replace('      fps: 25\n', f'      fps: 25\n    plate: "{plate}"\n', 1))
        return load_config(str(path), {"processor.silhouettes": silhouettes}, base_dir=str(ROOT))

    with pytest.raises(ConfigError, match=r"streams\[0\].plate: .*not found"):
        config(tmp_path / "none.png")
    cv2.imwrite(str(tmp_path / "plate.png"), _camera(3, None))
    with pytest.raises(ConfigError, match=r"streams\[0\].plate: used only by processor.silhouettes"):
        config(tmp_path / "plate.png", silhouettes=False)
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(ConfigError, match="not a readable image"):
        build_detector(config(tmp_path / "bad.png"))
    cfg = config(tmp_path / "plate.png")
    assert cfg.streams[0].plate == str(tmp_path / "plate.png")
    det = build_detector(cfg)
    try:
        sid = cfg.streams[0].id
        s = det.silhouettes(_camera(3, 100), sid)  # the first frame already has its silhouettes
        assert s is not None and s.mask[45:95, 104:112].all() and s.mask[:, :90].sum() == 0
        assert det.silhouettes(_camera(3, 100), "another") is None  # other streams warm up live
    finally:
        det.engine.close()


@pytest.mark.skipif(not (DATA / "ir").is_dir(), reason="the LLVIP sample is not here (../shared/data/thermal)")
def test_streamcam_detect_with_a_plate_made_by_streamcam_plate_drops_the_parked_bicycle(tmp_path):
    """The user's path, in real subprocesses: `streamcam plate` on a camera's other moments, the plate
    named under the stream, `streamcam detect` on a new moment: no box on the bicycle at the top of
    scene 19, the walkers still boxed; without the plate (a file too short for a live one) the
    bicycle's box is there."""
    import shutil
    import subprocess
    import sys

    others, shot = tmp_path / "others", tmp_path / "shot"
    others.mkdir(), shot.mkdir()
    for name in ("190001", "190002", "190004", "190005", "190006"):
        shutil.copy(DATA / "ir" / f"{name}.jpg", others / f"{name}.jpg")
    shutil.copy(DATA / "ir" / "190003.jpg", shot / "190003.jpg")
    run = lambda *a: subprocess.run([sys.executable, "-m", "streamcam", *a], cwd=ROOT, capture_output=True, text=True,
                                    timeout=300)
    p = run("plate", str(others), "--out", str(tmp_path / "plate.png"))
    assert p.returncode == 0, p.stderr
    text = (ROOT / "configs" / "thermal.yaml").read_text()
    cfg = tmp_path / "thermal.yaml"
    cfg.write_text(text.replace("      fps: 25\n", f'      fps: 25\n    plate: "{tmp_path / "plate.png"}"\n', 1)
                   .replace("model: engines/", f"model: {ROOT}/engines/", 1))

    def boxes(config):
        out = tmp_path / "d.jsonl"
        p = run("detect", str(shot), "--config", str(config), "--out", str(out), "--quiet")
        assert p.returncode == 0, p.stderr
        (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
        return [d["box"] for d in rec["detections"]]

    def on_bicycle(b):
        return b[1] < 5 and 900 < b[0] < 1000

    with_plate = boxes(cfg)
    assert with_plate and not any(on_bicycle(b) for b in with_plate)
    assert len(with_plate) >= 4  # the five walkers of 190003 (docs/quality/thermal-real-lwir.json: five boxes)
    assert any(on_bicycle(b) for b in boxes(ROOT / "configs" / "thermal.yaml"))


def test_the_live_plate_says_once_when_silhouettes_start(caplog):
    import logging

    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine

    det = Detector(create_engine(str(ROOT / "engines" / "person-rgb.onnx")), min_score=0.0)
    det.use_silhouettes = True
    clock = iter(np.arange(0.0, 1000.0, 10.0))
    det.clock = lambda: next(clock)
    with caplog.at_level(logging.INFO, logger="streamcam.processor.detector"):
        for k in range(12):
            det.observe(_camera(1, 20 * k), "cam")
            det.silhouettes(_camera(1, 20 * k), "cam")
    said = [r.getMessage() for r in caplog.records if "silhouettes on" in r.getMessage()]
    assert said == ["stream cam: silhouettes on, against a plate of 9 samples"]


def test_the_foreground_is_made_only_when_a_box_asks_and_a_missing_one_leaves_boxes_alone():
    calls = []

    def make():
        calls.append(1)
        m = np.zeros((100, 100), np.uint8)
        m[20:80, 40:60] = 1
        return m

    s = Silhouettes.lazy(make)
    assert calls == []  # a frame without a box never pays for its foreground
    assert s.snap((35, 25, 55, 85)) == (40.0, 20.0, 60.0, 80.0) and s.on_fixture((0, 0, 20, 20))
    assert calls == [1]  # made once
    blind = Silhouettes.lazy(lambda: None)  # a plate of another size: nothing to say
    assert not blind.on_fixture((0, 0, 20, 20)) and blind.snap((1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)
    assert blind.refine([((1, 2, 3, 4), 0.9)], nms=0.3) == [((1.0, 2.0, 3.0, 4.0), 0.9)]


def test_a_large_folders_plates_take_at_most_a_live_plates_worth_of_other_stills():
    images = [_camera(1, 4 * k) for k in range(8)]
    groups = camera_groups(images)
    capped = still_plates(images, groups, max_frames=3)
    full = still_plates(images, groups)
    from streamcam.processor.background import empty_plate

    others = [images[j] for j in range(1, 8)]
    assert np.array_equal(full[0], empty_plate(others))
    assert np.array_equal(capped[0], empty_plate([others[0], others[3], others[6]]))  # evenly picked
