import json

import cv2

from streamcam.report import make_report


def test_report_writes_the_plots_of_a_run(tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    rows = [{"seq": i, "t_capture_ns": 10**9 * 100 + i * 33_000_000, "latency_ms": 20 + (i % 7), "n": 2,
             "tracks": [1, 2] if i < 40 else [2, 3]} for i in range(90)]
    (stats / "frames-ir0.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{truncated")
    (tmp_path / "eval.json").write_text(json.dumps({"cam_threshold": 0.2, "max_box_acc": 0.8,
                                                     "threshold_curve": {"0.1": 0.5, "0.2": 0.8, "0.3": 0.7}}))
    paths = make_report(tmp_path)
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names == ["cam_threshold.png", "fps.png", "latency_hist.png", "tracks.png"]
    for p in paths:
        img = cv2.imread(p)
        assert img is not None and img.shape[0] > 200 and img.std() > 5  # a real picture, not a blank canvas
