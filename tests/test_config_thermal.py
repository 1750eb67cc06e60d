"""configs/thermal.yaml as shipped: the real-LWIR model at its full input, the network at its detect
rate, every frame of the camera published. Real processes, a real MJPG file as the camera."""

import json
import signal

import pytest
import yaml

from conftest import ROOT
from _pipeline_fixtures import published, receive, start_run


@pytest.mark.slow
def test_the_thermal_config_publishes_every_frame_and_runs_the_network_at_its_detect_rate(short_tmp):
    from streamcam.datasets.synthetic import SyntheticIRScene
    from tools.bench.clips import write_mjpg

    scene = SyntheticIRScene(seed=9000, people=3, style="lwir", width=640, height=512)
    clip = write_mjpg(short_tmp / "ir.avi", (scene.frame(i).image for i in range(50)), 25)
    doc = yaml.safe_load((ROOT / "configs" / "thermal.yaml").read_text())
    assert doc["processor"]["model"] == "engines/person-lwir.onnx" and doc["processor"]["detect_fps"] == 12.5
    doc["processor"]["model"] = str(ROOT / doc["processor"]["model"])
    doc["streams"][0]["source"] = {"kind": "file", "uri": str(clip), "width": 640, "height": 512, "fps": 25,
                                   "loop": True}
    doc["serve"] = {"enabled": False}
    doc["endpoints"] = {"publish": "tcp://127.0.0.1:*"}
    doc["run"] = {"run_dir": str(short_tmp / "run")}
    cfg = short_tmp / "thermal.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    sup = start_run(cfg)
    try:
        dets = receive(published(short_tmp / "run", timeout=60), "detections/ir0", 100, timeout=60)
    finally:
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=20)
    assert sup.returncode == 0, out[-3000:]
    assert len(dets) == 100, out[-3000:]
    seqs = [m.seq for m in dets]
    assert seqs == sorted(seqs)
    # past the start (the model loading, the first engine calls), every frame of the camera, in order
    assert seqs[-1] - seqs[-50] == 49, seqs
    assert all(m.header["width"] == 640 for m in dets)
    proc = json.loads((short_tmp / "run" / "summary.json").read_text())["stages"]["processor"]
    # 25 fps in, 12.5 through the network: about every second frame detected, the rest predicted
    assert 0 < proc["detected"] < 0.75 * (proc["detected"] + proc["predicted"]), proc
