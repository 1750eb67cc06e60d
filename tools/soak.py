"""Soak test: run a pipeline for minutes, under attack, and check it stays flat.

    python tools/soak.py [--config configs/default.yaml] [--minutes 10] [--out docs/reliability-soak.json]
                         [--hostile-rate 100] [--overload 2] [--kill-every 60]

Samples every stage's RSS, the capture→publish latency per window and every frame
counter, then checks: RSS of each stage flat within 5 % (after a warm-up, and away from
its restarts), latency p99 flat (last window ≤ 1.5 × first window + 10 ms), and every
captured frame accounted for: published (counted by this tool's own subscriber),
skipped by the newest-frame policy, dropped at a full queue, failed in a stage (all
counted), in flight at the end, or lost with a killed stage (what its queues held and
what it counted in its last second before the SIGKILL: bounded per kill, reported).

* ``--hostile-rate``: ``tools/hostile.py``'s rejected cases at the frames and results
  endpoints, messages/s per endpoint, for the whole run; each must be counted as a reject.
* ``--overload``: the sources run at this many times their configured frame rate.
* ``--kill-every``: SIGKILL the processor and the publisher in turn this often; the
  supervisor restarts them. (The capture stage is kept: its counters are the ground truth.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
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
    ap.add_argument("--hostile-rate", type=float, default=0.0, help="hostile messages/s per endpoint (0: none)")
    ap.add_argument("--overload", type=float, default=1.0, help="source frame rate multiplier")
    ap.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL a stage this often, s (0: never)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, {"serve.enabled": False, "record.enabled": False, "run.log_level": "WARNING",
                                    "name": "soak"})
    if args.overload != 1.0:
        cfg = dataclasses.replace(cfg, streams=tuple(
            dataclasses.replace(s, source=dataclasses.replace(s.source, fps=s.source.fps * args.overload))
            for s in cfg.streams))
    sup = Supervisor(cfg)
    duration = args.minutes * 60.0
    th = threading.Thread(target=lambda: setattr(sup, "result", sup.run(duration)), daemon=True)
    th.start()
    t0 = time.monotonic()
    stop = threading.Event()
    received = {s.id: 0 for s in cfg.streams}
    watcher = threading.Thread(target=_count_published, args=(cfg.endpoint("publish"), received, stop), daemon=True)
    watcher.start()
    sent: dict = {}
    attacker = None
    if args.hostile_rate > 0:
        from tools import hostile

        eps = {"frames": cfg.endpoint("frames"), "results": cfg.endpoint("results")}
        attacker = threading.Thread(target=lambda: (time.sleep(5.0), sent.update(hostile.attack(
            eps, duration - 10.0, args.hostile_rate, only=lambda c: c.reason is not None))), daemon=True)
        attacker.start()
    counters = Counters()
    samples: list[dict] = []
    kills: list[dict] = []
    victims = ["processor", "publisher"]
    next_sample = next_kill = 0.0
    if args.kill_every > 0:
        next_kill = args.warmup + args.kill_every / 2
    while th.is_alive():
        time.sleep(0.25)
        now = time.monotonic() - t0
        counters.update(read_stats(cfg.run_dir))
        if args.kill_every > 0 and now >= next_kill and now < duration - 15:
            name = victims[len(kills) % len(victims)]
            child = next((c for c in sup.children if c.name == name and c.proc is not None), None)
            if child is not None and child.proc.poll() is None:
                os.kill(child.proc.pid, signal.SIGKILL)
                kills.append({"t": round(now, 1), "stage": name})
            next_kill += args.kill_every
        if now < next_sample:
            continue
        next_sample = now + args.sample
        row = {"t": round(now, 1)}
        for c in sup.children:
            if c.proc is not None and c.proc.poll() is None:
                row[c.name] = rss_mb(c.proc.pid)
        samples.append(row)
        print(f"\rsoak: {row['t']:.0f}/{duration:.0f} s  kills {len(kills)}  " +
              "  ".join(f"{k} {v:.0f} MB" for k, v in row.items() if k != "t" and v), end="", file=sys.stderr)
    th.join()
    stop.set()
    watcher.join(2)
    if attacker is not None:
        attacker.join(15)
    print(file=sys.stderr)
    summary = getattr(sup, "result", {})
    counters.update(read_stats(cfg.run_dir))
    stats = counters.totals()

    # RSS: flat within 5 % after warm-up (median of the first and last minute).
    rss = {}
    ok = True
    stages = sorted({k for s in samples for k in s if k != "t"})
    for st in stages:
        # A restarted stage warms up again: its samples within 30 s of a kill are left out.
        killed = [k["t"] for k in kills if k["stage"] == st]
        series = [(s["t"], s[st]) for s in samples if s.get(st) and not any(0 <= s["t"] - k < 30 for k in killed)]
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
    fps = max(s.source.fps for s in cfg.streams)
    per_kill = int(fps * 1.0) + 16  # the last second of counts a SIGKILL takes + what the queues held
    for s in cfg.streams:
        cap = stats.get(f"capture-{s.id}", {})
        published = received[s.id]
        captured, dropped_cap = cap.get("captured", 0), cap.get("dropped", 0)
        skipped = proc.get("skipped", 0) + pub.get("skipped", 0)
        dropped_proc = proc.get("dropped", 0)
        failed = proc.get("failed", 0) + pub.get("failed", 0)
        explained = published + skipped + dropped_cap + dropped_proc + failed
        residual = captured - explained
        bound = 8 + per_kill * len(kills)
        accounting[s.id] = {"captured": captured, "published": published, "skipped_newest_frame": skipped,
                            "dropped_at_capture": dropped_cap, "dropped_at_processor": dropped_proc,
                            "failed_in_a_stage": failed,
                            "in_flight_or_lost_with_a_killed_stage": residual, "bound": bound,
                            "ok": bool(0 <= residual <= bound)}
        ok &= accounting[s.id]["ok"]
    # The hostile client's messages: every one counted as a reject, under its reason.
    hostile_out = {}
    if sent:
        for ep, stage in (("frames", "processor"), ("results", "publisher")):
            want = dict(hostile.iter_reasons(sent, ep))
            got = stats.get(stage, {}).get("rejected_by_reason", {})
            hostile_out[stage] = {"sent": sum(want.values()), "rejected": sum(got.values()), "by_reason": got,
                                  "sent_by_reason": want}
        # A SIGKILL loses a stage's last second of counts: rejects are checked to that bound too.
        lost = sum(1 for _ in kills) * int(args.hostile_rate * 1.0 + 64)
        hostile_ok = all(0 <= v["sent"] - v["rejected"] <= lost for v in hostile_out.values())
        hostile_out["ok"] = bool(hostile_ok)
        ok &= hostile_ok

    rate_in = sum(stats.get(f"capture-{s.id}", {}).get("captured", 0) for s in cfg.streams)
    rate_out = sum(received.values())
    result = {"config": os.path.relpath(args.config) if not os.path.relpath(args.config).startswith("..") else args.config,
              "minutes": args.minutes, "overload": args.overload,
              "offered_over_published": round(rate_in / rate_out, 2) if rate_out else None,
              "hostile_rate": args.hostile_rate, "kills": kills, "rss": rss, "latency": latency,
              "frames": accounting, "hostile": hostile_out, "restarts": summary.get("restarts", {}), "pass": bool(ok)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if ok else 1


def _count_published(endpoint: str, received: dict, stop: threading.Event) -> None:
    """Count ``detections/<id>`` as a subscriber sees them: the published figure no SIGKILL can lose."""
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100000)
    sub.setsockopt(zmq.SUBSCRIBE, b"detections/")
    sub.connect(endpoint)
    try:
        while not stop.is_set():
            if sub.poll(200):
                topic = sub.recv_multipart()[0].decode(errors="replace")
                sid = topic.split("/", 1)[-1]
                if sid in received:
                    received[sid] += 1
    finally:
        sub.close(0)
        ctx.term()


class Counters:
    """Stage counters summed across restarts: a restarted stage starts again from 0."""

    KEYS = {"processor": ("skipped", "dropped", "processed"), "publisher": ("skipped",)}

    def __init__(self) -> None:
        self.base: dict = {}
        self.last: dict = {}
        self.capture: dict = {}

    def _add(self, key: tuple, value: int) -> None:
        if value < self.last.get(key, 0):  # the stage restarted: keep what it had counted
            self.base[key] = self.base.get(key, 0) + self.last[key]
        self.last[key] = value

    def update(self, stats: dict) -> None:
        for stage, keys in self.KEYS.items():
            st = stats.get(stage)
            if not st:
                continue
            for k in keys:
                self._add((stage, k), int(st.get(k, 0)))
            for k in ("rejected", "failed"):
                for reason, n in (st.get(k) or {}).items():
                    self._add((stage, k, reason), int(n))
        for name, st in stats.items():
            if name.startswith("capture-"):
                self.capture[name] = st

    def total(self, key: tuple) -> int:
        return self.base.get(key, 0) + self.last.get(key, 0)

    def totals(self) -> dict:
        out: dict = dict(self.capture)
        for stage, keys in self.KEYS.items():
            d = {k: self.total((stage, k)) for k in keys}
            for kind in ("rejected", "failed"):
                by = {key[2]: self.total(key) for key in self.last if key[0] == stage and key[1] == kind}
                d[kind] = sum(by.values())
                d[f"{kind}_by_reason"] = by
            out[stage] = d
        return out


if __name__ == "__main__":
    raise SystemExit(main())
