"""The publisher stage: results → annotated JPEG frames and detections for any number of subscribers.

Two topics per stream on one XPUB socket: ``frames/<id>`` (header + JPEG) and
``detections/<id>`` (header only), and ``events/<id>`` with ``events.enabled``. A slow
subscriber only loses its own messages (PUB drops at its high-water mark); it never slows
the pipeline.

Only what someone receives is made (:mod:`.demand`: the socket's subscriptions): a stream's frames
are annotated and JPEG-encoded while ``frames/<id>`` is subscribed (or the events' snapshots and
clips need every frame), and its heatmap-free copy (``image_plain``, ``publisher.plain_frames``
unset) while ``want/plain/<id>/`` is (the HTTP bridge, while a viewer watches ``?heatmap=0``).
The detections always go out.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import zmq

from .. import protocol
from ..config import PipelineConfig
from .demand import Demand
from ..bounded import StreamTable
from ..guard import MessageGuard
from ..metrics import StageMetrics, stage_port
from ..stats import Every, LatencyWindow, RateMeter, write_bound, write_stats
from ..intake import take_recent
from ..transport import bound_endpoint, make_socket, send_nowait

log = logging.getLogger("streamcam.publisher")


class StreamState:
    def __init__(self, log_path=None) -> None:
        # One line per published frame: what `streamcam report` plots (latency, fps, track timeline).
        self.log = open(log_path, "a", buffering=1 << 16) if log_path is not None else None
        self.rate = RateMeter()
        self.latency = LatencyWindow()
        self.published = 0
        self.encoded = 0
        """Frames annotated and JPEG-encoded (published ones nobody subscribed to are not)."""
        self.encoded_plain = 0
        """Heatmap-free copies encoded (``image_plain``)."""
        self.first = 0.0
        self.last = 0.0

    @property
    def fps_overall(self) -> float:
        return (self.published - 1) / (self.last - self.first) if self.published > 1 and self.last > self.first else 0.0


def publish_result(pub: zmq.Socket, msg: protocol.Message, cfg: PipelineConfig, state: StreamState,
                   metrics: StageMetrics | None = None, events=None, demand: Demand | None = None) -> None:
    """Annotate one processor result and publish it on both topics (and ``events/<id>`` with an
    :class:`~streamcam.events.stage.EventHub`). ``demand``: the subscriptions; the frame is only
    annotated and encoded when ``frames/<id>`` is wanted (None: always, with its plain copy)."""
    from .annotate import annotate, encode_jpeg

    # No image: the processor knew nobody subscribed to this stream's frames (its FrameDemand).
    image = msg.part("image") if msg.has_part("image") else None
    # heatmap_blended: the processor's frame path already blended the heatmap into `image`
    # (and sends the frame as it came as `image_plain` when a heatmap-free copy is wanted).
    blended = msg.header.get("heatmap_blended", False)
    cam = msg.part("cam") if msg.has_part("cam") and not blended else None
    plain_src = (msg.part("image_plain") if msg.has_part("image_plain") else None) if blended else image
    detections = msg.detections()
    h, w = image.shape[:2] if image is not None else (int(msg.header["height"]), int(msg.header["width"]))
    fe = None
    if events is not None:
        fe = events.track(msg.stream, detections, msg.t_capture_ns, msg.seq, w, h)
        if len(fe.kept) != len(detections):  # masked detections are neither drawn nor published
            detections = fe.kept
    q = cfg.publisher.jpeg_quality
    # Only what someone receives is made: the events' snapshots and clips take every annotated frame.
    make_frames = image is not None and (
        demand is None or demand.wants(f"frames/{msg.stream}") or (events is not None and events.media is not None))
    offers_plain = plain_src is not None and cfg.publisher.wants_plain(cfg.serve.enabled)
    has_heatmap = (cam is not None and cfg.publisher.heatmap) or blended
    on_request = cfg.publisher.plain_frames is None
    make_plain = make_frames and offers_plain and has_heatmap and (
        not on_request or demand is None or demand.wants(protocol.plain_demand_topic(msg.stream)))
    parts = []
    if make_frames:
        # The banner shows the latency so far; the published figure is measured when the frame leaves.
        shown_latency = (time.time_ns() - msg.t_capture_ns) / 1e6
        style = dict(stream=msg.stream, fps=state.rate.rate, latency_ms=shown_latency, tracks=msg.header.get("tracks") or ())
        annotated = annotate(image, cam, detections, heatmap=cfg.publisher.heatmap and not blended,
                             alpha=cfg.publisher.alpha, **style)
        if events is not None:
            events.draw_zones(msg.stream, annotated)
        parts.append(protocol.jpeg_part("image", encode_jpeg(annotated, q), w, h))
        state.encoded += 1
        if make_plain:
            plain = annotate(plain_src, None, detections, heatmap=False, **style)
            parts.append(protocol.jpeg_part("image_plain", encode_jpeg(plain, q), w, h))
            state.encoded_plain += 1
    latency_ms = (time.time_ns() - msg.t_capture_ns) / 1e6
    state.latency.add(latency_ms)
    state.rate.tick()
    state.published += 1
    state.last = time.monotonic()
    if state.published == 1:
        state.first = state.last
    if metrics is not None:
        metrics.latency_ms.labels("publisher", msg.stream).observe(latency_ms)
        metrics.frames_out.labels("publisher", msg.stream).inc()
        metrics.fps.labels("publisher", msg.stream).set(state.rate.rate)
    det_json = msg.header.get("detections", []) if fe is None or len(fe.kept) == len(msg.header.get("detections", [])) \
        else [d.to_json() for d in detections]
    common = {
        "width": w, "height": h, "detections": det_json,
        "latency_ms": round(latency_ms, 2), "fps": round(state.rate.rate, 2),
        "timings_ms": msg.header.get("timings_ms", {}),
    }
    if parts:
        offer = {}
        if offers_plain and on_request:
            # The bridge's cue that ?heatmap=0 can be had (by subscribing to want/plain/<id>/), and
            # whether this frame's image has no heatmap to remove (then it is its own plain copy).
            offer = {"plain_offered": True, **({} if has_heatmap else {"heatmap": False})}
        send_nowait(pub, protocol.encode("frames", msg.stream, msg.seq, msg.t_capture_ns, parts, **common, **offer))
    send_nowait(pub, protocol.encode("detections", msg.stream, msg.seq, msg.t_capture_ns, (), **common))
    if events is not None and fe is not None:
        def clean() -> bytes | None:
            # The event's snapshot without drawings: only encoded when a snapshot wants this frame.
            return encode_jpeg(plain_src, q) if plain_src is not None else None

        events.publish(pub, msg.stream, msg.seq, msg.t_capture_ns, fe, parts[0][1] if parts else b"", clean)
    if state.log is not None:
        dets = common["detections"]
        state.log.write(json.dumps({
            "seq": msg.seq, "t_capture_ns": msg.t_capture_ns, "latency_ms": round(latency_ms, 3),
            "n": len(dets), "tracks": [d.get("track_id") for d in dets if d.get("track_id") is not None],
            "engine_ms": msg.header.get("timings_ms", {}).get("engine"),
        }, separators=(",", ":")) + "\n")


def take_subscriptions(pub: zmq.Socket, demand: Demand, limit: int = 256) -> None:
    """Feed ``demand`` the subscription messages waiting on the XPUB socket (without blocking)."""
    for _ in range(limit):
        try:
            demand.update(pub.recv(zmq.NOBLOCK))
        except zmq.Again:
            return


def frame_log(cfg: PipelineConfig, stream: str):
    d = cfg.run_dir / "stats"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"frames-{stream}.jsonl"


def run_publisher(cfg: PipelineConfig, stop: threading.Event, ctx: zmq.Context | None = None) -> int:
    ctx = ctx or zmq.Context.instance()
    events = None
    if cfg.events.enabled:  # before the sockets: a sink that cannot start stops the stage before it binds
        from ..events.stage import EventHub

        events = EventHub(cfg)
    pull = make_socket(ctx, "PULL", cfg.endpoint("results"), bind=True, curve=cfg.curve())
    pub = make_socket(ctx, "XPUB", cfg.endpoint("publish"), bind=True, curve=cfg.curve())
    demand = Demand()
    rejects = protocol.RejectCounter()
    metrics = StageMetrics("publisher", stage_port(cfg, "publisher"), cfg.metrics.host)
    published = bound_endpoint(pub)  # the port itself when the config asked for any (tcp://HOST:*)
    write_bound(cfg.run_dir, "publisher", publish=published, metrics=metrics.url)
    guard = MessageGuard("publisher", metrics, log)
    # Per-stream files only for the configured streams: ids off the wire must not fill the disk.
    logged = {s.id for s in cfg.streams}

    def close_log(_stream: str, st: StreamState) -> None:
        if st.log is not None:
            st.log.close()

    streams: StreamTable[StreamState] = StreamTable(
        cfg.run.max_streams, lambda sid: StreamState(frame_log(cfg, sid) if sid in logged else None), close_log)
    skipped = 0
    reporting = Every(1.0)
    log.info("publisher: %s → %s (topics frames/<id>, detections/<id>)", cfg.endpoint("results"), published)

    reports = 0

    def report() -> None:
        nonlocal reports
        stats = {
            "stage": "publisher", "skipped": skipped, "rejected": dict(rejects.counts), "failed": dict(guard.counts),
            "subscribed": sorted(p.decode(errors="replace") for p in demand.prefixes),
            "evicted": streams.evicted,
            **({"events": events.stats()} if events is not None else {}),
            "streams": {
                sid: {
                    "published": st.published, "encoded": st.encoded, "encoded_plain": st.encoded_plain,
                    "fps": st.rate.rate, "fps_overall": st.fps_overall,
                    "latency_ms_p50": st.latency.overall(50), "latency_ms_p99": st.latency.overall(99),
                    "latency_ms_recent_p99": st.latency.recent(99),
                }
                for sid, st in streams.items()
            },
        }
        write_stats(cfg.run_dir, "publisher", stats)
        # The same figures on the bus, for subscribers that monitor the pipeline.
        send_nowait(pub, protocol.encode("stats", "publisher", reports, time.time_ns(), (), **stats))
        reports += 1

    try:
        while not stop.is_set():
            if reporting.due():
                report()
            changes = demand.changes
            take_subscriptions(pub, demand)
            if demand.changes != changes:
                report()  # at once: the processor sends a stream's frames again when they are wanted
            if pull.poll(100, zmq.POLLIN):
                recent, n_skipped = take_recent(pull, "result", "publisher", rejects, metrics, log, guard,
                                                max_age_ms=cfg.publisher.catch_up_ms, image=False)
                skipped += n_skipped
                for msgs in recent.values():
                    for msg in msgs:  # each stream's in seq order
                        with guard.message(msg.stream):
                            publish_result(pub, msg, cfg, streams.get(msg.stream), metrics, events, demand)
        report()
    finally:
        if events is not None:
            events.close(pub)  # open events end (sent while the socket is still open), clips are written
        for sid, st in streams.items():
            close_log(sid, st)
        pull.close(0)
        pub.close(0)
    return 0
