"""A real 768x576 camera in real time: the whole pipeline of configs/camera.yaml on recorded footage.

    python -m tools.bench_camera [--seconds 20] [--threads 1 2] [--model engines/person-rgb.onnx]
    python -m tools.bench_camera --thermal [--detect-fps config none]   # configs/thermal.yaml, real LWIR frames

The source is PETS09-S3-MF1's frames (``../shared/data/real``) written to an MP4 and played at
25 fps, looped, as a camera would deliver them (``source.kind: file``, paced); without the shared
data, the synthetic scene at 768x576. Each run is one ``streamcam run`` (supervisor, capture,
processor, publisher processes, ZeroMQ between them) for ``--seconds``; printed per run: frames/s
published, capture->publish latency p50/p99, frames skipped by the processor, and the engine's
median ms and input size, against the targets (>= 25 fps, p99 <= 150 ms). With ``--cpu`` (the
default) each stage process's CPU time (``/proc/<pid>/stat``: user + system, all its threads) is read
after ``--warmup`` seconds and again at the end, and printed as CPU ms per published frame: on a
shared machine this, not the wall fps, says what each stage costs. The load average is printed
before and after each run. A viewer (``--viewer``, the default) subscribes to ``frames/<id>`` as a
person watching would: the publisher encodes frames only while someone receives them, so without
one the run measures a camera nobody watches (``--no-viewer``); its received rate and
capture -> receive p99 are in the row (``viewer_fps``, ``viewer_p99_ms``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
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
    from tools.bench.clips import write_mjpg

    first = cv2.imread(str(frames[0]))
    out = write_mjpg(tmp / "pets.avi", (cv2.imread(str(f)) for f in frames), 25)
    return {"kind": "file", "uri": str(out), "width": first.shape[1], "height": first.shape[0], "fps": 25,
            "loop": True}, f"PETS09-S3-MF1 frames as MJPG {first.shape[1]}x{first.shape[0]}, 25 fps, looped"


def process_usage(pid: int | str) -> tuple[float, int] | None:
    """``(user + system CPU seconds, minor page faults)`` of process ``pid`` so far (all its threads),
    or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # proc(5): minflt is field 10, utime and stime 14 and 15 (fields[0] here is field 3, the state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def thread_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of process ``pid`` so far (``{tid: s}``)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        usage = process_usage(f"{pid}/task/{task.name}")  # the same stat layout per thread
        if usage is not None:
            out[int(task.name)] = usage[0]
    return out


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads), or None when it is gone."""
    usage = process_usage(pid)
    return None if usage is None else usage[0]


def _published(run_dir: Path) -> int:
    try:
        doc = json.loads((run_dir / "stats" / "publisher.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(int(st.get("published") or 0) for st in doc.get("streams", {}).values())


def _detected(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "stats" / "processor.json").read_text()).get("detected") or 0)
    except (OSError, ValueError):
        return 0


class StageCPU:
    """CPU ms per published frame of each stage process of a running :class:`Supervisor`, between
    ``warmup`` seconds after the start and ``end`` seconds (a thread: call :meth:`start`, then
    :meth:`result` after the run)."""

    def __init__(self, sup, warmup: float, end: float) -> None:
        self.sup, self.warmup, self.end = sup, warmup, end
        self.marks: list[tuple[float, int, dict[str, tuple[float, int] | None]]] = []
        self.threads: list[dict[str, dict[int, float]]] = []
        self.detected: list[int] = []
        self._thread = threading.Thread(target=self._sample, name="stage-cpu", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _mark(self) -> None:
        children = [c for c in getattr(self.sup, "children", []) if c.proc is not None]
        cpu = {c.name: process_usage(c.proc.pid) for c in children}
        self.threads.append({c.name: thread_cpu_s(c.proc.pid) for c in children})
        self.detected.append(_detected(self.sup.run_dir))
        self.marks.append((time.monotonic(), _published(self.sup.run_dir), cpu))

    def _sample(self) -> None:
        t0 = time.monotonic()
        for at in (self.warmup, self.end):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            self._mark()

    def result(self) -> dict:
        self._thread.join(timeout=self.end + 5)
        if len(self.marks) < 2:
            return {}
        (ta, na, ca), (tb, nb, cb) = self.marks
        frames = max(nb - na, 1)
        both = [name for name in cb if cb.get(name) is not None and ca.get(name) is not None]
        out: dict = {name: round((cb[name][0] - ca[name][0]) * 1e3 / frames, 2) for name in both}
        out["_faults"] = {name: round((cb[name][1] - ca[name][1]) / frames, 1) for name in both}
        # The busiest thread of each stage: the processor's is its engine thread (preprocess, the
        # network on ONNX Runtime's one intra-op thread, CAM and boxes), the rest its frame loop.
        ta_, tb_ = self.threads
        busiest = {}
        for name in both:
            deltas = [tb_[name][tid] - ta_[name].get(tid, 0.0) for tid in tb_.get(name, {})]
            if deltas:
                busiest[name] = round(max(deltas) * 1e3 / frames, 2)
        out["_busiest_thread"] = busiest
        out["_detected"] = self.detected[1] - self.detected[0]  # frames through the network in the window
        out["_frames"], out["_seconds"] = nb - na, round(tb - ta, 2)
        return out


class Viewer:
    """A subscriber to ``frames/<stream>`` (the annotated JPEGs) in a thread: frames received and
    capture -> receive latency after ``warmup`` seconds."""

    def __init__(self, run_dir: Path, stream: str, warmup: float) -> None:
        self.run_dir, self.stream, self.warmup = run_dir, stream, warmup
        self.latencies_ms: list[float] = []
        self.first = self.last = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer", daemon=True)

    def start(self) -> "Viewer":
        self._thread.start()
        return self

    def _run(self) -> None:
        import zmq

        from streamcam import protocol
        from streamcam.transport import make_socket

        from streamcam.stats import read_bound

        endpoint = None
        while not self._stop.is_set() and not endpoint:  # the publisher writes the address it bound
            endpoint = read_bound(self.run_dir, "publisher").get("publish")
            self._stop.wait(0.05)
        if not endpoint:
            return
        ctx = zmq.Context()
        sock = make_socket(ctx, "SUB", endpoint, bind=False, subscribe=f"frames/{self.stream}")
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                msg = protocol.decode(sock.recv_multipart())
                now = time.monotonic()
                if msg.kind != "frames" or now - t0 < self.warmup:
                    continue
                self.latencies_ms.append((time.time_ns() - msg.t_capture_ns) / 1e6)
                self.first = now if self.first is None else self.first
                self.last = now
        finally:
            sock.close(0)
            ctx.term()

    def result(self) -> dict:
        import numpy as np

        self._stop.set()
        self._thread.join(timeout=5)
        n = len(self.latencies_ms)
        if n < 2 or self.last is None or self.last <= self.first:
            return {"viewer_fps": None, "viewer_p99_ms": None}
        return {"viewer_fps": round((n - 1) / (self.last - self.first), 2),
                "viewer_p50_ms": round(float(np.percentile(self.latencies_ms, 50)), 1),
                "viewer_p99_ms": round(float(np.percentile(self.latencies_ms, 99)), 1)}


def thermal_footage(tmp: Path) -> tuple[dict, str]:
    """``--thermal``: the LLVIP sample's 12 real LWIR frames (``../shared/data/thermal``) as a
    640x512 camera (a common uncooled core), each frame held for a second, 25 fps, looped."""
    import cv2
    import numpy as np

    from tools.bench.clips import write_mjpg
    from tools.thermal_mil_lwir import DATA

    frames = sorted((DATA / "ir").glob("*.jpg"))
    if not frames:
        sys.exit(f"tools.bench_camera --thermal: no LLVIP sample at {DATA} (STREAMCAM_THERMAL_DATA)")
    held = (cv2.resize(cv2.imread(str(f)), (640, 512), interpolation=cv2.INTER_AREA) for f in frames for _ in range(25))
    out = write_mjpg(tmp / "llvip.avi", held, 25)
    # processor.silhouettes' plate from the first frame (a 15 s run never fills the live one): the
    # median of the first scene's frames, so that the second scene's are all foreground, the dearest case
    first = [cv2.resize(cv2.imread(str(f)), (640, 512), interpolation=cv2.INTER_AREA) for f in frames
             if f.name[:2] == frames[0].name[:2]]
    cv2.imwrite(str(tmp / "plate.png"), np.median(np.stack(first), axis=0).astype(np.uint8))
    return {"kind": "file", "uri": str(out), "width": 640, "height": 512, "fps": 25, "loop": True}, \
        f"the LLVIP sample's {len(frames)} LWIR frames as MJPG 640x512, each held 1 s, 25 fps, looped"


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
    ap.add_argument("--detect-fps", nargs="+", default=["config"],
                    help="processor.detect_fps values to run: frames/s through the network, 'none' (every "
                         "detect_every-th frame) or 'config' (the config's own; the default)")
    ap.add_argument("--model", help="default: the config's (engines/person-rgb.onnx; --thermal: engines/person-lwir.onnx)")
    ap.add_argument("--thermal", action="store_true",
                    help="configs/thermal.yaml on the LLVIP sample's real LWIR frames as a 640x512 camera")
    ap.add_argument("--silhouettes", choices=("plate", "off"), nargs="+", default=["plate"],
                    help="--thermal: processor.silhouettes with a plate from the first frame (streams[].plate), "
                         "or off (the peer of its cost)")
    ap.add_argument("--heatmap", choices=("on", "off", "both"), default="on",
                    help="publisher.heatmap: the CAM blended into each published frame, or boxes only")
    ap.add_argument("--out", help="write the results JSON here")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds before the stage CPU window opens")
    ap.add_argument("--no-cpu", dest="cpu", action="store_false", help="do not read the stages' CPU time")
    ap.add_argument("--no-viewer", dest="viewer", action="store_false",
                    help="nobody subscribes to the frames (the publisher then encodes none)")
    a = ap.parse_args(argv)
    config = ROOT / "configs" / ("thermal.yaml" if a.thermal else "camera.yaml")
    a.model = a.model or str(ROOT / "engines" / ("person-lwir.onnx" if a.thermal else "person-rgb.onnx"))
    heatmaps = {"on": [True], "off": [False], "both": [True, False]}[a.heatmap]
    meta = read_metadata(a.model)
    setup_logging("WARNING", "bench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source, what = (thermal_footage if a.thermal else footage)(Path(tmp))
        base = yaml.safe_load(config.read_text()).get("processor", {}).get("detect_fps")
        sils = a.silhouettes if a.thermal else ["off"]
        runs = [(t, e, h, None if d == "none" else (base if d == "config" else float(d)), sil)
                for d in a.detect_fps for e in a.detect_every for t in a.threads for h in heatmaps for sil in sils]
        for threads, every, heat, rate, sil in runs:
            if rate is not None and every > 1:  # a detect rate or every n-th frame, not both (the config refuses it)
                print(f"tools.bench_camera: detect_every {every} skipped with detect_fps {rate:g} "
                      "(add --detect-fps none to run it)", file=sys.stderr)
                continue
            overrides = {"processor.model": str(Path(a.model).resolve()), "processor.threads": threads,
                         "processor.detect_every": every, "processor.detect_fps": rate, "publisher.heatmap": heat,
                         "serve.enabled": False, "run.log_level": "WARNING", "run.run_dir": str(Path(tmp) / f"run{threads}-{every}-{rate}-{int(heat)}-{sil}"),
                         "endpoints.publish": "tcp://127.0.0.1:*"}
            doc = yaml.safe_load(config.read_text())
            doc["streams"][0]["source"] = source  # the camera, replaced by the recording
            if a.thermal:
                overrides["processor.silhouettes"] = sil == "plate"
                if sil == "plate":
                    doc["streams"][0]["plate"] = str(Path(tmp) / "plate.png")
            path = Path(tmp) / "camera.yaml"
            path.write_text(yaml.safe_dump(doc))
            cfg = load_config(path, overrides)
            load0 = os.getloadavg()[0]
            sup = Supervisor(cfg)
            cpu = StageCPU(sup, min(a.warmup, a.seconds / 3), a.seconds - 0.3) if a.cpu else None
            if cpu is not None:
                cpu.start()
            viewer = Viewer(cfg.run_dir, cfg.streams[0].id, min(a.warmup, a.seconds / 3)).start() if a.viewer else None
            summary = sup.run(a.seconds)
            st = next(iter(summary.get("streams", {}).values()), {})
            proc = summary.get("stages", {}).get("processor", {})
            row = {"threads": threads, "detect_every": every, "detect_fps": rate, "heatmap": heat,
                   **({"silhouettes": sil} if a.thermal else {}), "fps": st.get("fps"), "latency_ms_p50": st.get("latency_ms_p50"),
                   "latency_ms_p99": st.get("latency_ms_p99"), "published": st.get("published"),
                   "skipped": proc.get("skipped"), "engine_ms": proc.get("engine_ms_p50"),
                   "publisher_skipped": summary.get("stages", {}).get("publisher", {}).get("skipped"),
                   "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}
            if viewer is not None:
                row.update(viewer.result())
            if cpu is not None:
                row["cpu_ms_per_frame"] = cpu.result()
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"config {config.name}; source: {what}; model {Path(a.model).name}, input {meta.input_width}x{meta.input_height}")
    print("| processor threads | detect_every / detect_fps | heatmap | published fps | p50 ms | p99 ms | skipped (processor / publisher) | "
          "engine ms | viewer fps | viewer p99 ms | targets (>= 25 fps, p99 <= 150 ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = (r["fps"] or 0) >= TARGET_FPS and (r["latency_ms_p99"] or 1e9) <= TARGET_P99_MS

        def num(v, fmt="{:.1f}"):
            return "" if v is None else fmt.format(v)

        rate = f"{r['detect_fps']:g} fps" if r.get("detect_fps") else r["detect_every"]
        rate = f"{rate}, silhouettes {r['silhouettes']}" if "silhouettes" in r else rate
        print(f"| {r['threads']} | {rate} | {'on' if r['heatmap'] else 'off'} | {num(r['fps'])} | "
              f"{num(r['latency_ms_p50'])} | {num(r['latency_ms_p99'])} | {r['skipped']} / {r.get('publisher_skipped')} | "
              f"{num(r['engine_ms'], '{:.0f}')} | {num(r.get('viewer_fps'))} | {num(r.get('viewer_p99_ms'))} | {'met' if ok else 'MISSED'} |")
    if any(r.get("cpu_ms_per_frame") for r in rows):
        print("\nCPU ms per published frame, per stage process (user + system, all threads); the processor's engine"
              " thread (preprocess, network, CAM, boxes) per frame through the network; page faults per frame:")
        names = sorted({k for r in rows for k in r.get("cpu_ms_per_frame", {}) if not k.startswith("_")})
        print("| threads | detect_every | heatmap | " + " | ".join(names) + " | total | processor engine thread ms "
              "per detection | detected / published | page faults per frame (" + ", ".join(names) + ") | load before / after |")
        print("|---|---|---|" + "---|" * len(names) + "---|---|---|---|---|")
        for r in rows:
            c = r.get("cpu_ms_per_frame", {})
            vals = [c.get(n) for n in names]
            tot = sum(v for v in vals if v is not None)
            det, n = c.get("_detected") or 0, c.get("_frames") or 0
            eng = c.get("_busiest_thread", {}).get("processor")
            per_det = f"{eng * n / det:.1f}" if eng is not None and det else ""
            print(f"| {r['threads']} | {r['detect_every']} | {'on' if r['heatmap'] else 'off'} | "
                  + " | ".join("" if v is None else f"{v:.1f}" for v in vals)
                  + f" | {tot:.1f} | {per_det} | {det} / {n} | "
                  + ", ".join(f"{c.get('_faults', {}).get(k, float('nan')):.0f}" for k in names)
                  + f" | {r['load_before']} / {r['load_after']} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"source": what, "input": [meta.input_width, meta.input_height],
                                           "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
