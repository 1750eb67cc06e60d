"""Why the events benchmark's pairs fail: every unpaired event and missed entry, explained.

    python -m tools.explain_events [--clips 5] [--clip-frames 600] --cache /tmp/ev_cache

Runs the quality part of :mod:`tools.bench_events` (same clips, cache, lifecycle settings and
pairing) and prints, per clip, one line per detected event and per ground-truth entry: frames,
track ids, where it started, what it was paired with, and for the unpaired ones what they
overlapped instead (which ground-truth persons, which confusers). Each unpaired event and missed
entry gets a class (``split``, ``merged``, ``confuser``, ``edge`` ...) and the totals per class
are printed at the end: the classified numbers behind ``docs/benchmarks.md`` ("Events").
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from streamcam.events.config import EventsConfig
from streamcam.events.lifecycle import EventTracker, _iou

from .bench_events import QUALITY_ZONE, _clip_frames, _hit, event_overlap, quality_config

W, H = 640, 480


def run_events(frames_dets, cfg: EventsConfig) -> list[dict[str, Any]]:
    """Like bench_events._events, keeping the track id of every frame too."""
    tr = EventTracker("q", cfg, (QUALITY_ZONE,))
    got: dict[str, dict[str, Any]] = {}
    n = len(frames_dets)
    for i, dets in enumerate(frames_dets + [[]] * (cfg.lost_frames + 2)):
        for e in tr.update(dets, int(i * 1e9 / 10), i, W, H).events:
            rec = got.setdefault(e["id"], {"id": e["id"], "new": i, "end": None, "boxes": {}, "tids": {}})
            if e["type"] == "end":
                rec["end"] = min(i, n - 1)
        for ev in tr.open_events:
            if ev.id in got and ev.last_seen_ns == int(i * 1e9 / 10):
                got[ev.id]["boxes"][i] = ev.box
                got[ev.id]["tids"][i] = ev.track_id
    for e in tr.close(int(n * 1e8)).events:
        if got[e["id"]]["end"] is None:
            got[e["id"]]["end"] = n - 1
    return list(got.values())


def _scene_objects(seed: int, n: int) -> list[list[tuple[str, int, tuple]]]:
    from streamcam.datasets.synthetic import SyntheticIRScene

    scene = SyntheticIRScene(W, H, seed=seed, people=3, confusers=3, fps=10)
    return [[(o.label, int(o.id), tuple(map(float, o.box))) for o in scene.frame(i).objects] for i in range(n)]


def _fmt_box(b) -> str:
    return "(" + ",".join(f"{v:.0f}" for v in b) + ")" if b is not None else "-"


def _tid_runs(tids: dict[int, int]) -> str:
    out, last = [], None
    for f in sorted(tids):
        if tids[f] != last:
            out.append(f"{tids[f]}@{f}")
            last = tids[f]
    return " ".join(out)


def _entry_line(kind: str, i: int, e: dict[str, Any], ids: str) -> str:
    """One event's (or ground-truth entry's) heading: its frames, the ids it carried, its first box."""
    f0 = min(e["boxes"])
    return (f"  {kind:<3} {i:2d} frames {f0}-{max(e['boxes'])} ({len(e['boxes'])}) {ids} {_tid_runs(e['tids'])} "
            f"first {_fmt_box(e['boxes'][f0])}")


def explain(clips: int, clip_frames: int, model: str, cache: str | None, margin: int = 30,
            cfg: EventsConfig | None = None, verbose: bool = True) -> dict[str, Any]:
    from scipy.optimize import linear_sum_assignment

    cfg = cfg or quality_config()
    classes: Counter = Counter()
    tot = Counter()
    for c in range(clips):
        seed = 100 + c
        det_frames, gt_frames, _ = _clip_frames(seed, clip_frames, model, cache)
        objects = _scene_objects(seed, clip_frames)
        det, gt = run_events(det_frames, cfg), run_events(gt_frames, cfg)
        score = event_overlap(det, gt)
        pair: dict[int, int] = {}
        if score.size:
            for a, b in zip(*linear_sum_assignment(-score)):
                if score[a, b] >= 0.5:
                    pair[int(a)] = int(b)
        paired_gt = {b: a for a, b in pair.items()}
        scored = lambda e: margin <= e["new"] < clip_frames - margin  # noqa: E731
        if verbose:
            print(f"=== seed {seed}: {len(det)} events, {len(gt)} ground-truth entries")
        for a, e in enumerate(det):
            if not scored(e):
                continue
            tot["events"] += 1
            line = _entry_line("det", a, e, "tids")
            if a in pair:
                tot["paired_events"] += 1
                line += f" -> gt {pair[a]} ({score[a, pair[a]]:.2f})"
            else:
                # What did it overlap? Per frame, the objects its box hits.
                hits: Counter = Counter()
                for f, b in e["boxes"].items():
                    if f >= len(objects):
                        continue
                    for label, oid, ob in objects[f]:
                        if _hit(b, ob) or _iou(b, ob) >= 0.3:
                            hits[(label, oid)] += 1
                n = len(e["boxes"])
                best_gt = int(np.argmax(score[a])) if len(gt) else None
                overl = ", ".join(f"{lab}{oid}:{k}/{n}" for (lab, oid), k in hits.most_common(3)) or "nothing"
                people = [k for (lab, _), k in hits.items() if lab == "person"]
                others = [k for (lab, _), k in hits.items() if lab != "person"]
                if not hits:
                    why = "nothing"
                elif max(others, default=0) >= n / 2 and max(people, default=0) < n / 2:
                    why = "confuser"
                elif best_gt is not None and best_gt in paired_gt and score[a, best_gt] >= 0.5:
                    why = "split"  # its person's entry was paired with another event
                elif max(people, default=0) >= n / 2:
                    why = "person-not-entry"  # on a person, but on no ground-truth entry (zone/frames)
                else:
                    why = "partial"
                classes["extra:" + why] += 1
                line += (f" UNPAIRED [{why}] overlaps {overl}; best gt {best_gt} "
                         f"({score[a, best_gt] if best_gt is not None else 0:.2f})")
            if verbose:
                print(line)
        for b, g in enumerate(gt):
            if not scored(g):
                continue
            tot["truth"] += 1
            line = _entry_line("gt", b, g, "person")
            if b in paired_gt:
                tot["paired_truth"] += 1
                line += f" <- det {paired_gt[b]}"
            else:
                # Frames where any detection hits it; events that cover it.
                covered = sum(1 for f, gb in g["boxes"].items() if f < len(det_frames) and any(
                    _hit(d.box, gb) for d in det_frames[f]))
                cands = sorted(((score[a, b], a) for a in range(len(det)) if score[a, b] > 0), reverse=True)[:3]
                n = len(g["boxes"])
                box = g["boxes"][min(g["boxes"])]
                edge = any(g["boxes"][f][0] <= 1 or g["boxes"][f][2] >= W - 1 for f in g["boxes"])
                if covered < n / 2:
                    why = "edge-unboxed" if edge else "unboxed"
                elif cands and cands[0][0] >= 0.5 and cands[0][1] in pair:
                    why = "merged"  # an event that covers it was paired with another entry
                elif cands and cands[0][0] >= 0.5:
                    why = "assignment"
                else:
                    why = "poor-overlap"
                classes["miss:" + why] += 1
                line += (f" MISSED [{why}] boxed in {covered}/{n} frames; events " +
                         ", ".join(f"det {a} ({s:.2f}{'*' if a in pair else ''})" for s, a in cands) +
                         f"; box {_fmt_box(box)}")
            if verbose:
                print(line)
    out = {"precision": round(tot["paired_events"] / tot["events"], 3) if tot["events"] else None,
           "recall": round(tot["paired_truth"] / tot["truth"], 3) if tot["truth"] else None,
           **dict(tot), "classes": dict(sorted(classes.items()))}
    if verbose:
        print(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--clip-frames", type=int, default=600)
    ap.add_argument("--model", default="engines/person-ir.onnx")
    ap.add_argument("--cache")
    args = ap.parse_args(argv)
    explain(args.clips, args.clip_frames, args.model, args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
