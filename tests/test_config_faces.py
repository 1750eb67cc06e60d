"""processor.faces: face mode's settings in the pipeline YAML, validated on load naming the key."""

import pytest

from streamcam.config import FacesConfig, config_from_dict
from streamcam.errors import ConfigError


def test_faces_defaults_and_values():
    assert config_from_dict({}).processor.faces == FacesConfig()
    cfg = config_from_dict({"processor": {"mode": "faces", "faces": {"track": False, "rolling": 6, "evaluator": "reference"}}})
    assert cfg.processor.faces == FacesConfig(track=False, rolling=6, evaluator="reference")


@pytest.mark.parametrize(
    "faces, key",
    [
        ({"rolling": 0}, "processor.faces: rolling: expected an integer >= 1"),
        ({"rolling": 2.5}, "processor.faces.rolling: expected an integer"),
        ({"near_scales": -1}, "processor.faces: near_scales"),
        ({"min_face_frac": 0}, "processor.faces: min_face_frac"),
        ({"window_px": 12}, "processor.faces: window_px"),
        ({"scale_factor": 1.0}, "processor.faces: scale_factor"),
        ({"min_neighbors": -1}, "processor.faces: min_neighbors"),
        ({"evaluator": "gpu"}, "processor.faces.evaluator: expected one of"),
        ({"track": "yes"}, "processor.faces.track: expected true or false"),
        ({"min_face_px": 48}, "processor.faces.min_face_px: unknown key"),
    ],
)
def test_bad_faces_config_is_rejected_naming_the_key(faces, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"processor": {"mode": "faces", "faces": faces}})
    assert key in str(err.value)
