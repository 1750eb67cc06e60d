"""A fake publisher stage for the subscriber tests (real PUB socket, real wire messages), and the
real publisher stage in a thread for the tests of the stage itself (:func:`publisher_running`)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from typing import Any, Callable, Iterator, Optional

import cv2

import numpy as np
import pytest
import zmq

from streamcam.protocol import Detection, detections_record, encode, jpeg_part
from streamcam.publisher.annotate import annotate, encode_jpeg
from streamcam.transport import make_socket


@pytest.fixture
def pub_endpoint() -> Iterator[str]:
    # ipc paths must stay short (OS limit ~107 bytes): not under pytest's long tmp_path.
    d = tempfile.mkdtemp(prefix="sc-", dir="/tmp")
    try:
        yield f"ipc://{d}/pub.sock"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def frame_image(seq: int, width: int = 160, height: int = 120, heatmap: bool = True,
                stream: str = "s", detections: Optional[list[Detection]] = None) -> np.ndarray:
    """An annotated frame that changes with ``seq``: a moving edge and the frame number in large digits."""
    img = np.zeros((height, width), np.uint8)
    img[:, (seq * 7) % width:] = 90
    scale = height / 120
    cv2.putText(img, f"{seq:05d}", (int(width * 0.3), int(height * 0.62)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, 230, max(1, int(2 * scale)), cv2.LINE_AA)
    cam = np.zeros((6, 8), np.float32)
    cam[seq % 6, seq % 8] = 1.0
    dets = detections if detections is not None else [Detection((10.0, 20.0, 60.0, 90.0), 0.9, "person", 1)]
    return annotate(img, cam, dets, heatmap=heatmap, stream=stream, fps=10.0, latency_ms=5.0)


class FakePublisher:
    """Publishes ``frames/<stream>`` + ``detections/<stream>`` like the publisher stage does.

    With ``plain=True`` each frames message also carries ``image_plain``: the same frame
    without the heatmap (``publisher.plain_frames``).
    """

    def __init__(self, endpoint: str, width: int = 160, height: int = 120, plain: bool = False,
                 seq: int = 0) -> None:
        self.ctx = zmq.Context()
        self.sock = make_socket(self.ctx, "PUB", endpoint, bind=True)
        self.width, self.height = width, height
        self.plain = plain
        self.seq = seq
        self.sent: dict[tuple[str, int], dict[str, Any]] = {}

    def detections_for(self, stream: str, seq: int) -> list[Detection]:
        return [
            Detection((10.0 + seq, 20.0, 60.0 + seq, 90.0), 0.9, "person", 1),
            Detection((100.0, 30.0, 150.0, 110.0), 0.61, "person", None),
        ]

    def publish(self, stream: str, fps: Optional[float] = 10.0, jpeg: Optional[bytes] = None,
                plain_jpeg: Optional[bytes] = None) -> int:
        seq = self.seq
        self.seq += 1
        t_ns = time.time_ns()
        dets = self.detections_for(stream, seq)
        rec = detections_record(stream, seq, t_ns, self.width, self.height, dets)
        rec["latency_ms"] = 12.5
        if jpeg is None:
            jpeg = encode_jpeg(frame_image(seq, self.width, self.height, stream=stream, detections=dets), 80)
        parts = [jpeg_part("image", jpeg, self.width, self.height)]
        if self.plain and plain_jpeg is None:
            plain_jpeg = encode_jpeg(frame_image(seq, self.width, self.height, heatmap=False, stream=stream,
                                                 detections=dets), 80)
        if plain_jpeg is not None:
            parts.append(jpeg_part("image_plain", plain_jpeg, self.width, self.height))
        frames_fields = {k: v for k, v in rec.items() if k not in ("seq", "t_capture_ns", "stream")}
        if fps is not None:
            frames_fields["fps"] = fps
        self.sock.send_multipart(
            encode("frames", stream, seq, t_ns, parts, **frames_fields),
            copy=False,
        )
        det_fields = {k: v for k, v in rec.items() if k not in ("seq", "t_capture_ns", "stream")}
        self.sock.send_multipart(encode("detections", stream, seq, t_ns, **det_fields))
        self.sent[(stream, seq)] = rec
        return seq

    def send_raw(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def publish_until(pub: FakePublisher, done: Callable[[], bool], streams=("cam0",), timeout: float = 5.0,
                  period: float = 0.02, **kw: Any) -> int:
    """Publish repeatedly (PUB/SUB slow joiner) until ``done()``; returns the number published."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        for s in streams:
            pub.publish(s, **kw)
            n += 1
        time.sleep(period)
        if done():
            return n
    raise AssertionError(f"condition not met within {timeout} s ({n} messages published)")


class PublisherRunning:
    """The real publisher stage (``run_publisher``) in a thread, a PUSH into its results endpoint
    (``push``) and the SUB sockets made by :meth:`subscribe`; see :func:`publisher_running`."""

    def __init__(self, cfg, join_s: float = 5.0) -> None:
        import threading

        from streamcam.publisher.stage import run_publisher

        self.cfg = cfg
        self.join_s = join_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=run_publisher, args=(cfg, self.stop))
        self.thread.start()
        self.ctx = zmq.Context()
        self.push = make_socket(self.ctx, "PUSH", cfg.endpoint("results"), bind=False)
        self._subs: list = []

    def subscribe(self, topics, endpoint: Optional[str] = None):
        """A SUB on ``topics`` at ``endpoint`` (default: the config's publish endpoint), closed at the end."""
        sub = make_socket(self.ctx, "SUB", endpoint or self.cfg.endpoint("publish"), bind=False, subscribe=topics)
        self._subs.append(sub)
        return sub

    def close(self) -> None:
        self.stop.set()
        self.thread.join(self.join_s)
        for s in [self.push, *self._subs]:
            s.close(0)
        self.ctx.term()


@contextlib.contextmanager
def publisher_running(cfg, join_s: float = 5.0) -> Iterator[PublisherRunning]:
    """Run the publisher stage for the block; on leaving it is stopped, and must have stopped."""
    running = PublisherRunning(cfg, join_s)
    try:
        yield running
    finally:
        running.close()
    assert not running.thread.is_alive(), "the publisher stage did not stop"
