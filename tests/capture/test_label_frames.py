"""IndexedFrames: frame i of a video (seeking and reading on), an image folder, a thermal stack."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from _label_fixtures import H, N, W, decode_all, frame_image, write_png_folder, write_thermal, write_video
from streamcam.capture.indexed import IndexedFrames
from streamcam.errors import SourceError


def test_video_random_access_matches_sequential_decoding(tmp_path):
    path = write_video(tmp_path / "clip.avi")
    ref = decode_all(path)
    with IndexedFrames(path) as frames:
        assert (frames.kind, frames.count, frames.width, frames.height) == ("video", N, W, H)
        for i in (5, 6, 7, 30, 2, N - 1, 0, 17):  # forwards (reads on), backwards and jumps (seeks)
            assert np.array_equal(frames.frame(i), ref[i]), i
        assert frames.jpeg(3)[:2] == b"\xff\xd8"
        with pytest.raises(IndexError, match=f"0 <= i < {N}"):
            frames.frame(N)


def test_image_folder_in_natural_order(tmp_path):
    with IndexedFrames(write_png_folder(tmp_path / "imgs")) as frames:
        assert (frames.kind, frames.count) == ("images", 12)
        assert np.array_equal(frames.frame(10), frame_image(10))  # img10 after img9, not after img1


def test_thermal_stack_keeps_counts_and_displays_8_bit(tmp_path):
    with IndexedFrames(write_thermal(tmp_path / "ir")) as frames:
        assert (frames.kind, frames.count) == ("thermal", 6)
        raw = frames.frame(2)
        assert raw.dtype == np.uint16 and raw[0, 0] == 3020 and raw[50, 70] == 6000
        shown = frames.display(2)
        assert shown.dtype == np.uint8 and shown[50, 70] == 255 and shown[0, 0] == 0
        assert frames.jpeg(2)[:2] == b"\xff\xd8"


def test_missing_source_and_mixed_sizes_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        IndexedFrames(tmp_path / "nope.mp4")
    folder = write_png_folder(tmp_path / "imgs", n=3)
    cv2.imwrite(str(folder / "img2.png"), np.zeros((10, 20), np.uint8))
    with IndexedFrames(folder) as frames, pytest.raises(SourceError, match="frame 2 is 20x10, frame 0 is 160x120"):
        frames.frame(2)
