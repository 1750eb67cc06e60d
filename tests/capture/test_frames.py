"""is_grey: one grey level per pixel, exactly (to collapse a frame) or within a few levels (to classify footage)."""

import numpy as np
import pytest

from streamcam.capture.frames import is_grey


def test_one_channel_is_grey():
    assert is_grey(np.zeros((4, 5), np.uint8)) and is_grey(np.zeros((4, 5, 1), np.uint8))


def test_three_equal_channels_are_grey_and_one_level_off_is_not_exactly():
    img = np.random.default_rng(0).integers(0, 256, (6, 7), dtype=np.uint8)
    bgr = np.dstack([img, img, img])
    assert is_grey(bgr)
    bgr[2, 3, 1] ^= 1
    assert not is_grey(bgr)
    assert is_grey(bgr, tolerance=1)


@pytest.mark.parametrize("channel", [1, 2])
def test_tolerance_bounds_each_channel_against_the_first(channel):
    img = np.full((3, 3, 3), 100, np.uint8)
    img[1, 1, channel] = 108
    assert is_grey(img, tolerance=8) and not is_grey(img, tolerance=7)
    img[1, 1, channel] = 92  # below the first channel: uint8 must not wrap
    assert is_grey(img, tolerance=8) and not is_grey(img, tolerance=7)


def test_colour_is_not_grey():
    img = np.zeros((3, 3, 3), np.uint8)
    img[..., 2] = 200
    assert not is_grey(img, tolerance=8)
