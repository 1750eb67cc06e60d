
import numpy as np
import pytest

from streamcam.datasets.synthetic import SceneFrame, SyntheticIRScene


@pytest.fixture(scope="module")
def scene():
    return SyntheticIRScene(seed=3)


def test_frame_types_and_shapes(scene):
    f = scene.frame(10)
    assert isinstance(f, SceneFrame) and f.index == 10
    assert f.raw.dtype == np.uint16 and f.raw.shape == (480, 640)
    assert f.image.dtype == np.uint8 and f.image.shape == (480, 640)
    assert f.raw.max() < 2 ** 14  # a 14-bit core
    assert {o.label for o in f.objects} <= {"person", "car", "lamp", "animal"}
    for o in f.objects:
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480


def test_random_access_is_deterministic(scene):
    a = scene.frame(500)
    scene.frame(3)
    b = SyntheticIRScene(seed=3).frame(500)
    assert np.array_equal(a.raw, b.raw) and a.objects == b.objects
    c = SyntheticIRScene(seed=4).frame(500)
    assert not np.array_equal(a.raw, c.raw)


def test_temporal_noise_changes_between_frames_fixed_pattern_does_not(scene):
    a, b = scene.frame(1000).raw.astype(np.float32), scene.frame(1001).raw.astype(np.float32)
    d = a - b
    assert 15 < np.std(d[:100]) < 60  # sky: noise only (sqrt(2) * 20 counts)
    # Column offsets are fixed: the column means of a sky patch agree frame to frame.
    ca, cb = a[:100].mean(0), b[:100].mean(0)
    assert np.corrcoef(ca - ca.mean(), cb - cb.mean())[0, 1] > 0.8


def test_people_have_perspective_and_move(scene):
    heights, ys = [], []
    for i in range(0, 3000, 50):
        for p in scene.frame(i).persons:
            x0, y0, x1, y1 = p.box
            if y1 < 478 and y0 > 0:  # fully visible
                heights.append(y1 - y0)
                ys.append(y1)
    heights, ys = np.array(heights), np.array(ys)
    assert len(heights) > 50
    assert heights.min() >= 18 and heights.max() <= 190
    assert np.corrcoef(heights, ys)[0, 1] > 0.95  # lower feet -> taller person
    # Persons are taller than wide; they walk (their boxes move between frames).
    f0, f1 = scene.frame(40), scene.frame(70)
    ids0 = {p.id: p.box for p in f0.persons}
    moved = [np.abs(np.subtract(ids0[p.id], p.box)).max() for p in f1.persons if p.id in ids0]
    assert moved and max(moved) > 1


def test_persons_are_warmer_than_their_surroundings(scene):
    f = scene.frame(200)
    assert f.persons
    for p in f.persons:
        x0, y0, x1, y1 = (int(v) for v in p.box)
        inside = np.percentile(f.raw[y0:y1, x0:x1], 90)
        ring = f.raw[max(y0 - 10, 0):y1 + 10, max(x0 - 15, 0):x1 + 15]
        assert inside > np.median(ring) + 300


def test_people_zero_has_no_persons_but_same_background():
    busy, empty = SyntheticIRScene(seed=5), SyntheticIRScene(seed=5, people=0)
    for i in (0, 300, 900):
        assert empty.frame(i).persons == ()
    assert any(busy.frame(i).persons for i in (0, 300, 900))
    # Same sky (no person there): only the confusers/people differ.
    assert np.array_equal(busy.frame(7).raw[:60], empty.frame(7).raw[:60])


def test_confusers_appear():
    labels = set()
    for seed in range(6):
        s = SyntheticIRScene(seed=seed, confusers=4)
        for i in range(0, 1500, 100):
            labels |= {o.label for o in s.frame(i).objects}
    assert {"car", "lamp", "animal"} <= labels


@pytest.mark.parametrize("kwargs", [dict(width=10), dict(people=-1), dict(presence=0), dict(confuser_kinds=("tree",))])
def test_bad_knobs(kwargs):
    with pytest.raises(ValueError):
        SyntheticIRScene(**kwargs)
