"""Soak test: run a pipeline for minutes and check it stays flat.

    python tools/soak.py [--config configs/default.yaml] [--minutes 5] [--out docs/reliability-soak.json]

Samples every stage's RSS, the capture→publish latency per window and every frame
counter, then checks: RSS of each stage flat within 5 % (after a warm-up), latency
p99 flat (last window ≤ 1.5 × first window + 10 ms), and zero unexplained drops —
every captured frame is accounted for as published, skipped by the newest-frame
policy, dropped at a full queue (counted), or in flight at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    from streamcam.config import load_config
    from streamcam.stats import read_stats
    from streamcam.supervisor import Supervisor

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before the RSS baseline is taken")
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability-soak.json"))
    args = ap.parse_args(argv)

    cfg = load_config(args.config, {"serve.enabled": False, "record.enabled": False, "run.log_level": "WARNING",
                                    "name": "soak"})
    sup = Supervisor(cfg)
    duration = args.minutes * 60.0
    th = threading.Thread(target=lambda: setattr(sup, "result", sup.run(duration)), daemon=True)
    th.start()
    t0 = time.monotonic()
    samples: list[dict] = []
    while th.is_alive():
        time.sleep(args.sample)
        row = {"t": round(time.monotonic() - t0, 1)}
        for c in sup.children:
            if c.proc is not None and c.proc.poll() is None:
                row[c.name] = rss_mb(c.proc.pid)
        samples.append(row)
        print(f"\rsoak: {row['t']:.0f}/{duration:.0f} s  " +
              "  ".join(f"{k} {v:.0f} MB" for k, v in row.items() if k != "t" and v), end="", file=sys.stderr)
    th.join()
    print(file=sys.stderr)
    summary = getattr(sup, "result", {})
    stats = read_stats(cfg.run_dir)

    # RSS: flat within 5 % after warm-up (median of the first and last minute).
    rss = {}
    ok = True
    stages = sorted({k for s in samples for k in s if k != "t"})
    for st in stages:
        series = [(s["t"], s[st]) for s in samples if s.get(st)]
        base = [v for t, v in series if args.warmup <= t <= args.warmup + 60]
        last = [v for t, v in series if t >= series[-1][0] - 60]
        if not base or not last:
            continue
        growth = np.median(last) / np.median(base) - 1.0
        rss[st] = {"start_mb": round(float(np.median(base)), 1), "end_mb": round(float(np.median(last)), 1),
                   "growth": round(float(growth), 4), "flat": bool(abs(growth) <= 0.05)}
        ok &= rss[st]["flat"]

    # Latency: p99 per minute from the per-frame log.
    latency = {}
    for f in sorted((cfg.run_dir / "stats").glob("frames-*.jsonl")):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip().endswith("}")]
        t = np.array([r["t_capture_ns"] for r in rows], np.float64) / 1e9
        lat = np.array([r["latency_ms"] for r in rows])
        t -= t[0]
        windows = [lat[(t >= a) & (t < a + 60)] for a in np.arange(args.warmup, t[-1], 60.0)]
        p99 = [round(float(np.percentile(w, 99)), 1) for w in windows if len(w) > 10]
        flat = bool(p99 and p99[-1] <= 1.5 * p99[0] + 10.0)
        latency[f.stem[len("frames-"):]] = {"p99_per_minute_ms": p99, "flat": flat, "frames": len(rows)}
        ok &= flat

    # Drops: every captured frame accounted for.
    accounting = {}
    proc = stats.get("processor", {})
    pub = stats.get("publisher", {})
    for s in cfg.streams:
        cap = stats.get(f"capture-{s.id}", {})
        published = pub.get("streams", {}).get(s.id, {}).get("published", 0)
        captured, dropped_cap = cap.get("captured", 0), cap.get("dropped", 0)
        skipped = proc.get("skipped", 0) + pub.get("skipped", 0)
        dropped_proc = proc.get("dropped", 0)
        rejected = sum(proc.get("rejected", {}).values()) + sum(pub.get("rejected", {}).values())
        explained = published + skipped + dropped_cap + dropped_proc + rejected
        in_flight = captured - explained
        accounting[s.id] = {"captured": captured, "published": published, "skipped_newest_frame": skipped,
                            "dropped_at_capture": dropped_cap, "dropped_at_processor": dropped_proc,
                            "rejected": rejected, "unexplained": in_flight,
                            "ok": bool(0 <= in_flight <= 8)}  # a few frames are in flight when the run stops
        ok &= accounting[s.id]["ok"]

    result = {"config": os.path.relpath(args.config) if not os.path.relpath(args.config).startswith("..") else args.config, "minutes": args.minutes, "rss": rss, "latency": latency,
              "frames": accounting, "restarts": summary.get("restarts", {}), "pass": bool(ok)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
