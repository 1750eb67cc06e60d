"""The processor stage: newest frame per stream → engine → CAM → boxes → results.

It always works on the newest frame: everything waiting on the socket is drained,
the newest message per stream is kept and older ones are counted as skipped, so under
overload latency stays bounded by one processing time instead of growing with a queue.
"""

from __future__ import annotations

import logging
import threading
import time

import zmq

from .. import protocol
from ..config import PipelineConfig
from ..bounded import StreamTable
from ..guard import MessageGuard
from ..metrics import StageMetrics, stage_port
from ..stats import LatencyWindow, RateMeter, write_stats
from ..intake import take_newest
from ..transport import make_socket, send_nowait

log = logging.getLogger("streamcam.processor")


def check_backend(cfg: PipelineConfig) -> None:
    """Raise :class:`BackendUnavailable` with the reason when ``processor.backend`` cannot run here
    and ``processor.fallback`` is off, without loading the model (a check to run before starting stages)."""
    from ..errors import BackendUnavailable
    from .engines import backend_status

    p = cfg.processor
    ok, why = backend_status(p.backend)
    if not ok and not p.fallback:
        raise BackendUnavailable(f"processor.backend: {p.backend!r} cannot run here: {why} "
                                 "(or set processor.fallback: true to use onnxruntime)")
    if ok and p.backend == "tensorrt" and not p.tensorrt.build_on_start:
        # The plan is found (or its absence named, with the build-engine command) before any stage
        # starts, not by a processor that would build one for minutes while frames drop.
        from ..gpu.plan import resolve_plan

        o = p.engine_options(cfg.resolve)
        resolve_plan(cfg.model_path(), o["precision"], o["max_batch"], o["opt_batch"], o["calibration"],
                     o["cache_dir"], o["plan"], build=False)


def build_detector(cfg: PipelineConfig):
    """The engine and detector a config asks for (errors name the key to fix)."""
    from .detector import Detector
    from .engines import create_engine

    p = cfg.processor
    engine = create_engine(cfg.model_path(), p.backend, p.threads, p.fallback, p.engine_options(cfg.resolve))
    if p.mode == "faces":
        from .faces import FaceDetector, FaceEmotionDetector

        f = p.faces
        finder = FaceDetector(scale_factor=f.scale_factor, min_neighbors=f.min_neighbors, min_face_frac=f.min_face_frac,
                              window_px=f.window_px, evaluator=f.evaluator, rolling=f.rolling, near_scales=f.near_scales)
        return FaceEmotionDetector(engine, classes=p.classes, min_score=p.min_score, face_detector=finder, track=f.track)
    if p.frame_path != "cpu":
        from ..gpu.pipeline import frame_path_detector

        return frame_path_detector(engine, p.frame_path, cfg.publisher.alpha, classes=p.classes,
                                   cam_threshold=p.cam_threshold, min_score=p.min_score)
    return Detector(engine, classes=p.classes, cam_threshold=p.cam_threshold, min_score=p.min_score)


def build_tracked_detector(cfg: PipelineConfig, live: bool = False):
    """The detector plus the stabilizer, as the live processor runs them (``live``: dynamics on
    this host's monotonic clock; else on the capture times, as for a file)."""
    from .stabilized import TrackedDetector

    return TrackedDetector(build_detector(cfg), cfg.stabilizer, live=live, max_streams=cfg.run.max_streams)


def result_message(msg: protocol.Message, result, extra: dict, plain: bool = False) -> list:
    """The ``result`` message. A result with a ``blended`` frame (``processor.frame_path`` gpu or
    reference) sends it as ``image`` with ``heatmap_blended: true`` and no ``cam`` part, plus the
    frame as it came (``image_plain``) when ``plain`` (the publisher's heatmap-free copy)."""
    image = msg.part("image")
    desc = next(d for d in msg.header["parts"] if d["name"] == "image")
    blended = getattr(result, "blended", None)
    if blended is not None:
        parts = [protocol.raw_part("image", blended, "BGR8")]
        if plain:
            parts.append((dict(desc, name="image_plain"), image))
        extra = dict(extra, heatmap_blended=True)
    else:
        parts = [(desc, image)]
        if result.cam is not None:
            parts.append(protocol.raw_part("cam", result.cam, "CAM32"))
    h, w = image.shape[:2]
    return protocol.encode(
        "result", msg.stream, msg.seq, msg.t_capture_ns, parts,
        width=w, height=h,
        detections=[d.to_json() for d in result.detections],
        probs=[round(float(p), 4) for p in result.probs],
        timings_ms={k: round(v, 3) for k, v in result.timings_ms.items()},
        **extra,
    )


def run_processor(cfg: PipelineConfig, stop: threading.Event, ctx: zmq.Context | None = None) -> int:
    """Serve the ``frames`` endpoint until ``stop``; push results to the publisher."""
    tracked = build_tracked_detector(cfg, live=True)
    detector = tracked.detector
    ctx = ctx or zmq.Context.instance()
    pull = make_socket(ctx, "PULL", cfg.endpoint("frames"), bind=True, curve=cfg.curve())
    push = make_socket(ctx, "PUSH", cfg.endpoint("results"), bind=False, curve=cfg.curve())
    rejects = protocol.RejectCounter()
    metrics = StageMetrics("processor", stage_port(cfg, "processor"), cfg.metrics.host)
    guard = MessageGuard("processor", metrics, log)
    processed = skipped = dropped = predicted = 0
    every = int(cfg.processor.detect_every)
    # Per stream: frames taken and the last detected result (detect_every > 1), bounded like the tracks.
    per_stream: StreamTable[dict] = StreamTable(cfg.run.max_streams, lambda _stream: {"seen": 0, "last": None})
    rate = RateMeter()
    engine_ms = LatencyWindow()
    plain = cfg.publisher.wants_plain(cfg.serve.enabled)
    frame_path = getattr(getattr(detector, "path", None), "name", "cpu")
    last_report = time.monotonic()
    log.info(
        "processor: %s on %s (%s), classes %s → %s",
        cfg.model_path(), detector.engine.name, cfg.endpoint("frames"), list(detector.class_names), cfg.endpoint("results"),
    )
    def report() -> None:
        write_stats(cfg.run_dir, "processor", {
            "stage": "processor", "backend": detector.engine.name, "frame_path": frame_path, "processed": processed,
            "skipped": skipped, "dropped": dropped, "predicted": predicted, "detect_every": every, "fps": rate.rate,
            "engine_ms_p50": engine_ms.recent(50), "engine_ms_p99": engine_ms.recent(99),
            "rejected": dict(rejects.counts), "failed": dict(guard.counts),
            "streams": len(per_stream), "evicted": max(per_stream.evicted, tracked.streams.evicted),
            "clock_steps": tracked.clock_steps,
        })

    def handle(msg: protocol.Message) -> tuple[int, int]:
        """One frame → one result pushed: ``(1 if sent else 0, 1 if predicted else 0)``."""
        desc = next(d for d in msg.header["parts"] if d["name"] == "image")
        image = msg.part("image")
        st = per_stream.get(msg.stream)
        due = every == 1 or st["last"] is None or st["seen"] % every == 0
        st["seen"] += 1
        if due:
            result, tracks = tracked.process(msg.stream, image, desc["pixel_format"], msg.t_capture_ns)
            engine_ms.add(result.timings_ms["engine"])
            metrics.engine_ms.labels("processor", detector.engine.name).observe(result.timings_ms["engine"])
            if every > 1:
                st["last"] = result
        else:
            result, tracks = tracked.predict(msg.stream, st["last"], (image.shape[1], image.shape[0]),
                                             msg.t_capture_ns)
        extra: dict = {"t_processed_ns": time.time_ns()}
        if cfg.stabilizer.enabled:
            extra["tracks"] = tracks
        if "truth" in msg.header:
            extra["truth"] = msg.header["truth"]
        out = result_message(msg, result, extra, plain)
        if send_nowait(push, out):
            rate.tick()
            metrics.frames_out.labels("processor", msg.stream).inc()
            return 1, int(not due)
        metrics.frames_dropped.labels("processor", msg.stream, "queue_full").inc()
        return 0, int(not due)

    try:
        while not stop.is_set():
            now = time.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                report()
            if not pull.poll(100, zmq.POLLIN):
                continue
            newest, n_skipped = take_newest(pull, "frame", "processor", rejects, metrics, log, guard)
            skipped += n_skipped
            for msg in newest.values():
                with guard.message(msg.stream):
                    n_processed, n_predicted = handle(msg)
                    processed += n_processed
                    dropped += 1 - n_processed
                    predicted += n_predicted
        report()
    finally:
        pull.close(0)
        push.close(0)
        getattr(detector, "close", detector.engine.close)()  # a frame path's detector closes its GPU buffers too
    return 0
