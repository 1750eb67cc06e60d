"""`streamcam report RUN_DIR`: plots of a run from what its stages recorded.

Reads ``RUN_DIR/stats/frames-<stream>.jsonl`` (one line per published frame) and,
when present, ``RUN_DIR/eval.json`` (a localization threshold sweep), and writes
PNGs to ``RUN_DIR/report/``: latency histogram, fps over time, track timeline,
CAM threshold vs localization accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _load_frames(run_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for f in sorted((run_dir / "stats").glob("frames-*.jsonl")):
        rows = []
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill: the rest of the run still counts
        out[f.stem[len("frames-"):]] = rows
    return out


def _matplotlib():
    """matplotlib (the ``report`` extra), or one error saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        from .errors import BackendUnavailable

        raise BackendUnavailable("the plots need matplotlib, which the base install leaves out: "
                                 "pip install 'streamcam[report]'") from None
    return matplotlib


def make_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[str]:
    """Plot a run's latency, fps and track timeline into ``RUN_DIR/report`` (needs the ``report`` extra)."""
    matplotlib = _matplotlib()

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    streams = _load_frames(run_dir)
    if not streams:
        from .errors import StreamcamError

        raise StreamcamError(f"{run_dir}: no stats/frames-*.jsonl (was it made by `streamcam run` or `demo`?)")
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for sid, rows in streams.items():
        lat = np.array([r["latency_ms"] for r in rows])
        ax.hist(lat, bins=50, alpha=0.6, label=f"{sid}: p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")
    written.append(_finish(fig, ax, "capture → publish latency (ms)", "frames", "Latency", out / "latency_hist.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for sid, rows in streams.items():
        t = np.array([r["t_capture_ns"] for r in rows], np.float64) / 1e9
        if len(t) < 2:
            continue
        t -= t[0]
        bins = np.arange(0, t[-1] + 1.0, 1.0)
        counts, edges = np.histogram(t, bins=bins)
        ax.plot(edges[:-1], counts, marker=".", label=sid)
    written.append(_finish(fig, ax, "time (s)", "published frames / s", "Frame rate over time", out / "fps.png"))

    fig, ax = plt.subplots(figsize=(8, 4))
    tracked = False
    for sid, rows in streams.items():
        spans: dict[int, list[int]] = {}
        for r in rows:
            for tid in r.get("tracks", []):
                spans.setdefault(tid, []).append(r["seq"])
        for row, (tid, seqs) in enumerate(sorted(spans.items())):
            tracked = True
            seqs = np.array(sorted(seqs))
            # Runs of consecutive published frames become one bar.
            breaks = np.where(np.diff(seqs) > 3)[0]
            starts = np.r_[seqs[0], seqs[breaks + 1]]
            ends = np.r_[seqs[breaks], seqs[-1]]
            ax.broken_barh([(s, max(e - s, 1)) for s, e in zip(starts, ends)], (row - 0.4, 0.8))
        if spans:
            ax.set_yticks(range(len(spans)), labels=[f"#{tid}" for tid in sorted(spans)])
        else:
            seq = [r["seq"] for r in rows]
            ax.step(seq, [r["n"] for r in rows], where="post", label=f"{sid}: detections per frame (no track ids)")
    ax.set_xlabel("frame (seq)")
    ax.set_ylabel("track" if tracked else "detections")
    ax.set_title("Track timeline" if tracked else "Detections over time (tracking off)")
    if not tracked:
        ax.legend()
    written.append(_save(fig, out / "tracks.png"))

    ev = run_dir / "eval.json"
    if ev.is_file():
        data = json.loads(ev.read_text())
        curve = data.get("threshold_curve") or {}
        if curve:
            fig, ax = plt.subplots(figsize=(6, 4))
            th = [float(k) for k in curve]
            ax.plot(th, [curve[k] for k in curve], marker="o")
            ax.axvline(data["cam_threshold"], color="k", ls="--", label=f"operating point {data['cam_threshold']:.2f}")
            ax.set_xlabel("CAM threshold (fraction of the map's maximum)")
            ax.set_ylabel("localization accuracy (IoU ≥ 0.5)")
            ax.set_title(f"CAM threshold vs localization (MaxBoxAcc {data.get('max_box_acc')})")
            ax.legend()
            written.append(_save(fig, out / "cam_threshold.png"))
    return written


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Path) -> str:
    """Label a plot with its legend and save it (what every figure of the report ends with)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)
