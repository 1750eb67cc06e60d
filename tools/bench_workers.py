"""Scale-out across two "hosts": detection workers in two network namespaces vs one, and failover.

    sudo python -m tools.bench_workers [--seconds 8] [--streams 2] [--fps 60] [--model-k 2048]

Host A (a namespace) runs ``streamcam run`` scaled out: captures, the dispatcher, the stabilizer,
the publisher and one worker; host B (another namespace, joined by a veth pair, tcp between them)
runs a second ``streamcam process``. The worker is made the bottleneck: small synthetic frames
(cheap to capture, annotate and encode) through a wide GAP net (``--model-k`` feature channels at
320x240, one engine thread), offered faster than one worker can detect. Printed, measured in the
same run: frames detected per second with one worker, then with both (the ratio), and, after the
remote worker is SIGKILLed, the longest gap between published frames (the failover time) and the
frames lost. Both workers compete with the other stages (and on a shared machine, with everything
else) for the CPU cores: with 2 cores the ratio cannot reach 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streamcam.lifecycle import terminate

ROOT = Path(__file__).resolve().parents[1]


def heavy_model(path: Path, k: int) -> Path:
    """A 3-layer GAP net (the tests' tiny net) widened to ``k`` feature channels at 320x240."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny_model import make_tiny_gap_onnx

    make_tiny_gap_onnx(str(path), width=320, height=240, k=k)
    return path


def scaleout_config(folder: Path, host: str, model: Path, streams: int, width: int, height: int, fps: float,
                    port: int = 5701) -> Path:
    """A config whose workers reach the dispatcher and the stabilizer over tcp on ``host``."""
    import yaml

    cfg = {
        "name": "scaleout",
        "streams": [{"id": f"s{i}", "source": {"kind": "synthetic", "width": width, "height": height, "fps": fps,
                                               "seed": 7 + i}} for i in range(streams)],
        "processor": {"model": str(model), "workers": 1, "scale_out": True, "threads": 1},
        "endpoints": {"work": f"tcp://{host}:{port}", "detected": f"tcp://{host}:{port + 1}",
                      "publish": f"tcp://127.0.0.1:{port + 2}"},
        "security": {"allow_remote_bind": True},
        "serve": {"enabled": False},
        "run": {"run_dir": str(folder / "run")},
    }
    path = folder / "scaleout.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def stats(run_dir: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "stats" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot (/proc/stat): how busy the machine was, all processes."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def detected_rate(run_dir: Path, seconds: float) -> tuple[float, dict[str, int], float]:
    """Frames detected per second (results the stabilizer received) over ``seconds``, per worker, and
    the fraction of the machine's CPU time that was busy meanwhile (every process, not only ours)."""
    s0 = stats(run_dir, "stabilizer")
    c0 = _cpu_ticks()
    t0 = time.monotonic()
    time.sleep(seconds)
    s1 = stats(run_dir, "stabilizer")
    c1 = _cpu_ticks()
    dt = time.monotonic() - t0
    per = {w: n - s0.get("workers", {}).get(w, 0) for w, n in s1.get("workers", {}).items()}
    busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1])
    return (s1["received"] - s0["received"]) / dt, per, round(busy, 3)


def published_times(run_dir: Path) -> list[tuple[float, str, int]]:
    """(publish time s, stream, seq) of every published frame, from the publisher's frame logs."""
    out = []
    for f in (run_dir / "stats").glob("frames-*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # the line being written
            out.append((r["t_capture_ns"] / 1e9 + r["latency_ms"] / 1e3, f.stem[len("frames-"):], r["seq"]))
    return sorted(out)


def failover(run_dir: Path, t_kill: float, after_s: float) -> dict[str, float]:
    """The longest gap between published frames from just before the kill to ``after_s`` after it,
    beside the longest in the same span before it."""
    times = published_times(run_dir)

    def longest(lo: float, hi: float) -> tuple[float, float]:
        ts = [t for t, _, _ in times if lo <= t <= hi]
        return max(((b - a, a) for a, b in zip(ts, ts[1:])), default=(float("nan"), float("nan")))

    gap, at = longest(t_kill - 0.5, t_kill + after_s)
    return {"gap_after_kill_s": round(gap, 3), "gap_starts_s_after_kill": round(at - t_kill, 3),
            "gap_before_kill_s": round(longest(t_kill - 0.5 - after_s, t_kill - 0.5)[0], 3)}

def run(seconds: float = 8.0, streams: int = 2, fps: float = 60.0, width: int = 160, height: int = 120,
        model_k: int = 2048, model: Path | None = None, python: str = sys.executable) -> dict[str, Any]:
    """One measurement: one worker, then two, then the remote one SIGKILLed. Needs root (namespaces)."""
    from tools.netns import two_hosts

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp, two_hosts() as (a, b):
        folder = Path(tmp)
        model = model or heavy_model(folder / "wide.onnx", model_k)
        cfg = scaleout_config(folder, a.address, model, streams, width, height, fps)
        run_dir = folder / "run"
        sup = a.popen([python, "-m", "streamcam", "run", str(cfg)], cwd=ROOT, env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remote = None
        try:
            wait_for(lambda: stats(run_dir, "stabilizer").get("received", 0) > 10, 90, "host A's first results")
            time.sleep(2.0)
            one, one_per, one_busy = detected_rate(run_dir, seconds)
            remote = b.popen([python, "-m", "streamcam", "process", str(cfg), "--name", "remote"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: stats(run_dir, "stabilizer").get("workers", {}).get("remote", 0) > 10, 90,
                     "host B's worker's first results")
            time.sleep(2.0)
            two, two_per, two_busy = detected_rate(run_dir, seconds)
            t_kill = time.time()
            remote.send_signal(signal.SIGKILL)
            remote.wait(10)
            after = 4.0
            time.sleep(after + 1.0)
            lone, lone_per, _ = detected_rate(run_dir, min(seconds, 4.0))
            st = stats(run_dir, "stabilizer")
            published = stats(run_dir, "publisher").get("streams", {})
        finally:
            if remote is not None and remote.poll() is None:
                remote.kill()
            terminate(sup, 15)
        fo = failover(run_dir, t_kill, after)  # the publisher's frame logs are complete once it stopped
        return {
            "streams": streams, "fps_offered_per_stream": fps, "frame": [width, height], "model_k": model_k,
            "detected_fps_one_worker": round(one, 2), "per_worker_one": one_per, "cpu_busy_one": one_busy,
            "detected_fps_two_workers": round(two, 2), "per_worker_two": two_per, "cpu_busy_two": two_busy,
            "ratio": round(two / one, 3) if one else float("nan"),
            "detected_fps_after_kill": round(lone, 2), "per_worker_after_kill": lone_per,
            **fo, "received": st.get("received"), "late_dropped": st.get("late"),
            # capture -> publish over the whole run, per stream: a backlog anywhere shows here
            "latency_ms_p50": {sid: v.get("latency_ms_p50") for sid, v in sorted(published.items())},
            "latency_ms_p99": {sid: v.get("latency_ms_p99") for sid, v in sorted(published.items())},
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="each measurement window")
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--fps", type=float, default=60.0, help="frames/s offered per stream")
    ap.add_argument("--model-k", type=int, default=2048, help="feature channels of the wide net (its cost)")
    ap.add_argument("--out", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    from tools.netns import unavailable

    why = unavailable()
    if why:
        print(f"bench_workers: {why}", file=sys.stderr)
        return 2
    res = run(args.seconds, args.streams, args.fps, model_k=args.model_k)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
