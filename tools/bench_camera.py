"""A real 768x576 camera in real time: the whole pipeline of configs/camera.yaml on recorded footage.

    python -m tools.bench_camera [--seconds 20] [--threads 1 2] [--model engines/person-rgb.onnx]

The source is PETS09-S3-MF1's frames (``../shared/data/real``) written to an MP4 and played at
25 fps, looped, as a camera would deliver them (``source.kind: file``, paced); without the shared
data, the synthetic scene at 768x576. Each run is one ``streamcam run`` (supervisor, capture,
processor, publisher processes, ZeroMQ between them) for ``--seconds``; printed per run: frames/s
published, capture->publish latency p50/p99, frames skipped by the processor, and the engine's
median ms and input size, against the targets (>= 25 fps, p99 <= 150 ms).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_FPS, TARGET_P99_MS = 25.0, 150.0


def footage(tmp: Path) -> tuple[dict, str]:
    """A source config for the run and what it is."""
    import cv2

    from streamcam.evaluation.mot import real_data_dir

    seq = real_data_dir(ROOT) / "PETS09-S3-MF1" / "img1"
    frames = sorted(seq.glob("*.jpg")) if seq.is_dir() else []
    if not frames:
        return {"kind": "synthetic", "width": 768, "height": 576, "fps": 25}, "synthetic scene 768x576"
    out = tmp / "pets.avi"
    first = cv2.imread(str(frames[0]))
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25, (first.shape[1], first.shape[0]))
    for f in frames:
        vw.write(cv2.imread(str(f)))
    vw.release()
    return {"kind": "file", "uri": str(out), "width": first.shape[1], "height": first.shape[0], "fps": 25,
            "loop": True}, f"PETS09-S3-MF1 frames as MJPG {first.shape[1]}x{first.shape[0]}, 25 fps, looped"


def main(argv: list[str] | None = None) -> int:
    import yaml

    from streamcam.config import load_config
    from streamcam.lifecycle import setup_logging
    from streamcam.processor.model_meta import read_metadata
    from streamcam.supervisor import Supervisor

    ap = argparse.ArgumentParser(prog="tools.bench_camera", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--detect-every", type=int, nargs="+", default=[1, 2],
                    help="processor.detect_every values to run (network on every n-th frame)")
    ap.add_argument("--model", default=str(ROOT / "engines" / "person-rgb.onnx"))
    ap.add_argument("--heatmap", choices=("on", "off", "both"), default="on",
                    help="publisher.heatmap: the CAM blended into each published frame, or boxes only")
    ap.add_argument("--out", help="write the results JSON here")
    a = ap.parse_args(argv)
    heatmaps = {"on": [True], "off": [False], "both": [True, False]}[a.heatmap]
    meta = read_metadata(a.model)
    setup_logging("WARNING", "bench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source, what = footage(Path(tmp))
        for threads, every, heat in ((t, e, h) for e in a.detect_every for t in a.threads for h in heatmaps):
            overrides = {"processor.model": str(Path(a.model).resolve()), "processor.threads": threads,
                         "processor.detect_every": every, "publisher.heatmap": heat,
                         "serve.enabled": False, "run.log_level": "WARNING", "run.run_dir": str(Path(tmp) / f"run{threads}-{every}-{int(heat)}")}
            doc = yaml.safe_load((ROOT / "configs" / "camera.yaml").read_text())
            doc["streams"][0]["source"] = source  # the camera, replaced by the recording
            path = Path(tmp) / "camera.yaml"
            path.write_text(yaml.safe_dump(doc))
            cfg = load_config(path, overrides)
            summary = Supervisor(cfg).run(a.seconds)
            st = next(iter(summary.get("streams", {}).values()), {})
            proc = summary.get("stages", {}).get("processor", {})
            row = {"threads": threads, "detect_every": every, "heatmap": heat, "fps": st.get("fps"), "latency_ms_p50": st.get("latency_ms_p50"),
                   "latency_ms_p99": st.get("latency_ms_p99"), "published": st.get("published"),
                   "skipped": proc.get("skipped"), "engine_ms": proc.get("engine_ms_p50")}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"source: {what}; model {Path(a.model).name}, input {meta.input_width}x{meta.input_height}")
    print("| processor threads | detect_every | heatmap | published fps | p50 ms | p99 ms | skipped | engine ms | targets (>= 25 fps, p99 <= 150 ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = (r["fps"] or 0) >= TARGET_FPS and (r["latency_ms_p99"] or 1e9) <= TARGET_P99_MS
        print(f"| {r['threads']} | {r['detect_every']} | {'on' if r['heatmap'] else 'off'} | {r['fps']} | {r['latency_ms_p50']} | {r['latency_ms_p99']} | {r['skipped']} | "
              f"{r['engine_ms']} | {'met' if ok else 'MISSED'} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"source": what, "input": [meta.input_width, meta.input_height],
                                           "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
