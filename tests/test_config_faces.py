"""processor.faces: face mode's settings in the pipeline YAML, validated on load naming the key."""

import pytest

from streamcam.config import FacesConfig, config_from_dict
from streamcam.errors import ConfigError


def test_faces_defaults_and_values():
    assert config_from_dict({}).processor.faces == FacesConfig()
    cfg = config_from_dict({"processor": {"mode": "faces", "faces": {"threshold": 0.3, "max_side": 320}}})
    assert cfg.processor.faces == FacesConfig(threshold=0.3, max_side=320)


@pytest.mark.parametrize(
    "faces, key",
    [
        ({"threshold": 0}, "processor.faces: threshold: expected a score in (0, 1)"),
        ({"threshold": 1.5}, "processor.faces: threshold"),
        ({"max_side": 2.5}, "processor.faces.max_side: expected an integer"),
        ({"max_side": 16}, "processor.faces: max_side"),
        ({"min_face_frac": -0.1}, "processor.faces: min_face_frac"),
        ({"min_face_frac": 1.5}, "processor.faces: min_face_frac"),
        ({"threshold": "high"}, "processor.faces.threshold: expected a number"),
        # The Haar cascade's knobs went with it: an old config is told so, not silently ignored.
        ({"rolling": 4}, "processor.faces.rolling: unknown key"),
        ({"min_face_px": 48}, "processor.faces.min_face_px: unknown key"),
    ],
)
def test_bad_faces_config_is_rejected_naming_the_key(faces, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"processor": {"mode": "faces", "faces": faces}})
    assert key in str(err.value)
