"""Zones, masks and lines: the vectorised point-in-polygon against the obvious one, and config errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamcam.config import config_from_dict
from streamcam.errors import ConfigError
from streamcam.events.zones import (LineConfig, ZoneConfig, anchors, check_polygon, frame_anchors, inside,
                                    inside_reference, to_pixels)

SQUARE = ((0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0))
CONCAVE = ((10, 10), (200, 10), (200, 150), (120, 150), (120, 60), (60, 60), (60, 150), (10, 150))


def test_the_anchor_is_the_bottom_centre():
    assert anchors(np.array([[10, 20, 30, 100]])).tolist() == [[20.0, 100.0]]


def test_a_tall_box_leaning_over_a_zone_is_in_by_its_feet():
    zone = to_pixels(SQUARE, "fraction", 640, 480)  # x 160-480, y 240-480
    head_in_feet_out = [100, 250, 150, 470]  # box overlaps the zone, feet at x=125: outside
    feet_in = [300, 100, 340, 300]  # box mostly above the zone, feet at (320, 300): inside
    assert inside(anchors(np.array([head_in_feet_out, feet_in])), zone).tolist() == [False, True]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 220), st.floats(0, 170)), min_size=1, max_size=40))
def test_vectorised_inside_matches_the_reference(points):
    poly = np.array(CONCAVE, float)
    got = inside(np.array(points), poly)
    want = [inside_reference(x, y, CONCAVE) for x, y in points]
    assert got.tolist() == want


def test_points_on_edges_follow_the_top_left_rule_and_anchors_are_clamped_into_the_frame():
    # On a left or top edge inside, on a right or bottom edge outside (as rasterisers fill
    # pixels): two zones sharing an edge never both hold a point.
    zone = to_pixels(SQUARE, "fraction", 640, 480)  # x 160-480, y 240-480
    pts = np.array([[160, 300], [320, 240], [480, 300], [320, 480]])
    assert inside(pts, zone).tolist() == [True, True, False, False]
    assert [inside_reference(x, y, zone.tolist()) for x, y in pts] == [True, True, False, False]
    left, right = to_pixels(((0, 0), (0.5, 0), (0.5, 1), (0, 1)), "fraction", 640, 480), to_pixels(
        ((0.5, 0), (1, 0), (1, 1), (0.5, 1)), "fraction", 640, 480)
    on_shared = np.array([[320, 100], [320, 0]])
    assert (inside(on_shared, left) ^ inside(on_shared, right)).all()
    # A box cut by the frame's bottom (y1 = 480) stands on the last row: inside a zone drawn to
    # the bottom; one beyond the right border stands on the last column.
    a = frame_anchors(np.array([[300, 400, 340, 480], [620, 300, 700, 470], [-40, 300, 20, 520]]), 640, 480)
    assert (a[:, 1] < 480).all() and a[1, 0] < 640 and a[2].tolist() == [0.0, np.nextafter(480.0, 0)]
    assert inside(a[:1], zone).tolist() == [True]


def test_concave_zone_excludes_its_notch():
    poly = np.array(CONCAVE, float)
    assert inside(np.array([[90, 100], [30, 100], [160, 100], [90, 30]]), poly).tolist() == [False, True, True, True]


@pytest.mark.parametrize("zone,why", [
    ({"name": "yard", "points": [[0, 0], [1, 1]]}, "at least 3"),
    ({"name": "yard", "points": [[0, 0], [1, 1], [0, 1], [1, 0]]}, "cross"),
    ({"name": "yard", "points": [[0, 0], [0.5, 0.5], [1, 1]]}, "no area"),
    ({"name": "yard", "points": [[0, 0], [2, 0], [0, 1]]}, "units fraction"),
    ({"name": "yard", "points": [[0, 0], [1, 0], [0]]}, "points[2]"),
    ({"name": "ya rd", "points": list(map(list, SQUARE))}, "name"),
    ({"name": "yard", "points": list(map(list, SQUARE)), "min_frames": 0}, "min_frames"),
    ({"name": "yard", "points": "everywhere"}, "points: expected a list"),
])
def test_bad_zones_are_rejected_naming_the_key(zone, why):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"streams": [{"id": "cam", "zones": [{"name": "ok", "points": list(map(list, SQUARE))}, zone]}]})
    assert "streams[0].zones[1]" in str(err.value) and why in str(err.value)


def test_duplicate_zone_names_and_bad_masks_and_lines_are_rejected():
    sq = list(map(list, SQUARE))
    with pytest.raises(ConfigError, match=r"streams\[0\]\.zones\[1\]\.name: duplicate"):
        config_from_dict({"streams": [{"id": "c", "zones": [{"name": "a", "points": sq}, {"name": "a", "points": sq}]}]})
    with pytest.raises(ConfigError, match=r"streams\[0\]\.masks\[0\]: points: expected at least 3"):
        config_from_dict({"streams": [{"id": "c", "masks": [{"points": [[0, 0]]}]}]})
    with pytest.raises(ConfigError, match=r"streams\[0\]\.lines\[0\]: points: expected 2"):
        config_from_dict({"streams": [{"id": "c", "lines": [{"name": "door", "points": sq}]}]})


def test_pixel_zones_keep_pixels():
    z = ZoneConfig("door", ((100, 200), (300, 200), (300, 400)), units="px")
    assert to_pixels(z.points, z.units, 640, 480).tolist() == [[100, 200], [300, 200], [300, 400]]
    with pytest.raises(ValueError, match="pixel coordinates must be >= 0"):
        check_polygon([[-1, 0], [10, 0], [10, 10]], "px")
    with pytest.raises(ValueError, match="same point"):
        LineConfig("l", ((0.5, 0.5), (0.5, 0.5)))


def test_inside_many_matches_inside_per_polygon():
    from streamcam.events.zones import MaskConfig, geometry, inside_many

    zones = (ZoneConfig("a", SQUARE), ZoneConfig("b", tuple((x / 220, y / 170) for x, y in CONCAVE)))
    masks = (MaskConfig(((0.0, 0.0), (0.3, 0.0), (0.0, 0.3))),)
    geo = geometry(zones, masks, (), 640, 480)
    pts = np.random.default_rng(0).uniform([0, 0], [640, 480], (200, 2))
    pts = np.concatenate([pts, [[320, 480], [160, 240], [0, 72], [96, 0]]])  # on the zones' and mask's edges
    want = np.stack([inside(pts, p) for p in geo.zones + geo.masks])
    assert (inside_many(pts, geo.all_edges, geo.starts) == want).all() and want.any(axis=1).all()


@settings(max_examples=60, deadline=None)
@given(st.floats(-50, 270), st.floats(-50, 220))
def test_distance_to_edges_is_the_distance_to_the_nearest_edge(x, y):
    from streamcam.events.zones import distance_to_edges, edges

    poly = np.array(CONCAVE, float)
    segments = list(zip(*(e.tolist() for e in edges(poly))))
    # the obvious way: the nearest of many points along every edge
    u = np.linspace(0, 1, 2001)[:, None]
    pts = np.concatenate([(1 - u) * poly[i] + u * poly[(i + 1) % len(poly)] for i in range(len(poly))])
    assert distance_to_edges(x, y, segments) == pytest.approx(np.hypot(*(pts - (x, y)).T).min(), abs=0.1)
