import pytest

from streamcam.config import PipelineConfig, config_from_dict, load_config
from streamcam.errors import ConfigError


def test_default_config_loads_and_resolves_paths():
    from conftest import ROOT

    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert isinstance(cfg, PipelineConfig)
    assert cfg.streams[0].id == "ir0" and cfg.streams[0].source.kind == "synthetic"
    assert cfg.model_path() == str(ROOT / "engines" / "person-ir.onnx")
    assert cfg.endpoint("frames").startswith("ipc://") and "{run_dir}" not in cfg.endpoint("frames")


def test_every_shipped_config_is_valid():
    from conftest import ROOT

    # Training recipes (train-*, finetune-*, pretrain-*) are not pipeline configs.
    configs = [p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith(("train", "finetune", "pretrain"))]
    assert configs
    for p in configs:
        load_config(p)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"processor": {"treshold": 0.2}}, "processor.treshold: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"processor": {"threads": "two"}}, "processor.threads: expected an integer"),
        ({"processor": {"threads": True}}, "processor.threads: expected an integer"),
        ({"processor": {"cam_threshold": 1.5}}, "processor.cam_threshold"),
        ({"processor": {"backend": "cuda"}}, "processor.backend: expected one of"),
        ({"endpoints": {"frames": "tcp://127.0.0.1"}}, "endpoints.frames"),
        ({"endpoints": {"publish": "http://x:1"}}, "endpoints.publish"),
        ({"endpoints": {"publish": "tcp://127.0.0.1:70000"}}, "endpoints.publish"),
        ({"streams": [{"id": "a/b"}]}, "streams[0].id"),
        ({"streams": [{"id": "a"}, {"id": "a"}]}, "streams[1].id: duplicate"),
        ({"streams": [{"id": "a", "source": {"kind": "file"}}]}, "streams[0].source.uri: required"),
        ({"streams": [{"id": "a", "source": {"kind": "url", "uri": "ftp://x"}}]}, "streams[0].source.uri"),
        ({"streams": [{"id": "a", "source": {"fps": 0}}]}, "streams[0].source.fps"),
        ({"streams": [{"id": "a", "source": {"colour": 1}}]}, "streams[0].source.colour: unknown key"),
        ({"streams": []}, "streams: expected at least one"),
        ({"publisher": {"jpeg_quality": 0}}, "publisher.jpeg_quality"),
        ({"serve": "yes"}, "serve: expected a mapping"),
        ({"endpoints": {"publish": "tcp://0.0.0.0:5560"}}, "endpoints.publish: tcp://0.0.0.0:5560 binds beyond loopback"),
        ({"serve": {"host": "0.0.0.0"}}, "serve.host: 0.0.0.0 is beyond loopback"),
        ({"security": {"curve": "yes"}}, "security.curve: expected true or false"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert key in str(err.value)


def test_overrides_and_yaml_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("processor:\n  threads: 1\n")
    cfg = load_config(p, {"processor.threads": 2, "run.duration_s": 3})
    assert cfg.processor.threads == 2 and cfg.run.duration_s == 3.0
    p.write_text("processor: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_remote_bind_needs_an_explicit_decision():
    cfg = config_from_dict({"endpoints": {"publish": "tcp://0.0.0.0:5560"}, "security": {"allow_remote_bind": True}})
    assert cfg.endpoint("publish") == "tcp://0.0.0.0:5560"


def test_heatmap_free_copy_only_when_someone_can_view_it():
    cfg = config_from_dict({})
    assert cfg.publisher.wants_plain(serving=True) and not cfg.publisher.wants_plain(serving=False)
    forced = config_from_dict({"publisher": {"plain_frames": True}})
    assert forced.publisher.wants_plain(serving=False)
    assert not config_from_dict({"publisher": {"heatmap": False, "plain_frames": True}}).publisher.wants_plain(True)


@pytest.mark.parametrize("cls, kwargs, field", [
    ("SourceConfig", {"fps": 0}, "fps"),
    ("SourceConfig", {"kind": "file"}, "uri"),
    ("StreamConfig", {"id": "a/b"}, "id"),
    ("ProcessorConfig", {"min_score": 2.0}, "min_score"),
    ("ProcessorConfig", {"detect_every": 2, "detect_fps": 5.0}, "detect_fps"),
    ("TensorRTConfig", {"max_batch": 0}, "max_batch"),
    ("PublisherConfig", {"alpha": 2.0}, "alpha"),
    ("ServeConfig", {"port": 70000}, "port"),
    ("RunConfig", {"duration_s": 0}, "duration_s"),
])
def test_a_fields_range_is_checked_where_the_field_is_declared(cls, kwargs, field):
    """Built in code, not only loaded from YAML, a section refuses a value out of its field's range."""
    import streamcam.config as config

    with pytest.raises(config.FieldError) as err:
        getattr(config, cls)(**kwargs)
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")


def test_a_nested_fields_error_names_the_full_key():
    with pytest.raises(ConfigError, match=r"^streams\[1\]\.source\.reconnect_initial_s: expected 0 < initial"):
        config_from_dict({"streams": [{"id": "a"}, {"id": "b", "source": {"reconnect_initial_s": 20.0}}]})
    with pytest.raises(ConfigError, match=r"^processor\.tensorrt\.opt_batch: expected 1-8"):
        config_from_dict({"processor": {"tensorrt": {"opt_batch": 9}}})


def test_the_stabilizer_settings_sit_directly_under_stabilizer():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys load without a deprecation warning
        cfg = config_from_dict({"stabilizer": {"enabled": True, "input": "peaks", "max_misses": 4,
                                               "box_correction": {}, "kalman": {"accel_std": 2.0}}})
    s = cfg.stabilizer
    assert (s.input, s.max_misses, s.box_correction.is_identity, s.kalman.accel_std) == ("peaks", 4, True, 2.0)
    with pytest.raises(ConfigError, match=r"stabilizer: StabilizerConfig\.max_misses: expected an integer >= 0"):
        config_from_dict({"stabilizer": {"max_misses": -1}})
    with pytest.raises(ConfigError, match=r"stabilizer\.bogus: unknown key"):
        config_from_dict({"stabilizer": {"bogus": 1}})


@pytest.mark.parametrize("old, new", [
    ({"tracker": {"max_misses": 4, "kalman": {"accel_std": 2.0}}}, "stabilizer.max_misses, stabilizer.kalman"),
    ({"tracker": None}, "stabilizer.<key>"),  # `tracker:` left with only comments
])
def test_the_old_stabilizer_tracker_section_loads_with_a_warning_naming_the_new_keys(old, new):
    from streamcam.config import ConfigDeprecationWarning

    with pytest.warns(ConfigDeprecationWarning) as caught:
        cfg = config_from_dict({"stabilizer": {"input": "peaks", **old}})
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "\n" not in msg and msg == f"stabilizer.tracker is deprecated: write its keys directly under stabilizer ({new})"
    want = config_from_dict({"stabilizer": {"input": "peaks", **(old["tracker"] or {})}})
    assert cfg == want


def test_the_old_stabilizer_tracker_keys_load_from_yaml_and_overrides(tmp_path):
    from streamcam.config import ConfigDeprecationWarning

    p = tmp_path / "old.yaml"
    p.write_text("stabilizer:\n  enabled: true\n  tracker:\n    max_misses: 7\n")
    with pytest.warns(ConfigDeprecationWarning, match=r"\(stabilizer\.max_misses\)"):
        assert load_config(p).stabilizer.max_misses == 7
    p.write_text("stabilizer:\n  enabled: true\n")
    with pytest.warns(ConfigDeprecationWarning, match=r"\(stabilizer\.box_correction\)"):
        cfg = load_config(p, {"stabilizer.tracker.box_correction": {}})
    assert cfg.stabilizer.box_correction.is_identity
    # A key set under both names is refused, naming the one to keep.
    p.write_text("stabilizer:\n  max_misses: 3\n  tracker:\n    max_misses: 7\n")
    with pytest.raises(ConfigError, match=r"stabilizer\.tracker\.max_misses: also set as stabilizer\.max_misses; "
                                          r"keep only stabilizer\.max_misses"):
        load_config(p)


def test_a_dumped_config_loads_back_without_a_warning():
    """The supervisor hands each stage its config as to_dict() JSON: the new shape, no warning there."""
    import json
    import warnings

    from streamcam.config import to_dict

    cfg = config_from_dict({"stabilizer": {"max_misses": 5, "box_correction": {"width": [0.5, 1.0, 0.0]}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = config_from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert again.stabilizer == cfg.stabilizer


def test_any_port_only_where_no_stage_connects():
    """`tcp://HOST:*`: the publisher binds a port the OS picks (read back from the run dir); the stages
    connect to every other endpoint, and the bridge and the recorder to the publisher's, by number."""
    off = {"serve": {"enabled": False}}
    cfg = config_from_dict({**off, "endpoints": {"publish": "tcp://127.0.0.1:*"}, "metrics": {"base_port": 0}})
    assert cfg.endpoint("publish") == "tcp://127.0.0.1:*" and cfg.metrics.base_port == 0
    with pytest.raises(ConfigError, match=r"endpoints\.frames: .*only for endpoints\.publish"):
        config_from_dict({**off, "endpoints": {"frames": "tcp://127.0.0.1:*"}})
    with pytest.raises(ConfigError, match=r"endpoints\.publish: .*needs serve\.enabled: false"):
        config_from_dict({"endpoints": {"publish": "tcp://127.0.0.1:*"}})
    with pytest.raises(ConfigError, match=r"endpoints\.publish: .*needs record\.enabled: false"):
        config_from_dict({**off, "record": {"enabled": True}, "endpoints": {"publish": "tcp://127.0.0.1:*"}})
    with pytest.raises(ConfigError, match=r"endpoints\.publish: .*beyond loopback"):
        config_from_dict({**off, "endpoints": {"publish": "tcp://10.0.0.1:*"}})
    with pytest.raises(ConfigError, match=r"metrics\.base_port: expected 1024-"):
        config_from_dict({"metrics": {"base_port": 80}})


def test_a_setting_without_an_equals_sign_is_refused_with_an_example_of_its_own_flag():
    from streamcam.cli import parse_settings
    from streamcam.errors import StreamcamError

    assert parse_settings(["processor.threads=2", "a.b=[1, 2]", "x=true"]) == {
        "processor.threads": 2, "a.b": [1, 2], "x": True}
    with pytest.raises(StreamcamError, match=r"--set 'processor.threads': expected KEY=VALUE, e.g. --set processor.threads=2"):
        parse_settings(["processor.threads"])
    with pytest.raises(StreamcamError, match=r"--train-set '=true': expected KEY=VALUE, e.g. --train-set flip_average=true"):
        parse_settings(["=true"], "--train-set")
