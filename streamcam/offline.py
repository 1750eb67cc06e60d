"""`streamcam detect`, offline: a recorded video through the live processing code, as fast as possible.

(The live per-frame detector this drives is :mod:`streamcam.processor.detector`; this module is
the batch job around it: read a file, detect every frame, write JSON lines and an annotated MP4.)

Decoding runs in a thread ahead of the network (bounded queue, so memory stays flat)
while the main thread runs the same :class:`Detector` the live processor uses. One
JSON line per frame: the same detection objects as the ``detections`` topic, plus the
frame's class probabilities (``"probs": {class: p}``). With ``video`` the frames are also
written annotated as the publisher draws them (heatmap, trails, boxes, ids) to an MP4.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

from .config import PipelineConfig
from .errors import SourceError
from .protocol import detections_record


def open_offline_source(spec: str, cfg: PipelineConfig):
    """A source for ``detect``: a video file, an image folder, a thermal sequence, or ``synthetic:N``."""
    from .capture.sources import ImageFolderSource, OpenCVSource, SyntheticSource, ThermalSequenceSource

    if spec.startswith("synthetic"):
        src = cfg.streams[0].source
        return SyntheticSource(src.width, src.height, src.seed, src.people, src.confusers, src.fps)
    from .capture.indexed import recording_kind

    try:
        kind = recording_kind(spec)
    except SourceError:
        raise SourceError(f"detect: {spec} does not exist (expected a video file, folder, or synthetic:N)") from None
    if kind == "thermal":
        return ThermalSequenceSource(spec, None, loop=False)
    if kind == "images":
        return ImageFolderSource(spec, None, loop=False)
    return OpenCVSource(spec, loop=False)


def detect_config_name(spec: str) -> str:
    """The shipped config ``streamcam detect`` runs when none is given: a real thermal recording (a
    .npy/TIFF sequence, or a video or image folder whose first frame is grey) goes to
    ``thermal.yaml``, other real footage to ``camera.yaml``, ``synthetic:N`` to ``default.yaml`` (the
    synthetic scene's own model). A file that cannot be read is left to the detect, which names it."""
    import cv2

    from .capture.frames import IMAGE_SUFFIXES, is_grey
    from .capture.indexed import recording_kind
    from .capture.sequences import list_files

    if spec.startswith("synthetic"):
        return "default.yaml"
    try:
        kind = recording_kind(spec)
    except SourceError:
        return "default.yaml"
    if kind == "thermal":
        return "thermal.yaml"
    image = None
    if kind == "images":
        first = next(iter(list_files(spec, IMAGE_SUFFIXES)), None)
        image = cv2.imread(first, cv2.IMREAD_UNCHANGED) if first else None
    else:  # only the first frame: opening the recording for random access would also seek to its end
        cap = cv2.VideoCapture(spec)
        ok, image = cap.read()
        cap.release()
        image = image if ok else None
    if image is None:
        return "default.yaml"
    # a grey video decoded through YUV comes back as three channels equal to a few levels
    return "thermal.yaml" if is_grey(image, tolerance=8) else "camera.yaml"


def _limit_of(spec: str, limit: int | None) -> int | None:
    if spec.startswith("synthetic:"):
        n = int(spec.split(":", 1)[1])
        return n if limit is None else min(n, limit)
    if spec == "synthetic" and limit is None:
        return 300
    return limit


def _annotated(cfg: PipelineConfig, image, result, tracks, stream: str):
    from .publisher.annotate import annotate

    blended = getattr(result, "blended", None)  # a GPU frame path has blended the heatmap already
    if blended is not None:
        return annotate(blended, None, result.detections, heatmap=False, stream=stream, tracks=tracks)
    return annotate(image, result.cam, result.detections, heatmap=cfg.publisher.heatmap, alpha=cfg.publisher.alpha,
                    stream=stream, tracks=tracks)


def detect_file(cfg: PipelineConfig, spec: str, out_path: str, limit: int | None = None, progress: bool = True,
                video: str | None = None) -> dict[str, Any]:
    from .processor.stage import build_stabilized_detector, seed_plate
    from .video import H264Writer

    stabilized = build_stabilized_detector(cfg)
    detector = stabilized.detector
    source = open_offline_source(spec, cfg)
    limit = _limit_of(spec, limit)
    frames: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()
    error: list[BaseException] = []

    def reader() -> None:
        n = 0
        try:
            while not stop.is_set() and (limit is None or n < limit):
                f = source.read()
                if f is None:
                    break
                while not stop.is_set():
                    try:
                        frames.put(f, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                n += 1
        except BaseException as exc:  # handed to the main thread, re-raised there
            error.append(exc)
        finally:
            frames.put(None)

    t = threading.Thread(target=reader, name="detect-reader", daemon=True)
    t0 = time.perf_counter()
    t.start()
    fps = getattr(source, "fps", None) or cfg.streams[0].source.fps
    stream = os.path.splitext(os.path.basename(spec.rstrip("/")))[0] or "file"
    stream = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stream)[:64]
    seed_plate(cfg, detector, 0, stream)
    classes = list(detector.meta.classes)
    writer = H264Writer(video) if video else None
    n = n_det = 0
    try:
        with open(out_path, "w") as out:
            while True:
                f = frames.get()
                if f is None:
                    break
                # Offline, time is the media's: frames arrive faster than real time, and the
                # stabilizer's motion model works in seconds of the scene, not of the decoder.
                t_ns = int(f.index * 1e9 / fps)
                r, tracks = stabilized.process(stream, f.image, f.pixel_format, t_ns)
                h, w = f.image.shape[:2]
                rec = detections_record(stream, n, t_ns, w, h, r.detections)
                if len(r.probs) == len(classes):
                    rec["probs"] = {c: round(float(p), 4) for c, p in zip(classes, r.probs)}
                if writer is not None:
                    if writer.size is None:
                        writer.open(fps, w, h)
                    writer.write(_annotated(cfg, f.image, r, tracks, stream))
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                n += 1
                n_det += len(r.detections)
                if progress and n % 50 == 0:
                    el = time.perf_counter() - t0
                    print(f"\rdetect: {n} frames{'/' + str(limit) if limit else ''}, {n / el:.1f} fps",
                          end="", file=sys.stderr, flush=True)
    finally:
        stop.set()
        t.join(timeout=2.0)
        source.close()
        if writer is not None:
            writer.close()
        getattr(detector, "close", detector.engine.close)()
    if progress:
        print(file=sys.stderr)
    if error:
        raise error[0]
    elapsed = time.perf_counter() - t0
    stats = {"frames": n, "detections": n_det, "seconds": round(elapsed, 3),
             "fps": round(n / elapsed, 1) if elapsed else 0.0, "out": out_path}
    if writer is not None:
        stats["video"] = video
    return stats
