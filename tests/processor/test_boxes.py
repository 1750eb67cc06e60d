import numpy as np
import pytest

from streamcam.processor.boxes import boxes_from_cam


def _blob(shape, cx, cy, sx, sy, peak):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return peak * np.exp(-((xx - cx) ** 2 / (2 * sx ** 2) + (yy - cy) ** 2 / (2 * sy ** 2)))


def test_two_rectangles_give_two_exact_boxes():
    cam = np.zeros((48, 64), np.float32)
    cam[10:20, 5:9] = 1.0  # x 5..9, y 10..20
    cam[30:45, 40:50] = 0.6
    out = boxes_from_cam(cam, frame_size=(64, 48), threshold=0.2, min_area_frac=0)
    assert [b for b, _ in out] == [(5.0, 10.0, 9.0, 20.0), (40.0, 30.0, 50.0, 45.0)]
    assert [s for _, s in out] == pytest.approx([1.0, 0.6])


def test_boxes_scale_from_low_res_map_to_frame():
    cam = np.zeros((6, 8), np.float32)
    cam[2:4, 2:4] = 1.0
    ((box, score),) = boxes_from_cam(cam, frame_size=(80, 60), threshold=0.5, min_area_frac=0)
    # Bilinear (align_corners=False) upsampling by 10: cell i covers pixels 10i..10i+9
    # and its value sits at 10i+4.5; the ramps cross 0.5 exactly at the cell edges.
    assert box == (20.0, 20.0, 40.0, 40.0)
    ((box, _),) = boxes_from_cam(cam, frame_size=(80, 60), threshold=0.25, min_area_frac=0)
    assert box == (17.0, 17.0, 43.0, 43.0)  # 0.25 is crossed 2.5 px outside the edges
    assert score == pytest.approx(1.0)


def test_per_component_threshold_keeps_a_weak_person_tight():
    shape = (120, 160)
    cam = _blob(shape, 40, 60, 4, 10, 1.0) + _blob(shape, 120, 60, 4, 10, 0.3)
    glob = boxes_from_cam(cam, (160, 120), threshold=0.2, relative="global", min_area_frac=0)
    comp = boxes_from_cam(cam, (160, 120), threshold=0.2, relative="component", min_area_frac=0)
    assert len(comp) == 2
    # Relative to its own peak, the weak blob's box has the same size as the strong one's.
    (b0, s0), (b1, s1) = comp
    assert s0 > s1
    assert (b0[2] - b0[0], b0[3] - b0[1]) == (b1[2] - b1[0], b1[3] - b1[1])
    # The global rule makes the weak blob's box smaller (its flanks fall under 0.2 x max).
    gw = [b for b, _ in glob if b[0] > 80][0]
    assert gw[2] - gw[0] < b1[2] - b1[0]


def test_component_rule_splits_touching_people():
    shape = (100, 100)
    cam = _blob(shape, 40, 50, 5, 12, 1.0) + _blob(shape, 60, 50, 5, 12, 1.0)
    assert len(boxes_from_cam(cam, (100, 100), threshold=0.2, relative="global", min_area_frac=0)) == 1
    assert len(boxes_from_cam(cam, (100, 100), threshold=0.2, relative="component", min_area_frac=0)) == 1
    assert len(boxes_from_cam(cam, (100, 100), threshold=0.8, relative="component", min_area_frac=0)) == 2


def test_negative_or_flat_maps_give_no_boxes():
    assert boxes_from_cam(-np.ones((8, 8)), (8, 8)) == []
    assert boxes_from_cam(np.zeros((8, 8)), (8, 8)) == []


def test_small_components_are_dropped():
    cam = np.zeros((100, 100), np.float32)
    cam[10, 10] = 1.0
    cam[50:60, 50:60] = 0.9
    out = boxes_from_cam(cam, (100, 100), threshold=0.5, min_area_frac=0.001)
    assert [b for b, _ in out] == [(50.0, 50.0, 60.0, 60.0)]


@pytest.mark.parametrize("kwargs", [dict(threshold=0), dict(threshold=1.0), dict(relative="largest")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        boxes_from_cam(np.ones((4, 4)), (4, 4), **kwargs)


def test_shrink_box_pulls_in_by_margin_and_fraction_but_keeps_a_core():
    from streamcam.processor.boxes import shrink_box

    assert shrink_box((10, 20, 50, 100), 5, 0.0) == (15, 25, 45, 95)
    assert shrink_box((0, 0, 100, 200), 0, 0.1) == pytest.approx((10, 20, 90, 180))
    x0, y0, x1, y1 = shrink_box((0, 0, 10, 10), 50, 0.0)  # never collapses: 10 % of the box is kept
    assert x1 - x0 == pytest.approx(1.0) and y1 - y0 == pytest.approx(1.0)


def test_box_rule_symmetric_margins_are_the_shrink_box_rule():
    from streamcam.processor.boxes import BoxRule, shrink_box

    rule = BoxRule(sides=1.0, top=2.0, bottom=2.0, rel=0.05)
    assert rule.apply((10, 20, 90, 220), 8.0, 4.0) == pytest.approx(shrink_box((10, 20, 90, 220), 8.0, 0.05, 8.0))
    assert BoxRule().is_identity and not BoxRule(aspect=3.0).is_identity


def test_box_rule_top_bottom_margins_and_aspect():
    from streamcam.processor.boxes import BoxRule

    # blob 40 px wide, 120 px tall, cells 8 x 8 px: 2 cells off the top, 1 cell pushed out below
    x0, y0, x1, y1 = BoxRule(top=2.0, bottom=-1.0, aspect=4.0).apply((100, 50, 140, 170), 8.0, 8.0)
    assert (y0, y1) == (66.0, 178.0)  # 50 + 16, 170 + 8
    assert x1 - x0 == pytest.approx((178 - 66) / 4.0)  # width from the height, not from the blob
    assert (x0 + x1) / 2 == pytest.approx(120.0)  # centred on the blob
    # without an aspect the blob's width is kept, pulled in by the side margin
    assert BoxRule(sides=1.0, top=2.0, bottom=0.0).apply((100, 50, 140, 170), 8.0, 8.0) == (108, 66, 132, 170)
    # pulling in never collapses a box: 10 % of its height is kept
    y0, y1 = BoxRule(top=50.0, bottom=50.0, aspect=2.0).apply((0, 0, 10, 100), 8.0, 8.0)[1::2]
    assert y1 - y0 == pytest.approx(10.0)


def test_metadata_box_rule_round_trip_and_validation():
    from streamcam.errors import ModelError
    from streamcam.processor.boxes import BoxRule
    from streamcam.processor.model_meta import ModelMetadata

    base = dict(classes=("bg", "person"), input_width=32, input_height=32, input_channels=1, color_order="GRAY",
                mean=(0.5,), std=(0.25,), cam_weights=np.zeros((2, 4), np.float32),
                cam_bias=np.zeros(2, np.float32))
    old = ModelMetadata(**base, box_shrink_cells=1.5, box_shrink_cells_y=2.0)
    assert old.box_rule == BoxRule(1.5, 2.0, 2.0, 0.0, None)  # models calibrated before: symmetric rule
    new = ModelMetadata(**base, box_shrink_cells_y=3.0, box_shrink_cells_bottom=-1.0, box_aspect=2.5)
    assert ModelMetadata.from_json(new.to_json()).box_rule == BoxRule(0.0, 3.0, -1.0, 0.0, 2.5)
    with pytest.raises(ModelError, match="box_aspect"):
        ModelMetadata(**base, box_aspect=0.0)
    with pytest.raises(ModelError, match="box_shrink_cells_bottom"):
        ModelMetadata(**base, box_shrink_cells_bottom=-20.0)
    bc = {"width": [-2.0, 0.45, 0.88], "height": [-0.85, 0.11, 1.11]}
    assert ModelMetadata.from_json(ModelMetadata(**base, box_correction=bc).to_json()).box_correction == bc
    for bad in ({"width": [0, 1, 0]}, {"width": [0, 1], "height": [0, 0, 1]},
                {"width": [0, 1, float("nan")], "height": [0, 0, 1]}):
        with pytest.raises(ModelError, match="box_correction"):
            ModelMetadata(**base, box_correction=bad)


def _blobs(rng, h, w, n):
    yy, xx = np.mgrid[0:h, 0:w]
    cam = rng.normal(0, 0.05, (h, w))
    for _ in range(n):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(2, h / 5))
        cam += rng.uniform(0.2, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return cam.astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_flood_fill_growth_gives_the_boxes_of_the_labelling_reference(seed):
    """The fast path (flood fill from each seed) and the reference (label the whole map per seed)
    agree exactly on random multi-blob maps of several sizes, thresholds and floors."""
    rng = np.random.default_rng(seed)
    h, w = [(60, 80), (30, 40), (240, 320), (7, 5)][seed % 4]
    cam = _blobs(rng, h, w, 1 + seed % 6)
    size = [(640, 480), (320, 240), (1280, 720)][seed % 3]
    for threshold in (0.15, 0.3, 0.6):
        for floor in ("zero", "ivr"):
            for relative in ("component", "global"):
                kw = dict(threshold=threshold, floor=floor, relative=relative, min_area_frac=0.0)
                assert boxes_from_cam(cam, size, **kw) == boxes_from_cam(cam, size, grow="components", **kw)


def test_grow_region_leaves_its_scratch_zeroed_and_matches_the_reference():
    from streamcam.processor.boxes import grow_region, grow_region_reference

    rng = np.random.default_rng(5)
    cam = _blobs(rng, 60, 80, 5)
    scratch = np.zeros((62, 82), np.uint8)
    for py, px in zip(*np.nonzero(cam >= 0.3 * cam.max())):
        assert grow_region(cam, 0.3 * float(cam.max()), px, py, scratch) == \
            grow_region_reference(cam, 0.3 * float(cam.max()), px, py)
        assert not scratch[1:-1, 1:-1].any()  # OpenCV sets the 1-pixel frame itself
    with pytest.raises(ValueError, match="grow 'flood' or 'components'"):
        boxes_from_cam(cam, (80, 60), grow="magic")
