"""Stabilizer.trails (what a result message carries per frame) against its reference on the track snapshots."""

import numpy as np
import pytest

from streamcam.protocol import Detection
from streamcam.stabilizer import Stabilizer, StabilizerConfig
from streamcam.stabilizer.stabilizer import trails_reference


def _people(rng, t):
    """Up to 4 walkers that enter, cross and leave, with jitter and the odd missed frame."""
    out = []
    for k in range(4):
        x = 40 + 25 * k + 6.0 * t * (1 if k % 2 else -1) % 600
        if rng.random() < 0.15 or (k == 3 and 20 < t < 35):
            continue  # a miss: tracks coast, some end
        y = 120 + 60 * k + rng.normal(0, 2)
        out.append(Detection((x, y, x + 30 + rng.normal(0, 1), y + 70), float(rng.uniform(0.4, 0.95)), "person"))
    return out


@pytest.mark.parametrize("config", [StabilizerConfig(), StabilizerConfig(hits_to_confirm=1, trail_length=3),
                                    StabilizerConfig(max_misses=1, coast_publish=0)])
def test_the_trails_are_the_reference_on_every_frame_updated_or_predicted(config):
    rng = np.random.default_rng(3)
    stab = Stabilizer(config)
    seen_states = set()
    for i in range(90):
        t = i / 30
        if i % 3 == 0:
            stab.update(_people(rng, i), t, (640, 480))
        else:
            stab.predict(t, (640, 480))
        assert stab.trails() == trails_reference(stab.tracks)
        seen_states |= {tr.state for tr in stab.tracks}
    assert {"confirmed", "coasting"} <= seen_states  # every state the filter publishes (or leaves out) is met
    assert "tentative" in seen_states or config.hits_to_confirm == 1
