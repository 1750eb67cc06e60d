"""The lwir style of the synthetic scene (real street LWIR) and the polarity knob; classic stays as it was."""

import numpy as np
import pytest

from streamcam.datasets import synthetic_lwir as lwir
from streamcam.datasets.synthetic import SyntheticIRScene


@pytest.mark.parametrize("style", ["classic", "lwir"])
def test_black_hot_is_the_white_hot_frame_inverted(style):
    kw = dict(width=320, height=256, seed=11, style=style)
    white, black = SyntheticIRScene(polarity="white", **kw), SyntheticIRScene(polarity="black", **kw)
    for i in (0, 150):
        a, b = white.frame(i), black.frame(i)
        assert np.array_equal(a.raw, b.raw) and a.objects == b.objects  # the scene is the same
        assert np.array_equal(b.image, 255 - a.image)


def test_classic_default_is_white_hot_and_lwir_draws_both_polarities():
    assert SyntheticIRScene(seed=1).polarity == "white"
    drawn = {SyntheticIRScene(160, 128, seed=s, style="lwir").polarity for s in range(12)}
    assert drawn == {"white", "black"}


def test_lwir_people_span_small_to_large_on_large_frames():
    heights = []
    for seed in range(8):
        sc = SyntheticIRScene(1280, 1024, seed=seed, people=6, style="lwir")
        for i in (0, 200, 400):
            fr = sc.frame(i)
            heights += [o.box[3] - o.box[1] for o in fr.persons]
            for o in fr.objects:
                x0, y0, x1, y1 = o.box
                assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 1024
    heights = np.array(heights)
    assert len(heights) > 40
    assert heights.max() <= 0.45 * 1024 + 2  # the sprite size clip
    assert np.percentile(heights, 10) < 100 and np.percentile(heights, 90) > 200  # ~20 to ~300 px and more


def test_lwir_has_riders_groups_and_clothing_colder_than_the_ground():
    riders = groups = cold = 0
    for seed in range(10):
        sc = SyntheticIRScene(640, 512, seed=seed, people=6, style="lwir")
        for slot in range(sc.people):
            for t in (1.0, 9.0):
                wk = sc._walker(slot, t)
                riders += wk.variant in lwir.RIDER_VARIANTS
                groups += bool(wk.companions)
    rng = np.random.default_rng(0)
    cold = sum(lwir.person_values(rng)[lwir.TORSO] < 0 for _ in range(200))
    assert riders > 5 and groups > 5 and 20 < cold < 180


def test_lwir_people_stand_out_from_their_surroundings():
    """The person's box differs from the ring around it (warmer or colder parts): visible, not noise."""
    contrasts = []
    for seed in range(6):
        sc = SyntheticIRScene(640, 512, seed=seed, people=4, style="lwir", polarity="white")
        fr = sc.frame(100)
        img = fr.image.astype(np.float32)
        for o in fr.persons:
            x0, y0, x1, y1 = (int(v) for v in o.box)
            if (x1 - x0) < 8 or x0 < 8 or y0 < 8 or x1 > 632 or y1 > 504:
                continue
            inner = img[y0:y1, x0:x1]
            contrasts.append(float(inner.max() - np.median(img[y0 - 8:y1 + 8, x0 - 8:x1 + 8])))
    assert len(contrasts) >= 6 and np.median(contrasts) > 30  # the skin is hot


def test_lwir_is_deterministic_and_bad_knobs_are_rejected():
    a = SyntheticIRScene(320, 256, seed=5, style="lwir").frame(77)
    b = SyntheticIRScene(320, 256, seed=5, style="lwir").frame(77)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects
    with pytest.raises(ValueError, match="style"):
        SyntheticIRScene(style="sepia")
    with pytest.raises(ValueError, match="polarity"):
        SyntheticIRScene(polarity="grey")


def test_the_lwir_recipe_names_scenes_that_render():
    import yaml

    from conftest import ROOT

    cfg = yaml.safe_load((ROOT / "configs" / "train-lwir.yaml").read_text())
    assert cfg["extra_scenes"]
    for extra in cfg["extra_scenes"]:
        sc = SyntheticIRScene(**{**cfg["scene"], **extra["scene"], "seed": int(extra["first_seed"])})
        assert sc.style == "lwir" and sc.frame(0).image.shape == (sc.height, sc.width)
