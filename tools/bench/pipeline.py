"""End to end: the default pipeline (Supervisor on configs/default.yaml) against the bare engine,
a naive single-process loop built from the peers, an overload run, and scaling tables.

* model: ``engines/person-ir.onnx`` when it exists, else a TinyGapNet (the default recipe's
  architecture, random seeded weights) exported with streamcam's export; per-frame cost does
  not depend on the weight values. The result says which.
* pipeline: ``Supervisor(cfg).run(duration)`` with the source at ``pacing: fast`` (unbounded),
  serve disabled, the publisher on a port the OS picks (read back from the run dir); fps and
  capture→publish latency from the publisher's stats.
* bare engine: ``engine.infer`` on a preprocessed frame, same model, same threads.
  pipeline efficiency = pipeline fps / bare engine fps (runs interleaved engine, pipeline, ...).
* naive loop: synthetic frame → torch forward → torchcam CAM → cv2 overlay → JPEG → imagezmq
  PUB send, one process, ``torch.set_num_threads`` = the engine's threads.
* overload: the source paced at 2x the measured capacity; p99 latency vs 3 frame intervals
  (interval = 1 / capacity fps) and the drops counted by capture / processor / publisher.
* scaling: per-frame cost of detector + annotate + JPEG in one process vs frame size, and the
  pipeline's throughput with 1, 2, 4 synthetic streams.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import REPO_ROOT, median, peer_available, percentile, set_threads, verdict

DEFAULT_CONFIG = os.path.join(REPO_ROOT, "configs", "default.yaml")
DEFAULT_MODEL = os.path.join(REPO_ROOT, "engines", "person-ir.onnx")
TARGET_EFFICIENCY = 0.85
TARGET_VS_NAIVE = 2.0
TARGET_OVERLOAD_INTERVALS = 3.0
SCALING_SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080), (3840, 2160))


def tiny_gap_torch(seed: int = 0):
    """The default recipe's net (tiny_gap, width 32, 64 features, grey in, 2 classes), random weights."""
    import torch

    from streamcam.training.nets import build_net

    torch.manual_seed(seed)
    return build_net("tiny_gap", in_channels=1, num_classes=2, width=32, feature_channels=64).eval()


def ensure_model(work_dir: str) -> tuple[str, str]:
    """``(path, description)``: the trained default model if present, else a random-weight export."""
    if os.path.isfile(DEFAULT_MODEL):
        return DEFAULT_MODEL, "engines/person-ir.onnx (trained default model)"
    from streamcam.processor.model_meta import ModelMetadata
    from streamcam.training.export import export_onnx

    path = os.path.join(work_dir, "tiny-gap-random-v2.onnx")
    if not os.path.isfile(path):
        import torch

        model = tiny_gap_torch()
        # Random weights give huge logits (softmax saturates at exactly 1.0). Scale the classifier so
        # p(person) ~ 0.73 on every frame: like a trained model on the default scene (people always
        # present) the box rule runs on every frame, and processor.min_score 1.0 really switches it off.
        # The CAM is linear in W, so its shape (and the box rule's work) is unchanged by the scale.
        x = torch.from_numpy((synthetic_frames(1)[0][None, None].astype(np.float32) / 255.0 - 0.3) / 0.2)
        x = torch.nn.functional.interpolate(x, size=(240, 320), mode="area")
        with torch.no_grad():
            gap = model.features(x).mean(dim=(2, 3))
            w = model.classifier.weight
            w.mul_(0.05 / max(float((gap @ w.T).abs().max()), 1e-12))
            model.classifier.bias.copy_(torch.tensor([0.0, 1.0]))
        meta = ModelMetadata(
            classes=("no_person", "person"), input_width=320, input_height=240, input_channels=1, color_order="GRAY",
            mean=(0.3,), std=(0.2,), cam_weights=np.zeros((2, 64), np.float32), cam_bias=np.zeros(2, np.float32),
            positive_classes=("person",), provenance={"recipe": "tools/bench/pipeline.py", "weights": "random, seed 0"},
        )
        export_onnx(model, path, meta)
    return path, ("TinyGapNet (the default recipe's architecture) with random weights (seed 0; classifier scaled so "
                  "p(person) ~ 0.73, the box rule runs on every frame), exported by tools/bench/pipeline.py: "
                  "engines/person-ir.onnx was not present")


def pipeline_config(model: str, run_dir: str, streams: int = 1, pacing: str = "fast", fps: float = 30.0,
                    threads: int = 1, min_score: float | None = None):
    """configs/default.yaml with the bench's changes (model, run dir, ports, pacing, stream count).

    ``min_score=1.0`` switches the box rule off (no class reaches it; the stabilizer is disabled
    too, since it lowers min_score): a diagnostic that isolates the box rule's cost.
    """
    import yaml

    from streamcam.config import config_from_dict

    data = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    base = data["streams"][0]
    data["streams"] = []
    for i in range(streams):
        s = copy.deepcopy(base)
        s["id"] = base["id"] if i == 0 else f"{base['id']}-{i}"
        s["source"]["seed"] = int(base["source"].get("seed", 7)) + i
        s["source"]["pacing"] = pacing
        s["source"]["fps"] = float(min(fps, 1000.0))
        data["streams"].append(s)
    data["processor"]["model"] = model
    data["processor"]["threads"] = threads
    if min_score is not None:
        data["processor"]["min_score"] = min_score
        from streamcam.config import PipelineConfig

        if "stabilizer" in {f.name for f in dataclasses.fields(PipelineConfig)}:
            # The stabilizer lowers the detector's min_score to its score_leave (hysteresis):
            # switch it off too, or the box rule still runs on every frame.
            data.setdefault("stabilizer", {})["enabled"] = False
    data["serve"] = {"enabled": False}
    # Any port: a probed free one can be taken before the publisher binds it; it writes the one it got
    # to <run_dir>/bound/publisher.json (run_pipeline reads it there).
    data["endpoints"]["publish"] = "tcp://127.0.0.1:*"
    data["run"] = {"run_dir": run_dir, "log_level": "WARNING"}
    return config_from_dict(data, base_dir=REPO_ROOT)


def run_pipeline(cfg, duration_s: float, warmup_s: float = 1.5, start_timeout_s: float = 30.0) -> dict[str, Any]:
    """Run the supervisor; measure steady state from a subscriber, after the first frame + ``warmup_s``.

    fps = ``detections/<id>`` messages per second over ``duration_s``; latency = the header's
    ``latency_ms`` (capture → JPEG ready, stamped by the publisher). Stage start-up (imports,
    model load) is excluded; the drop counters come from the stages' final stats (whole run).
    """
    import threading

    import zmq

    from streamcam import protocol
    from streamcam.stats import read_bound
    from streamcam.supervisor import Supervisor
    from streamcam.transport import make_socket

    sup = Supervisor(cfg)
    box: dict[str, Any] = {}
    th = threading.Thread(target=lambda: box.setdefault("summary", sup.run(None)), daemon=True)
    # The supervisor clears it too, but in its thread, maybe after the wait below has read a stale
    # address (a run dir named by a pid an earlier bench had).
    shutil.rmtree(cfg.run_dir / "bound", ignore_errors=True)
    ctx = zmq.Context()
    sub = None
    th.start()
    counts: dict[str, int] = {}
    lat: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + start_timeout_s
        while sub is None:
            published = read_bound(cfg.run_dir, "publisher").get("publish")
            if published:
                sub = make_socket(ctx, "SUB", published, bind=False, subscribe="detections/")
            elif time.monotonic() > deadline:
                raise RuntimeError(f"the publisher bound nothing in {start_timeout_s} s: see {cfg.run_dir}/logs")
            else:
                time.sleep(0.05)
        first = None
        t_start = t_end = None
        while True:
            now = time.monotonic()
            if first is None and now > deadline:
                raise RuntimeError(f"pipeline published nothing in {start_timeout_s} s: see {cfg.run_dir}/logs")
            if t_start is not None and now >= t_start + duration_s:
                t_end = now
                break
            if not sub.poll(100, zmq.POLLIN):
                continue
            msg = protocol.decode(sub.recv_multipart(copy=False))
            now = time.monotonic()
            if first is None:
                first = now
            if t_start is None:
                if now - first >= warmup_s:
                    t_start = now
                continue
            counts[msg.stream] = counts.get(msg.stream, 0) + 1
            lat.setdefault(msg.stream, []).append(float(msg.header.get("latency_ms", 0.0)))
    finally:
        if sub is not None:
            sub.close(0)
        ctx.term()
        sup.stop()
        th.join(30)
    summary = box.get("summary") or sup.summary()
    stages = summary.get("stages", {})
    window = t_end - t_start
    cap = [v for k, v in stages.items() if k.startswith("capture-")]
    all_lat = [x for v in lat.values() for x in v]
    return {
        "fps": sum(counts.values()) / window,
        "fps_per_stream": [c / window for c in counts.values()] or [0.0],
        "p50_ms": percentile(all_lat, 50),
        "p99_ms": percentile(all_lat, 99),
        "published": int(sum(int(s.get("published") or 0) for s in summary.get("streams", {}).values())),
        "captured": sum(int(c.get("captured", 0)) for c in cap),
        "dropped_capture": sum(int(c.get("dropped", 0)) for c in cap),
        "skipped_processor": int(stages.get("processor", {}).get("skipped", 0)),
        "dropped_processor": int(stages.get("processor", {}).get("dropped", 0)),
        "skipped_publisher": int(stages.get("publisher", {}).get("skipped", 0)),
        "run_dir": summary["run_dir"],
    }


def synthetic_frames(n: int, width: int = 640, height: int = 480, seed: int = 7) -> list[np.ndarray]:
    from streamcam.capture.sources import SyntheticSource

    src = SyntheticSource(width=width, height=height, seed=seed)
    return [src.read().image for _ in range(n)]


def bare_engine_fps(model: str, threads: int, seconds: float) -> float:
    """The engine alone on the same model (the efficiency denominator); input values don't change its time."""
    from .limits import engine_fps

    return engine_fps(model, threads, seconds)


def naive_loop(seconds: float, threads: int, jpeg_quality: int = 80, alpha: float = 0.4) -> dict[str, Any]:
    """The loop one writes from the peers: one process, frame → torch → torchcam → overlay → imagezmq."""
    import cv2
    import imagezmq
    import torch
    import zmq
    from torchcam.methods import CAM

    from streamcam.capture.sources import SyntheticSource

    set_threads(threads)
    model = tiny_gap_torch()
    extractor = CAM(model, target_layer="trunk", fc_layer="classifier")
    # PUB mode binds (nobody subscribes: the send is what is timed), on any port: no probe-then-bind race.
    sender = imagezmq.ImageSender(connect_to="tcp://127.0.0.1:*", REQ_REP=False)
    sender.zmq_socket.setsockopt(zmq.LINGER, 0)
    src = SyntheticSource(width=640, height=480, seed=7)
    lat: list[float] = []
    n = 0
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t_cap = time.perf_counter()
            frame = src.read().image
            x = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA).astype(np.float32)
            t = torch.from_numpy((x / 255.0 - 0.3) / 0.2)[None, None]
            with torch.no_grad():
                logits, _ = model(t)
                cam = extractor(1, logits)[0][0].numpy()
            heat = cv2.applyColorMap((cv2.resize(cam, (640, 480)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
            out = cv2.addWeighted(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), 1 - alpha, heat, alpha, 0)
            ok, jpg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            sender.send_jpg("ir0", jpg)
            lat.append((time.perf_counter() - t_cap) * 1e3)
            n += 1
        elapsed = time.perf_counter() - t0
    finally:
        extractor.remove_hooks()
        sender.close()
    return {"fps": n / elapsed, "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}


def _processor_detector(model: str, threads: int):
    """What the live processor runs (detector + stabilizer when this checkout has it), and a detect() call."""
    from streamcam.processor import stage

    cfg = pipeline_config(model, os.path.join(REPO_ROOT, "runs", "bench", "scaling"), threads=threads)
    # build_tracked_detector: its name in checkouts before the stabilizer was one name.
    build = getattr(stage, "build_stabilized_detector", None) or getattr(stage, "build_tracked_detector", None)
    if build is not None:
        stabilized = build(cfg)
        return stabilized.detector.engine, lambda img, t: stabilized.process("ir0", img, "GRAY8", t)[0]
    det = stage.build_detector(cfg)
    return det.engine, lambda img, t: det.detect(img, "GRAY8")


def scaling_by_size(model: str, threads: int, iters: int,
                    sizes: tuple[tuple[int, int], ...] = SCALING_SIZES) -> list[dict[str, Any]]:
    """Per-frame ms of the processor's work (preprocess + engine + CAM + boxes + tracks) and of the
    publisher's (annotate + JPEG), in one process, over a sequence of synthetic frames resized to each size."""
    import cv2

    from streamcam.publisher.annotate import annotate, encode_jpeg

    engine, detect = _processor_detector(model, threads)
    seq = synthetic_frames(max(iters, 1))
    times: dict[tuple[int, int], dict[str, list[float]]] = {s: {"detect": [], "annotate": [], "boxes": []}
                                                            for s in sizes}
    try:
        for s in sizes:  # warm up each size once
            detect(cv2.resize(seq[0], s), 0)
        for i, base in enumerate(seq):  # sizes interleaved per frame
            for s in sizes:
                frame = cv2.resize(base, s, interpolation=cv2.INTER_LINEAR)
                t0 = time.perf_counter()
                r = detect(frame, int((i + 1) * 1e9 / 30))
                t1 = time.perf_counter()
                encode_jpeg(annotate(frame, r.cam, r.detections, stream="ir0"), 80)
                t2 = time.perf_counter()
                times[s]["detect"].append((t1 - t0) * 1e3)
                times[s]["annotate"].append((t2 - t1) * 1e3)
                times[s]["boxes"].append(float(r.timings_ms.get("cam", float("nan"))))
    finally:
        engine.close()
    rows = []
    for (w, h), t in times.items():
        d, a = median(t["detect"]), median(t["annotate"])
        rows.append({"size": f"{w}x{h}", "detect_ms": d, "cam_boxes_ms": median(t["boxes"]),
                     "detect_p90_ms": percentile(t["detect"], 90), "annotate_jpeg_ms": a, "total_ms": d + a,
                     "fps_one_process": 1e3 / (d + a)})
    return rows


def run(quick: bool = False, seconds: float | None = None, rounds: int | None = None,
        streams: tuple[int, ...] | None = None, scaling_iters: int | None = None, threads: int = 1,
        work_dir: str | None = None) -> dict[str, Any]:
    seconds = seconds or (2.0 if quick else 6.0)
    rounds = rounds or (1 if quick else 2)
    streams = streams or ((1, 2) if quick else (1, 2, 4))
    scaling_iters = scaling_iters or (2 if quick else 5)
    work_dir = work_dir or os.path.join(REPO_ROOT, "runs", "bench")
    os.makedirs(work_dir, exist_ok=True)
    model, model_desc = ensure_model(work_dir)
    tag = f"{os.getpid()}"
    out: dict[str, Any] = {"model": model_desc, "threads": threads, "seconds": seconds, "rounds": rounds,
                           "pacing": "fast (source unbounded)", "skipped": {}}

    naive_ok = all(peer_available(m)[0] for m in ("torchcam", "imagezmq"))
    if not naive_ok:
        out["skipped"]["naive loop"] = "; ".join(peer_available(m)[1] for m in ("torchcam", "imagezmq") if not peer_available(m)[0])
    # Interleaved: engine, pipeline, naive, engine, pipeline, naive ... (then a final engine run).
    eng, pipe, naive, nobox = [], [], [], []
    for r in range(rounds):
        eng.append(bare_engine_fps(model, threads, min(seconds, 3.0)))
        pipe.append(run_pipeline(pipeline_config(model, os.path.join(work_dir, f"run-{tag}-{r}"), threads=threads), seconds))
        nobox.append(run_pipeline(pipeline_config(model, os.path.join(work_dir, f"nobox-{tag}-{r}"), threads=threads,
                                                  min_score=1.0), seconds))
        if naive_ok:
            naive.append(naive_loop(seconds, threads))
    eng.append(bare_engine_fps(model, threads, min(seconds, 3.0)))
    engine_fps = median(eng)
    pipe_fps = median([p["fps"] for p in pipe])
    eff = pipe_fps / engine_fps
    e2e = {"engine_fps": engine_fps, "pipeline_fps": pipe_fps,
           "pipeline_p50_ms": median([p["p50_ms"] for p in pipe]), "pipeline_p99_ms": median([p["p99_ms"] for p in pipe]),
           "efficiency": eff, "efficiency_target": TARGET_EFFICIENCY, "efficiency_verdict": verdict(eff >= TARGET_EFFICIENCY),
           "dropped_capture": sum(p["dropped_capture"] for p in pipe), "skipped_processor": sum(p["skipped_processor"] for p in pipe),
           "nobox_fps": median([p["fps"] for p in nobox]), "nobox_p50_ms": median([p["p50_ms"] for p in nobox]),
           "nobox_p99_ms": median([p["p99_ms"] for p in nobox])}
    e2e["nobox_efficiency"] = e2e["nobox_fps"] / engine_fps
    if naive:
        naive_fps = median([n["fps"] for n in naive])
        speed = median([p["fps"] / n["fps"] for p, n in zip(pipe, naive)])
        e2e.update(naive_fps=naive_fps, naive_p50_ms=median([n["p50_ms"] for n in naive]),
                   naive_p99_ms=median([n["p99_ms"] for n in naive]), vs_naive=speed,
                   vs_naive_target=TARGET_VS_NAIVE, vs_naive_verdict=verdict(speed >= TARGET_VS_NAIVE))
    out["end_to_end"] = e2e

    # Overload: the source paced at twice what the pipeline can publish.
    capacity = pipe_fps
    src_fps = 2.0 * capacity
    ov = run_pipeline(pipeline_config(model, os.path.join(work_dir, f"overload-{tag}"), pacing="source",
                                      fps=src_fps, threads=threads), seconds)
    interval_ms = 1e3 / capacity
    out["overload"] = {
        "source_fps": src_fps, "capacity_fps": capacity, "fps": ov["fps"], "p50_ms": ov["p50_ms"], "p99_ms": ov["p99_ms"],
        "frame_interval_ms": interval_ms, "p99_intervals": ov["p99_ms"] / interval_ms,
        "target_intervals": TARGET_OVERLOAD_INTERVALS,
        "verdict": verdict(ov["p99_ms"] <= TARGET_OVERLOAD_INTERVALS * interval_ms),
        "captured": ov["captured"], "published": ov["published"], "dropped_capture": ov["dropped_capture"],
        "skipped_processor": ov["skipped_processor"], "skipped_publisher": ov["skipped_publisher"],
    }

    out["scaling_size"] = scaling_by_size(model, threads, scaling_iters)
    rows = []
    for n in streams:
        p = run_pipeline(pipeline_config(model, os.path.join(work_dir, f"streams{n}-{tag}"), streams=n, threads=threads),
                         seconds)
        rows.append({"streams": n, "fps_total": p["fps"], "fps_per_stream": median(p["fps_per_stream"]),
                     "ms_per_frame": 1e3 / p["fps"] if p["fps"] else float("nan"), "p50_ms": p["p50_ms"],
                     "p99_ms": p["p99_ms"], "skipped_processor": p["skipped_processor"],
                     "dropped_capture": p["dropped_capture"]})
    out["scaling_streams"] = rows
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1, default=str))
