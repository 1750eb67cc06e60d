"""Per-frame detections → tracked detections: the Detector plus one Stabilizer per stream.

Shared by the live processor and `streamcam detect`, so a recorded file gets the
same track ids the live pipeline would publish.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from ..stabilizer.config import StabilizerConfig
from ..protocol import Detection
from .detector import Detector, FrameResult


class _StreamStabilizer:
    """One stream's stabilizer and the clock its dynamics run on."""

    def __init__(self, config: Any) -> None:
        from ..stabilizer.clock import StreamClock
        from ..stabilizer.stabilizer import Stabilizer

        self.stabilizer = Stabilizer(config)
        self.clock = StreamClock()


class StreamTracks:
    """The per-stream state after a detector: one Stabilizer per stream, fed each result's candidates.

    ``track(stream, result, frame_size, t_capture_ns) -> (FrameResult, tracks)``. Held by the processor
    (inside :class:`StabilizedDetector`) or, scaled out, by the stabilizer stage after the stateless
    workers; both need only what a result message carries (detections, the map, the probabilities).
    ``label`` / ``class_index``: the first chosen class, whose map's peaks are candidates (input: peaks).
    ``faces``: face-mode results (a track is a face; its label, the emotion, changes freely).
    """

    def __init__(self, config: StabilizerConfig, label: str, class_index: int, min_score: float,
                 box_correction: Any = None, faces: bool = False, live: bool = False, max_streams: int = 64) -> None:
        from ..bounded import StreamTable

        self.live = live
        if faces:
            # Face mode has no whole-frame class map to find peaks in: track its face boxes. A track is a
            # face; its label (the emotion) changes from frame to frame without starting another track.
            config = dataclasses.replace(config, input="boxes", gate_labels=False)
        # The box-size correction belongs to the model's boxes: the model's own unless the config sets one.
        config = config.for_model(box_correction)
        self.config = config
        self.label = label
        self.class_index = class_index
        # Hysteresis needs the weak candidates too: a confirmed track is sustained by scores
        # down to score_leave, so candidates are gated there, not at processor.min_score
        # (which still gates the detector when the stabilizer is off).
        self.candidate_min_score = min(min_score, config.score_leave) if config.enabled else min_score
        self.streams: StreamTable[_StreamStabilizer] = StreamTable(
            max_streams, lambda _stream: _StreamStabilizer(self.config))

    @classmethod
    def for_detector(cls, detector: Any, config: StabilizerConfig, live: bool = False,
                     max_streams: int = 64) -> "StreamTracks":
        """The tracks a detector's results feed (its first class, its model's box-size correction)."""
        meta = getattr(detector, "meta", None)
        faces = not isinstance(detector, Detector)  # no class map: its boxes are the candidates
        label, index = ("", 0) if faces else (detector.class_names[0], detector.class_indices[0])
        return cls(config, label, index, detector.min_score,
                   getattr(meta, "box_correction", None), faces=faces,
                   live=live, max_streams=max_streams)

    def _stabilizer(self, stream: str, t_capture_ns: int):
        """The stream's stabilizer and the dynamics time (s) of a frame captured at ``t_capture_ns``."""
        st = self.streams.get(stream)
        return st.stabilizer, st.clock(t_capture_ns, time.monotonic_ns() if self.live else None)

    @property
    def clock_steps(self) -> int:
        """Capture-clock steps the streams' clocks re-anchored over (the streams still held)."""
        return sum(st.clock.steps for st in self.streams.values())

    def _peaks(self, result: FrameResult, frame_size: tuple[int, int]) -> list[Detection]:
        from ..stabilizer.peaks import find_peaks

        if result.cam is None:
            return []
        p = float(result.probs[self.class_index])
        if p < self.candidate_min_score:
            return []
        return [Detection(tuple(pk.box), p * float(pk.value), self.label)  # type: ignore[arg-type]
                for pk in find_peaks(result.cam, frame_size)]

    def candidates(self, result: FrameResult, frame_size: tuple[int, int]) -> list[Detection]:
        """What the stabilizer is fed for one frame: the detector's boxes, or the CAM's peaks."""
        return self._peaks(result, frame_size) if self.config.input == "peaks" else list(result.detections)

    def track(self, stream: str, result: FrameResult, frame_size: tuple[int, int], t_capture_ns: int
              ) -> tuple[FrameResult, list[dict[str, Any]]]:
        """The stabilizer step on a detector's ``result`` (detected at the candidate gate,
        ``candidate_min_score``): tracked detections and the published tracks."""
        if not self.config.enabled:
            return result, []
        t0 = time.perf_counter()
        stab, t_dyn = self._stabilizer(stream, t_capture_ns)
        tracked = stab.update(self.candidates(result, frame_size), t_dyn, frame_size)
        tracks = stab.trails()
        timings = dict(result.timings_ms, track=(time.perf_counter() - t0) * 1e3)
        return dataclasses.replace(result, detections=tracked, timings_ms=timings), tracks

    def predict(self, stream: str, last: FrameResult, frame_size: tuple[int, int], t_capture_ns: int
                ) -> tuple[FrameResult, list[dict[str, Any]]]:
        """A frame the network skips (``processor.detect_every``): the stabilizer's predicted tracks,
        with the last detected frame's map and probabilities (engine time 0)."""
        t0 = time.perf_counter()
        if self.config.enabled:
            stab, t_dyn = self._stabilizer(stream, t_capture_ns)
            detections = stab.predict(t_dyn, frame_size)
            tracks = stab.trails()
        else:
            detections, tracks = list(last.detections), []
        timings = {"preprocess": 0.0, "engine": 0.0, "cam": 0.0, "track": (time.perf_counter() - t0) * 1e3}
        timings["total"] = timings["track"]
        return dataclasses.replace(last, detections=detections, timings_ms=timings), tracks


class StabilizedDetector:
    """``process(stream, image, pixel_format, t_capture_ns) -> (FrameResult, tracks)``.

    ``live``: the dynamics run on capture times anchored to this host's monotonic clock
    (:class:`~streamcam.stabilizer.clock.StreamClock`), so a wall-clock step or a late frame
    never makes time run backwards; offline (a file), on the capture times alone.
    ``max_streams``: streams with a stabilizer; the least recently seen is evicted past it.
    """

    def __init__(self, detector: Detector, config: StabilizerConfig, live: bool = False,
                 max_streams: int = 64) -> None:
        self.detector = detector
        self.live = live
        self.tracks = StreamTracks.for_detector(detector, config, live=live, max_streams=max_streams)
        self.config = self.tracks.config
        self.candidate_min_score = self.tracks.candidate_min_score
        self.streams = self.tracks.streams
        self.track = self.tracks.track
        self.predict = self.tracks.predict
        self.candidates = self.tracks.candidates

    @property
    def clock_steps(self) -> int:
        """Capture-clock steps the streams' clocks re-anchored over (the streams still held)."""
        return self.tracks.clock_steps

    def process(self, stream: str, image: np.ndarray, pixel_format: str, t_capture_ns: int
                ) -> tuple[FrameResult, list[dict[str, Any]]]:
        if not self.tracks.live and hasattr(self.detector, "clock"):
            # a file's backgrounds sample by its own time, not by how fast this machine reads it
            self.detector.clock = lambda: t_capture_ns / 1e9
        result = self.detector.detect(image, pixel_format, min_score=self.candidate_min_score, stream=stream)
        h, w = image.shape[:2]
        return self.track(stream, result, (w, h), t_capture_ns)

    def detect_batch(self, frames: list[tuple[str, np.ndarray, str, int]]) -> list[FrameResult]:
        """The detector's results (before the stabilizer) for several ``(stream, image, pixel_format,
        t_capture_ns)`` frames, with one engine call when the detector batches
        (:meth:`Detector.detect_batch`), else one by one; :meth:`track` each in its stream's order."""
        batch = getattr(self.detector, "detect_batch", None)
        # A Detector subclass with its own detect() (the GPU frame path's OverlayDetector) is not
        # batched by the inherited detect_batch: it runs frame by frame.
        if batch is None or type(self.detector).detect is not Detector.detect or len(frames) == 1:
            return [self.detector.detect(image, pf, min_score=self.candidate_min_score, stream=stream)
                    for stream, image, pf, _ in frames]
        return batch([f[1] for f in frames], [f[2] for f in frames], min_score=self.candidate_min_score,
                     streams=[f[0] for f in frames])
