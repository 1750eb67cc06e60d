"""Snapshots and clips of events: a per-camera ring buffer of recent frames, and one writer thread.

* **Ring buffer**: the stream's annotated frames as the JPEG bytes the publisher already
  encoded (no second encode), for the last ``pre_roll_s`` seconds. Its memory is the sum of
  those JPEGs: about ``fps x pre_roll_s x JPEG size`` per camera (25 fps x 5 s x ~40 kB =
  ~5 MB at 640x480, quality 80); :attr:`FrameRing.nbytes` says what it holds.
* **Clips**: an event's clip is the ring's frames (pre-roll) plus every frame until
  ``post_roll_s`` after it ended (cut at ``max_clip_s``), written as H.264 MP4 by
  :mod:`streamcam.video` (browsers play it). A clip is encoded while the event
  runs (JPEG decode + x264 ``veryfast``/``zerolatency``: a few ms per frame in the writer
  thread), so memory stays at the ring and a stop only flushes.
* **Snapshots**: the event's best frame, annotated (the published JPEG) and clean (the
  frame as captured), ``<id>.jpg`` and ``<id>-clean.jpg``.
* **Retention**: after each write, and at most once a minute otherwise, files older than
  ``max_age_h`` go, then the oldest until the folder is under ``max_bytes``.

Files are written by one background thread behind a bounded queue, so a slow disk or a
long clip never blocks the publisher; a full queue drops the job and counts it.
Paths in events are relative to the events folder: ``<stream>/<id>.jpg``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .config import EventsConfig, RetentionConfig
from .lifecycle import Event, FrameEvents

log = logging.getLogger("streamcam.events")

_RETENTION_EVERY_S = 60.0
SNAPSHOT_SAMPLE_S = 0.5
"""How often an event's best frame may be replaced (each time costs one clean JPEG encode)."""
SNAPSHOT_WRITE_S = 1.0
"""How often an event's snapshot file may be rewritten while it runs."""


class FrameRing:
    """The last ``seconds`` of one stream's frames as ``(t_ns, jpeg)``, oldest first."""

    def __init__(self, seconds: float, max_frames: int = 3000) -> None:
        self.seconds = seconds
        self.frames: deque[tuple[int, bytes]] = deque(maxlen=max_frames)
        self.nbytes = 0

    def add(self, t_ns: int, jpeg: bytes) -> None:
        if self.frames.maxlen and len(self.frames) == self.frames.maxlen:
            self.nbytes -= len(self.frames[0][1])
        self.frames.append((t_ns, jpeg))
        self.nbytes += len(jpeg)
        horizon = t_ns - int(self.seconds * 1e9)
        while self.frames and self.frames[0][0] < horizon:
            self.nbytes -= len(self.frames.popleft()[1])

    def since(self, t_ns: int) -> list[tuple[int, bytes]]:
        return [f for f in self.frames if f[0] >= t_ns]


@dataclass
class _Clip:
    event: Event
    first_ns: int
    until_ns: Optional[int] = None
    """Set when the event ends: frames are taken until this time (end + post-roll)."""


@dataclass
class MediaStats:
    snapshots: int = 0
    clips: int = 0
    deleted: int = 0
    dropped: Counter = field(default_factory=Counter)
    """Jobs not done, by reason (``queue_full``, ``write_error``)."""


class EventMedia:
    """Snapshots, clips and retention for every stream of a publisher.

    ``on_frame(stream, t_ns, jpeg, clean, frame_events)`` once per published frame, after
    the event tracker: ``clean()`` returns the frame as captured, encoded, and is called
    only when a snapshot needs it. ``close()`` finishes open clips and drains the writer.
    """

    def __init__(self, config: EventsConfig, directory: str, fps_hint: float = 25.0, queue_size: int = 512) -> None:
        self.config = config
        self.dir = Path(directory)
        self.fps_hint = fps_hint
        self.stats = MediaStats()
        self._rings: dict[str, FrameRing] = {}
        self._clips: dict[str, list[_Clip]] = {}
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._writers: dict[int, ClipWriter] = {}
        """Open clips (the writer thread's own)."""
        self._stop = threading.Event()
        self._skip_after = float("inf")
        self._held: dict[Event, list] = {}
        """Event -> [annotated jpeg, clean jpeg, sampled at ns, written at ns, not yet written]."""
        self._final: set[Event] = set()
        self._last_retention = 0.0
        self._thread = threading.Thread(target=self._work, name="event-media", daemon=True)
        self._thread.start()

    # --- per frame (the publisher's thread) -------------------------------------------
    def paths(self, ev: Event) -> None:
        """Fill an event's ``snapshot`` / ``clip`` (relative paths) before it is sent."""
        if self.config.snapshots and ev.snapshot is None:
            ev.snapshot = f"{ev.stream}/{ev.id}.jpg"
        if self.config.clips and ev.clip is None:
            ev.clip = f"{ev.stream}/{ev.id}.mp4"

    def ring_bytes(self, stream: str) -> int:
        ring = self._rings.get(stream)
        return 0 if ring is None else ring.nbytes

    def on_frame(self, stream: str, t_ns: int, jpeg: bytes, clean: Callable[[], Optional[bytes]],
                 fe: FrameEvents) -> None:
        cfg = self.config
        if cfg.clips:
            ring = self._rings.get(stream)
            if ring is None:
                ring = self._rings[stream] = FrameRing(max(cfg.pre_roll_s, 0.04))
            clips = self._clips.setdefault(stream, [])
            for ev in fe.started:
                pre = ring.since(ev.last_seen_ns - int(cfg.pre_roll_s * 1e9))
                clip = _Clip(ev, pre[0][0] if pre else t_ns)
                clips.append(clip)
                self._submit(("open", clip, pre), wait=True)
            ring.add(t_ns, jpeg)
            for ev in fe.ended:
                for c in clips:
                    if c.event is ev and c.until_ns is None:
                        c.until_ns = (ev.end_ns or t_ns) + int(cfg.post_roll_s * 1e9)
            for c in list(clips):
                if c.until_ns is None or t_ns <= c.until_ns:
                    self._submit(("frame", c, jpeg))
                if (c.until_ns is not None and t_ns >= c.until_ns) or t_ns - c.first_ns >= cfg.max_clip_s * 1e9:
                    clips.remove(c)
                    self._submit(("close", c), wait=True)
        if cfg.snapshots:
            self._snapshots(t_ns, jpeg, clean, fe)

    def _snapshots(self, t_ns: int, jpeg: bytes, clean: Callable[[], Optional[bytes]], fe: FrameEvents) -> None:
        # The best frame is sampled at most every SNAPSHOT_SAMPLE_S (each sample costs a clean JPEG
        # encode) and written at most every SNAPSHOT_WRITE_S, and once more when the event ends.
        for ev in fe.best:
            held = self._held.get(ev)
            if held is None or t_ns - held[2] >= SNAPSHOT_SAMPLE_S * 1e9:
                self._held[ev] = [jpeg, clean(), t_ns, held[3] if held else None, True]
        ended = set(fe.ended)
        for ev, held in list(self._held.items()):
            if held[4] and (held[3] is None or t_ns - held[3] >= SNAPSHOT_WRITE_S * 1e9 or ev in ended):
                self._submit(("snapshot", ev, held[0], held[1]))
                held[3], held[4] = t_ns, False
            if ev in ended:
                del self._held[ev]

    def close(self, timeout: float = 1.0) -> None:
        """Finish the clips still open (with the frames they have), then stop the writer within ``timeout``.

        Clips are encoded as their frames arrive, so finishing one is only a flush: a stop fits
        in the supervisor's grace period."""
        # Queued work goes on for most of the timeout; after that, frames and snapshots are skipped
        # and the writer finishes every open clip with what it has.
        self._skip_after = time.monotonic() + 0.6 * timeout
        for ev, held in self._held.items():
            if held[4]:
                self._final.add(ev)
                self._submit(("snapshot", ev, held[0], held[1]), wait=True)
        self._held.clear()
        self._clips.clear()
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("event media: the writer did not finish within %.1f s", timeout)

    # --- the writer thread ------------------------------------------------------------
    @property
    def _closing(self) -> bool:
        return time.monotonic() > self._skip_after

    def _submit(self, job: tuple, wait: bool = False) -> None:
        # A frame may be dropped when the disk or the encoder falls behind (counted); opening and
        # closing a clip wait a little for room, so a clip is never left open.
        try:
            self._jobs.put(job, timeout=1.0) if wait else self._jobs.put_nowait(job)
        except queue.Full:
            self.stats.dropped["queue_full"] += 1

    def _work(self) -> None:
        try:
            self._loop()
        finally:
            for writer in self._writers.values():
                try:
                    if writer.finish():
                        self.stats.clips += 1
                except Exception:  # noqa: BLE001 - a clip that cannot be finished is logged, the rest go on
                    log.exception("event media: cannot finish %s", writer.path)
            self._writers.clear()

    def _loop(self) -> None:
        while not (self._stop.is_set() and self._jobs.empty()):
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                job = None
            try:
                if job is not None:
                    self._do(job)
                if time.monotonic() - self._last_retention >= _RETENTION_EVERY_S or job is not None:
                    self._last_retention = time.monotonic()
                    self.stats.deleted += apply_retention(self.dir, self.config.retention)
            except Exception:  # one failed write must not stop the writer: counted, logged
                self.stats.dropped["write_error"] += 1
                log.exception("event media: %s failed", job[0] if job else "retention")

    def _do(self, job: tuple) -> None:
        kind = job[0]
        if kind == "snapshot":
            if self._closing and job[1] not in self._final:
                return
            _, ev, jpeg, clean = job
            folder = self.dir / ev.stream
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(folder / f"{ev.id}.jpg", jpeg)
            if clean is not None:
                _atomic_write(folder / f"{ev.id}-clean.jpg", clean)
            self.stats.snapshots += 1
        elif kind == "open":
            if self._closing:
                return
            _, clip, pre = job
            writer = ClipWriter(self.dir / clip.event.stream / f"{clip.event.id}.mp4",
                                measured_rate([t for t, _ in pre]) or self.fps_hint)
            self._writers[id(clip)] = writer
            for _, jpeg in pre:
                writer.add(jpeg)
        elif kind == "frame":
            if self._closing:  # stopping: the clip ends with what it has
                return
            writer = self._writers.get(id(job[1]))
            if writer is not None:
                writer.add(job[2])
        elif kind == "close":
            writer = self._writers.pop(id(job[1]), None)
            if writer is not None and writer.finish():
                self.stats.clips += 1


class ClipWriter:
    """One clip being encoded: JPEG frames in, an H.264 MP4 at ``path`` once finished.

    Written as ``<name>.part.mp4`` and renamed when finished, so a clip that exists is whole.
    """

    def __init__(self, path: Path, fps: float) -> None:
        from ..video import H264Writer

        self.path = path
        self.fps = fps
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(path.stem + ".part.mp4")
        # zerolatency: no lookahead, so finishing a clip is immediate (a stop fits in its grace period).
        self.writer = H264Writer(str(self.tmp), tune="zerolatency")

    def add(self, jpeg: bytes) -> None:
        import cv2
        import numpy as np

        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return
        if self.writer.size is None:
            self.writer.open(self.fps, img.shape[1], img.shape[0])
        self.writer.write(img)

    def finish(self) -> bool:
        self.writer.close()
        if self.writer.frames:
            os.replace(self.tmp, self.path)
            return True
        self.tmp.unlink(missing_ok=True)
        return False


def measured_rate(t_ns: list[int]) -> Optional[float]:
    from ..video import measured_fps

    return measured_fps(t_ns)


def _atomic_write(path: Path, data: bytes) -> None:
    # A page or a sink reading the file never sees half of it.
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def apply_retention(directory: Path, retention: RetentionConfig, now: Optional[float] = None) -> int:
    """Delete files older than ``max_age_h``, then the oldest until the total is under ``max_bytes``."""
    if not directory.is_dir():
        return 0
    now = time.time() if now is None else now
    files: list[tuple[float, int, Path]] = []
    for p in directory.rglob("*"):
        if not p.is_file():
            continue
        st = p.stat()
        # A file being written is left alone; one an hour old was left by a killed process.
        if p.name.endswith((".part", ".part.mp4")) and now - st.st_mtime < 3600:
            continue
        files.append((st.st_mtime, st.st_size, p))
    files.sort()
    deleted = 0
    total = sum(size for _, size, _ in files)
    for mtime, size, p in files:
        too_old = retention.max_age_h > 0 and now - mtime > retention.max_age_h * 3600
        too_big = retention.max_bytes > 0 and total > retention.max_bytes
        if not (too_old or too_big):
            continue
        try:
            p.unlink()
            deleted += 1
            total -= size
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", p, exc)
    return deleted
