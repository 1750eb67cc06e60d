"""The fast preprocessing (per-plane lookup tables) against its slow, obvious reference: bit-equal."""

from __future__ import annotations

import numpy as np
import pytest

from streamcam.processor.model_meta import ModelMetadata
from streamcam.processor.preprocess import preprocess, preprocess_reference


def _meta(channels: int, order: str, resize: str, size: tuple[int, int]) -> ModelMetadata:
    mean = (0.485, 0.456, 0.406)[:channels] if channels == 3 else (0.5,)
    std = (0.229, 0.224, 0.225)[:channels] if channels == 3 else (0.25,)
    return ModelMetadata(classes=("bg", "person"), input_width=size[0], input_height=size[1],
                         input_channels=channels, color_order=order, mean=mean, std=std,
                         cam_weights=np.zeros((2, 4), np.float32), cam_bias=np.zeros(2, np.float32),
                         resize=resize)


MODELS = [(3, "RGB"), (3, "BGR"), (1, "GRAY")]
FRAMES = [("BGR8", (576, 768, 3)), ("GRAY8", (480, 640)), ("GRAY8", (240, 320, 1)), ("BGR8", (37, 53, 3))]
SIZES = [(768, 576), (320, 240), (96, 128)]


@pytest.mark.parametrize("channels,order", MODELS)
@pytest.mark.parametrize("pixel_format,shape", FRAMES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_fast_preprocess_is_bit_equal_to_the_reference(channels, order, pixel_format, shape, size, resize):
    meta = _meta(channels, order, resize, size)
    image = np.random.default_rng(hash((shape, size)) % 2**32).integers(0, 256, shape, dtype=np.uint8)
    image.flags.writeable = False  # a read-only wire buffer: neither path may write into it
    got, got_geom = preprocess(image, pixel_format, meta)
    want, want_geom = preprocess_reference(image, pixel_format, meta)
    assert got.dtype == want.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == want.shape == (1, channels, size[1], size[0])
    assert got_geom == want_geom
    np.testing.assert_array_equal(got, want)


def test_channel_order_is_the_models():
    """A pure-blue BGR frame: an RGB model sees it in its last channel, a BGR model in its first."""
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255
    for order, bright in (("RGB", 2), ("BGR", 0)):
        x, _ = preprocess(image, "BGR8", _meta(3, order, "stretch", (8, 8)))
        assert int(np.argmax(x[0].mean(axis=(1, 2)))) == bright


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((0, 4), np.uint8), np.zeros((4, 4, 2), np.uint8)])
def test_both_paths_reject_what_is_not_a_frame(bad):
    meta = _meta(3, "RGB", "stretch", (8, 8))
    for fn in (preprocess, preprocess_reference):
        with pytest.raises(ValueError, match="expected a non-empty uint8"):
            fn(bad, "BGR8", meta)
