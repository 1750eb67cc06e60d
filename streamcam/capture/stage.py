"""The capture stage: one source → frames on the ``frames`` endpoint, never blocking on consumers."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import zmq

from .. import protocol
from ..config import PipelineConfig
from ..errors import SourceError
from ..metrics import StageMetrics, stage_port
from ..stats import Every, RateMeter, write_bound, write_stats
from ..transport import make_socket, send_nowait

if TYPE_CHECKING:
    from .frames import SourceFrame

log = logging.getLogger("streamcam.capture")


def frame_message(stream: str, seq: int, frame: "SourceFrame", send_raw: bool) -> list:
    """Wire message for one captured frame: the 8-bit image, plus the 16-bit raw frame if asked."""
    parts = [protocol.raw_part("image", frame.image, frame.pixel_format)]
    if send_raw and frame.raw is not None:
        parts.append(protocol.raw_part("raw", frame.raw, "GRAY16"))
    fields = {}
    if frame.truth is not None:
        fields["truth"] = [
            {"id": int(o.id), "label": o.label, "box": [round(float(v), 2) for v in o.box]} for o in frame.truth
        ]
    return protocol.encode("frame", stream, seq, frame.t_capture_ns, parts, **fields)


def run_capture(cfg: PipelineConfig, stream_id: str, stop: threading.Event, ctx: zmq.Context | None = None) -> int:
    """Read frames from the stream's source and push them to the processor until ``stop``."""
    from .sources import Pacer, open_source

    stream = cfg.stream(stream_id)
    index = [s.id for s in cfg.streams].index(stream_id)
    metrics = StageMetrics("capture", stage_port(cfg, "capture", index), cfg.metrics.host)
    if metrics.url:  # its port, when the config lets the OS pick one (metrics.base_port: 0)
        write_bound(cfg.run_dir, f"capture-{stream_id}", metrics=metrics.url)
    src_cfg = stream.source
    ctx = ctx or zmq.Context.instance()
    sock = make_socket(ctx, "PUSH", cfg.endpoint("frames"), bind=False, curve=cfg.curve())
    source = open_source(src_cfg, base_dir=cfg.base_dir)
    pacer = None
    # Cameras and live URLs set their own pace; files, sequences and the synthetic scene need one.
    if src_cfg.pacing == "source" and src_cfg.kind not in ("camera", "url"):
        pacer = Pacer(source.fps or src_cfg.fps)
    # A source waiting out a reconnect backoff must still see the stop request promptly.
    watcher = threading.Thread(target=lambda: (stop.wait(), source.close()), name="capture-stop", daemon=True)
    watcher.start()
    seq = sent = dropped = 0
    rate = RateMeter()
    reporting = Every(1.0)
    log.info("capture %s: %s source %s → %s", stream_id, src_cfg.kind, src_cfg.uri or "", cfg.endpoint("frames"))
    reconnects = 0

    def report(counted: int) -> int:
        now_reconnects = getattr(source, "reconnects", 0)
        if now_reconnects > counted:
            metrics.reconnects.labels("capture", stream_id).inc(now_reconnects - counted)
        write_stats(cfg.run_dir, f"capture-{stream_id}", {
            "stage": "capture", "stream": stream_id, "captured": seq, "sent": sent,
            "dropped": dropped, "fps": rate.rate, "reconnects": now_reconnects,
        })
        return now_reconnects

    try:
        while not stop.is_set():
            if pacer is not None and not pacer.wait(stop):
                break
            try:
                frame = source.read()
            except SourceError as exc:
                if stop.is_set():
                    break
                # Sources that can reconnect do so inside read(); this one cannot.
                log.error("capture %s: %s", stream_id, exc)
                return 3
            if frame is None:
                if stop.is_set():
                    break
                log.info("capture %s: end of source after %d frames", stream_id, seq)
                break
            metrics.frames_in.labels("capture", stream_id).inc()
            if metrics.sent(send_nowait(sock, frame_message(stream_id, seq, frame, src_cfg.send_raw)), "capture", stream_id):
                sent += 1
                rate.tick()
            else:
                dropped += 1
            seq += 1
            if reporting.due():
                reconnects = report(reconnects)
        report(reconnects)
    finally:
        source.close()
        sock.close(0)
    return 0
