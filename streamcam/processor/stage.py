"""The processor stage: newest frame per stream → engine → CAM → boxes → results.

It always works on the newest frame: everything waiting on the socket is drained,
the newest message per stream is kept and older ones are counted as skipped, so under
overload latency stays bounded by one processing time instead of growing with a queue.
The newest frames of all streams go through the engine in one call (batching across streams).
With a detect rate below the frame rate (``processor.detect_every`` / ``detect_fps``) every
waiting frame is answered instead: the newest due one by the network, the others by the
stabilizer's prediction, which costs a fraction of a detection, so every frame is published.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import zmq

from .. import protocol
from ..config import PipelineConfig
from ..errors import ConfigError
from ..bounded import StreamTable
from ..guard import MessageGuard
from ..metrics import StageMetrics, stage_port
from ..stats import Every, LatencyWindow, RateMeter, write_bound, write_stats
from ..intake import take_waiting
from ..transport import SocketPolicy, drain, make_socket, send_nowait
from .frame_demand import FrameDemand

log = logging.getLogger("streamcam.processor")


def check_backend(cfg: PipelineConfig) -> None:
    """Raise :class:`BackendUnavailable` with the reason when ``processor.backend`` cannot run here
    and ``processor.fallback`` is off, without loading the model (a check to run before starting stages);
    :class:`ModelError` when face mode's face finder is not installed."""
    from ..errors import BackendUnavailable
    from .engines import backend_status

    p = cfg.processor
    ok, why = backend_status(p.backend)
    if not ok and not p.fallback:
        raise BackendUnavailable(f"processor.backend: {p.backend!r} cannot run here: {why} "
                                 "(or set processor.fallback: true to use onnxruntime)")
    if p.mode == "faces":  # the face finder's model, before any stage starts (ModelError names the install)
        importlib.import_module("streamcam.faces.finder").centerface_path()
    if ok and p.backend == "tensorrt" and not p.tensorrt.build_on_start:
        # The plan is found (or its absence named, with the build-engine command) before any stage
        # starts, not by a processor that would build one for minutes while frames drop.
        resolve_plan = importlib.import_module("streamcam.gpu.plan").resolve_plan  # named: no processor->gpu import
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
        # Named, not imported: the faces room builds on the processor (engines, CAM), not the reverse.
        FaceEmotionDetector = importlib.import_module("streamcam.faces.detector").FaceEmotionDetector
        FaceFinder = importlib.import_module("streamcam.faces.finder").FaceFinder
        f = p.faces
        finder = FaceFinder(threshold=f.threshold, min_face_frac=f.min_face_frac, max_side=f.max_side, threads=p.threads)
        return FaceEmotionDetector(engine, classes=p.classes, min_score=p.min_score, face_finder=finder)
    if p.frame_path != "cpu":
        # Named, not imported (as the tensorrt backend): the GPU room imports the processor, not back.
        frame_path_detector = importlib.import_module("streamcam.gpu.pipeline").frame_path_detector
        det = frame_path_detector(engine, p.frame_path, cfg.publisher.alpha, classes=p.classes,
                                  cam_threshold=p.cam_threshold, min_score=p.min_score)
        det.use_silhouettes = p.silhouettes
        _seed_plates(cfg, det)
        return det
    det = Detector(engine, classes=p.classes, cam_threshold=p.cam_threshold, min_score=p.min_score)
    det.background = det.background and p.head_tops
    det.use_silhouettes = p.silhouettes
    _seed_plates(cfg, det)
    return det


def _seed_plates(cfg: PipelineConfig, det) -> None:
    """Each ``streams[].plate`` as its stream's silhouette plate until the live one is ready."""
    for i, st in enumerate(cfg.streams):
        seed_plate(cfg, det, i, st.id)


def seed_plate(cfg: PipelineConfig, det, index: int, stream: str) -> None:
    """``streams[index].plate`` (if any) as ``stream``'s silhouette plate until the live one is ready
    (``streamcam detect`` names its stream after the file, and takes the first stream's plate)."""
    import cv2

    st = cfg.streams[index] if index < len(cfg.streams) else None
    if st is None or st.plate is None or not getattr(det, "use_silhouettes", False):
        return
    path = cfg.resolve(st.plate)
    plate = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if plate is None:
        raise ConfigError(f"streams[{index}].plate: {path} is not a readable image")
    det.set_plate(stream, plate, frozen=False)


def build_stabilized_detector(cfg: PipelineConfig, live: bool = False):
    """The detector plus the stabilizer, as the live processor runs them (``live``: dynamics on
    this host's monotonic clock; else on the capture times, as for a file)."""
    from .stabilized import StabilizedDetector

    return StabilizedDetector(build_detector(cfg), cfg.stabilizer, live=live, max_streams=cfg.run.max_streams)


def detect_schedule(cfg: PipelineConfig):
    """The per-stream detect rate of a config: processor.detect_every / detect_fps, streams[].detect_fps."""
    from .schedule import DetectSchedule

    return DetectSchedule(every=int(cfg.processor.detect_every), fps=cfg.processor.detect_fps,
                          per_stream_fps={s.id: s.detect_fps for s in cfg.streams if s.detect_fps is not None})


def _pixel_format(msg: protocol.Message) -> str:
    return next(d for d in msg.header["parts"] if d["name"] == "image")["pixel_format"]


def result_message(msg: protocol.Message, result, extra: dict, plain: bool = False, frame: bool = True) -> list:
    """The ``result`` message. A result with a ``blended`` frame (``processor.frame_path`` gpu or
    reference) sends it as ``image`` with ``heatmap_blended: true`` and no ``cam`` part, plus the
    frame as it came (``image_plain``) when ``plain`` (the publisher's heatmap-free copy).
    ``frame=False``: no image, map or plain copy, only the header (nobody would see the frame:
    :mod:`.frame_demand`); its ``width`` and ``height`` still say the frame's size."""
    image = msg.part("image")
    desc = next(d for d in msg.header["parts"] if d["name"] == "image")
    blended = getattr(result, "blended", None)
    if not frame:
        parts = []
    elif blended is not None:
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


class DemandListener:
    """The publisher's ``stats/publisher`` reports, taken off the bus into a :class:`FrameDemand`
    (a SUB on the publish endpoint, or on the address the publisher bound when the config let the
    OS pick its port: looked up until it is there)."""

    def __init__(self, cfg: PipelineConfig, ctx: zmq.Context, demand: FrameDemand) -> None:
        self.cfg, self.ctx, self.demand = cfg, ctx, demand
        self.sock: zmq.Socket | None = None
        self._look = Every(0.5)
        self.failed = 0

    def _connect(self) -> None:
        endpoint = self.cfg.endpoint("publish")
        if endpoint.endswith(":*"):
            from ..stats import read_bound

            endpoint = read_bound(self.cfg.run_dir, "publisher").get("publish", "")
            if not endpoint:
                return  # not bound yet: frames are sent meanwhile
        for wildcard in ("//*:", "//0.0.0.0:", "//[::]:"):  # bound on every interface: this host's is one
            endpoint = endpoint.replace(wildcard, "//127.0.0.1:")
        try:
            self.sock = make_socket(self.ctx, "SUB", endpoint, bind=False, curve=self.cfg.curve(),
                                    subscribe="stats/publisher")
        except zmq.ZMQError as exc:
            log.warning("processor: cannot listen to the publisher's stats on %s (%s): every frame is sent", endpoint, exc)
            self.demand.always = True
            return

    def take(self) -> None:
        """Feed the demand the reports waiting (without blocking); one that does not decode is counted."""
        if self.sock is None:
            if self._look.due():
                self._connect()
            return
        for parts in drain(self.sock, limit=8):
            try:
                msg = protocol.decode(parts)
                subscribed = msg.header.get("subscribed")
                if msg.kind != "stats" or not isinstance(subscribed, list):
                    raise protocol.ProtocolError("unexpected_kind", "expected the publisher's stats")
            except protocol.ProtocolError:
                self.failed += 1
                continue
            self.demand.update(subscribed)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)


FRAMES_POLICY = SocketPolicy(rcvhwm=32)
"""Room for each camera's backlog, so that the newest-frame policy sees it: a camera over tcp that
sends faster than the processor detects fills the kernel's socket buffers (TCP grows them to
megabytes), and with room for only a few frames here ZeroMQ read them from the kernel one by one,
each detected late (measured: 2 cameras at 60 fps over tcp, a processor the bottleneck, capture ->
publish p50 1.2 s against 59 ms over ipc). With room for 32 the backlog is read at once and skipped
(or, at a detect rate, predicted and left to the publisher's catch-up)."""


def run_processor(cfg: PipelineConfig, stop: threading.Event, ctx: zmq.Context | None = None) -> int:
    """Serve the ``frames`` endpoint until ``stop``; push results to the publisher."""
    stabilized = build_stabilized_detector(cfg, live=True)
    detector = stabilized.detector
    ctx = ctx or zmq.Context.instance()
    pull = make_socket(ctx, "PULL", cfg.endpoint("frames"), bind=True, policy=FRAMES_POLICY, curve=cfg.curve())
    push = make_socket(ctx, "PUSH", cfg.endpoint("results"), bind=False, curve=cfg.curve())
    demand = FrameDemand(always=cfg.events.enabled and (cfg.events.snapshots or cfg.events.clips))
    bus = None if demand.always else DemandListener(cfg, ctx, demand)
    rejects = protocol.RejectCounter()
    metrics = StageMetrics("processor", stage_port(cfg, "processor"), cfg.metrics.host)
    if metrics.url:  # its port, when the config lets the OS pick one (metrics.base_port: 0)
        write_bound(cfg.run_dir, "processor", metrics=metrics.url)
    guard = MessageGuard("processor", metrics, log)
    processed = skipped = dropped = predicted = detected = late = frameless = 0
    every = int(cfg.processor.detect_every)
    schedule = detect_schedule(cfg)
    # A detect rate below the frame rate (detect_every, detect_fps): every frame waiting is answered,
    # the older ones by the stabilizer's prediction (cheap), instead of skipped by the newest-frame policy.
    limited = every > 1 or schedule.fps is not None or bool(schedule.per_stream_fps)
    # Per stream: the last detected result (a detect rate below the frame rate), bounded like the tracks.
    per_stream: StreamTable[dict] = StreamTable(cfg.run.max_streams, lambda _stream: {"last": None},
                                                on_evict=lambda stream, _st: schedule.forget(stream))
    rate = RateMeter()
    engine_ms = LatencyWindow()
    batches = LatencyWindow()  # frames per engine call
    plain = cfg.publisher.wants_plain(cfg.serve.enabled)
    frame_path = getattr(getattr(detector, "path", None), "name", "cpu")
    reporting = Every(1.0)
    log.info(
        "processor: %s on %s (%s), classes %s → %s",
        cfg.model_path(), detector.engine.name, cfg.endpoint("frames"), list(detector.class_names), cfg.endpoint("results"),
    )
    def report() -> None:
        write_stats(cfg.run_dir, "processor", {
            "stage": "processor", "backend": detector.engine.name, "frame_path": frame_path, "processed": processed,
            "skipped": skipped, "dropped": dropped, "predicted": predicted, "detected": detected, "late": late, "detect_every": every,
            "detect_fps": schedule.fps, "fps": rate.rate, "batch_p50": batches.recent(50), "batch_max": batches.recent(100),
            "engine_ms_p50": engine_ms.recent(50), "engine_ms_p99": engine_ms.recent(99),
            "rejected": dict(rejects.counts), "failed": dict(guard.counts),
            "streams": len(per_stream), "evicted": max(per_stream.evicted, stabilized.streams.evicted),
            # results sent without their frame: nobody subscribed to it (publisher's stats on the bus)
            "frameless": frameless, "demand_reports": demand.reports,
            "demand_rejected": bus.failed if bus is not None else 0,
            "clock_steps": stabilized.clock_steps,
        })

    def due_frames(stream: str, msgs: list) -> list[bool]:
        """Which of a stream's waiting frames go through the network: by the schedule, but at most the
        newest due one (the older ones are predicted), and always a stream's first frame."""
        st = per_stream.get(stream)
        first = st["last"] is None
        flags = [schedule.due(stream, m.t_capture_ns) for m in msgs]
        if st.pop("wants", False):  # due while the engine was busy: the newest frame now
            flags[-1] = True
        newest = max((i for i, f in enumerate(flags) if f), default=-1)
        return [i == newest or (first and i == 0) for i in range(len(msgs))]

    def handle(msg: protocol.Message, due: bool, found) -> tuple[int, int]:
        """One frame → one result pushed: ``(1 if sent else 0, 1 if predicted else 0)``. ``found``: its
        result from the batch's engine call (None: detect it alone, e.g. after the batch failed)."""
        nonlocal frameless
        image = msg.part("image")
        st = per_stream.get(msg.stream)
        size = (image.shape[1], image.shape[0])
        if due:
            if found is None:
                result, tracks = stabilized.process(msg.stream, image, _pixel_format(msg), msg.t_capture_ns)
            else:
                result, tracks = stabilized.track(msg.stream, found, size, msg.t_capture_ns)
            engine_ms.add(result.timings_ms["engine"])
            batches.add(float(result.batch))
            metrics.engine_ms.labels("processor", detector.engine.name).observe(result.timings_ms["engine"])
            if limited:
                st["last"] = result
        else:
            result, tracks = stabilized.predict(msg.stream, st["last"], size, msg.t_capture_ns)
        extra: dict = {"t_processed_ns": time.time_ns()}
        if result.batch > 1:
            extra["batch"] = result.batch
        if cfg.stabilizer.enabled:
            extra["tracks"] = tracks
        if "truth" in msg.header:
            extra["truth"] = msg.header["truth"]
        with_frame = demand.wants(msg.stream)
        frameless += int(not with_frame)
        out = result_message(msg, result, extra, plain, frame=with_frame)
        if metrics.sent(send_nowait(push, out), "processor", msg.stream):
            rate.tick()
            return 1, int(not due)
        return 0, int(not due)

    def publish(msg: protocol.Message, due: bool, found) -> None:
        nonlocal processed, dropped, predicted, detected
        with guard.message(msg.stream):
            n_processed, n_predicted = handle(msg, due, found)
            processed += n_processed
            dropped += 1 - n_processed
            predicted += n_predicted
            detected += int(due)

    def batch_args(msgs: list) -> list:
        return [(m.stream, m.part("image"), _pixel_format(m), m.t_capture_ns) for m in msgs]

    # With a detect rate, the engine runs beside the frame loop (ONNX Runtime releases the GIL): the
    # frames that arrive during its call are answered at once by the stabilizer's prediction instead of
    # waiting for it. A due frame is held until its detection comes back and is then published with it,
    # unless a newer frame of its stream comes first: then it goes out predicted (order kept) and its
    # detection only feeds the tracks ("late" in the stats).
    beside = ThreadPoolExecutor(1, thread_name_prefix="engine") if limited else None
    inflight: list = []  # [(future, frames)]: at most one engine call beside the loop
    held: dict = {}  # stream -> its due frame waiting for the call in flight

    def finish(block: bool) -> None:
        nonlocal late, detected
        if not inflight or not (block or inflight[0][0].done()):
            return
        future, msgs = inflight.pop()
        found: dict = {}
        with guard.message("batch"):
            found = dict(zip(map(id, msgs), future.result()))
        for msg in msgs:
            if held.get(msg.stream) is msg:
                del held[msg.stream]
                publish(msg, True, found.get(id(msg)))
            elif id(msg) in found:
                with guard.message(msg.stream):
                    image = msg.part("image")
                    result, _ = stabilized.track(msg.stream, found[id(msg)], (image.shape[1], image.shape[0]),
                                              msg.t_capture_ns)
                    per_stream.get(msg.stream)["last"] = result
                    detected += 1
                    late += 1

    try:
        while not stop.is_set():
            if reporting.due():
                report()
            if bus is not None:
                bus.take()
            finish(block=False)
            if not pull.poll(5 if inflight else 100, zmq.POLLIN):
                continue
            plan = []  # (frame, due), each stream's frames oldest first
            for stream, msgs in take_waiting(pull, "frame", "processor", rejects, metrics, log, guard).items():
                if not limited and len(msgs) > 1:  # the newest-frame policy: older frames are skipped
                    skipped += len(msgs) - 1
                    metrics.frames_dropped.labels("processor", stream, "skipped").inc(len(msgs) - 1)
                    msgs = msgs[-1:]
                with guard.message(stream):
                    plan += zip(msgs, due_frames(stream, msgs))
            if beside is not None and all(per_stream.get(m.stream)["last"] is not None for m, _ in plan):
                due = [m for m, d in plan if d]
                if due and not inflight:
                    # Nothing is held now (held frames belong to the call in flight): hold each stream's
                    # due frame if it is its newest; the frames before it go out predicted at once.
                    inflight.append((beside.submit(stabilized.detect_batch, batch_args(due)), due))
                    newest = {m.stream: m for m, _ in plan}
                    held.update((m.stream, m) for m in due if newest[m.stream] is m)
                    for msg, _ in plan:
                        if held.get(msg.stream) is not msg:
                            publish(msg, False, None)
                    continue
                for msg, is_due in plan:  # the engine is busy (or nothing is due)
                    if msg.stream in held:  # a newer frame came first: the held one goes out before it, predicted
                        publish(held.pop(msg.stream), False, None)
                    if is_due:
                        per_stream.get(msg.stream)["wants"] = True  # detect this stream's next frame instead
                    publish(msg, False, None)
                continue
            if inflight:  # a stream's first frames: detected here, in order, after the call in flight
                finish(block=True)
            due = [msg for msg, d in plan if d]
            found: dict = {}
            # The due frames of all streams through the engine in one call (batching across streams);
            # if the batch fails, each frame is detected alone below, so one bad frame fails alone.
            with guard.message("batch"):
                found = dict(zip(map(id, due), stabilized.detect_batch(batch_args(due))))
            for msg, is_due in plan:
                if msg.stream in held:
                    publish(held.pop(msg.stream), False, None)
                publish(msg, is_due, found.get(id(msg)))
        report()
    finally:
        if beside is not None:
            beside.shutdown(wait=True)  # at most one engine call: bounded by the engine's time
        pull.close(0)
        push.close(0)
        if bus is not None:
            bus.close()
        getattr(detector, "close", detector.engine.close)()  # a frame path's detector closes its GPU buffers too
    return 0
