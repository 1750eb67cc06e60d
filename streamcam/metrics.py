"""Prometheus metrics for each stage (names documented in docs/metrics.md).

Each stage process serves its own ``/metrics`` on ``metrics.base_port + offset``
(publisher +0, processor +1, capture stream i +2+i); with ``base_port: 0`` each on a port the OS
picks, written with the stage's other addresses to ``<run_dir>/bound/<stage>.json``. prometheus-client is imported
only when metrics are enabled, and a stage without it keeps running (metrics are
an operator aid, never a reason to stop the video).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

LATENCY_BUCKETS_MS = (5, 10, 20, 33, 50, 75, 100, 150, 250, 500, 1000, 2500)
ENGINE_BUCKETS_MS = (0.5, 1, 2, 4, 6, 8, 12, 16, 25, 50, 100)


class _Null:
    """Stands in for a metric when metrics are off: every call is a no-op."""

    def labels(self, *a: Any, **k: Any) -> "_Null":
        return self

    def inc(self, *a: Any) -> None: ...

    def observe(self, *a: Any) -> None: ...

    def set(self, *a: Any) -> None: ...


class StageMetrics:
    """The metrics one stage exports. With ``port=None`` everything is a no-op; ``port=0``: one the
    OS picks. :attr:`url` is where they are served (None when they are not)."""

    def __init__(self, stage: str, port: int | None, host: str = "127.0.0.1") -> None:
        self.stage = stage
        self.url = None
        null = _Null()
        self.frames_in = self.frames_out = self.frames_dropped = self.rejected = self.failed = null
        self.latency_ms = self.engine_ms = self.fps = self.reconnects = null
        if port is None:
            return
        try:
            import prometheus_client as pc
        except ImportError:
            log.warning("metrics enabled but prometheus-client is not installed (pip install prometheus-client)")
            return
        reg = pc.CollectorRegistry()
        lab = ["stage", "stream"]
        self.frames_in = pc.Counter("streamcam_frames_in", "Frames received by the stage", lab, registry=reg)
        self.frames_out = pc.Counter("streamcam_frames_out", "Frames sent on by the stage", lab, registry=reg)
        self.frames_dropped = pc.Counter(
            "streamcam_frames_dropped", "Frames dropped (full queue) or skipped (newer frame waiting)", lab + ["why"], registry=reg)
        self.rejected = pc.Counter("streamcam_messages_rejected", "Malformed messages rejected", ["stage", "reason"], registry=reg)
        self.failed = pc.Counter("streamcam_messages_failed", "Messages whose handling raised (the stage went on)",
                                 ["stage", "reason"], registry=reg)
        self.latency_ms = pc.Histogram("streamcam_latency_ms", "Capture to publish latency (ms)", lab,
                                       buckets=LATENCY_BUCKETS_MS, registry=reg)
        self.engine_ms = pc.Histogram("streamcam_engine_ms", "Network inference time per frame (ms)", ["stage", "backend"],
                                      buckets=ENGINE_BUCKETS_MS, registry=reg)
        self.fps = pc.Gauge("streamcam_fps", "Frames per second out of the stage", lab, registry=reg)
        self.reconnects = pc.Counter("streamcam_source_reconnects", "Source reconnects", lab, registry=reg)
        try:
            httpd, _ = pc.start_http_server(port, addr=host, registry=reg)
            self.url = f"http://{host}:{httpd.server_port}/metrics"
        except OSError as exc:
            log.warning("cannot serve metrics on %s:%d: %s", host, port, exc)


    def sent(self, ok: bool, stage: str, stream: str) -> bool:
        """Count one non-blocking send (``transport.send_nowait``'s result) and return it: frames_out
        when it went, frames_dropped{why="queue_full"} when the next stage's queue was full."""
        (self.frames_out.labels(stage, stream) if ok else self.frames_dropped.labels(stage, stream, "queue_full")).inc()
        return ok


def stage_port(cfg: Any, stage: str, stream_index: int = 0) -> int | None:
    m = cfg.metrics
    if not m.enabled:
        return None
    if m.base_port == 0:  # every stage on a port the OS picks (see write_bound)
        return 0
    offset = {"publisher": 0, "processor": 1}.get(stage, 2 + stream_index)
    return m.base_port + offset
