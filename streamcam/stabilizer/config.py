"""The stabilizer's settings (:class:`StabilizerConfig`, the config's ``stabilizer:`` section), numpy-only.

Apart from :mod:`.stabilizer` so that ``streamcam.config``, read by every stage, loads the settings
without the stabilizer itself (scipy's assignment solver, ~0.6 s of imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .box_correction import BoxCorrection
from .kalman import KalmanNoise


@dataclass(frozen=True)
class StabilizerConfig:
    """Steady, tracked detections from per-frame CAM candidates (units: pixels, seconds, frames)."""

    enabled: bool = True
    """Track detections across frames: stable track_ids, no flicker, no jitter."""
    input: Literal["boxes", "peaks"] = "boxes"
    """Candidates per frame: the CAM box rule's boxes, or heatmap peaks (one box per peak basin)."""

    max_distance: float = 1.0
    """Gate: centre distance / box size above which a candidate cannot be a track's."""
    min_iou: float = 0.0
    """Gate: IoU with the predicted box below which a pair is not considered (0 = distance gate only)."""
    iou_weight: float = 1.0
    """Weight of ``1 - IoU`` next to the normalised distance in the assignment cost."""
    hits_to_confirm: int = 3
    """n: strong hits before a track is published (a one- or two-frame false positive never is)."""
    max_tentative_misses: int = 1
    """A tentative track missing more frames than this is deleted."""
    max_misses: int = 10
    """m: frames a confirmed track coasts on its prediction before deletion (it keeps its id if found again)."""
    coast_publish: int = 1
    """Frames a coasting track is still published (bridges one-frame dropouts); after that it lives on
    unpublished until ``max_misses``: a prediction that long is more often a false box than a true one."""
    merge_keeps_own: bool = True
    """Tracks are matched to the candidates that are not merged blobs: a track inside a blob that the
    detector also boxed on its own keeps to its own box (False, as before: it rides on its prediction
    and its own box, unmatched, starts a second track on the same person)."""
    max_merged: int = 60
    """Frames a published track may ride on its prediction while hidden in one candidate box shared
    with other tracks (people crossing), before such frames count as misses (0: no merge handling)."""
    merge_min_hits: int = 15
    """Hits a track needs before a shared candidate may hide it: a young track's motion is too uncertain
    to ride on, and duplicates and false tracks are young."""
    score_enter: float = 0.5
    """High hysteresis threshold: score a candidate needs to start or confirm a track."""
    score_leave: float = 0.25
    """Low hysteresis threshold: score still sustaining a confirmed track; below, candidates are ignored."""
    score_smoothing: float = 0.3
    """Weight of a new score in the track score's exponential average."""
    coast_score_decay: float = 0.85
    """Published score factor per missed frame while coasting."""
    one_euro_min_cutoff: float = 2.0
    """One-euro cutoff (Hz) at rest: lower = steadier boxes when the object is still."""
    one_euro_beta: float = 0.05
    """One-euro speed coefficient (1/px): higher = less lag when the object moves fast."""
    one_euro_d_cutoff: float = 1.0
    """One-euro cutoff (Hz) of the speed estimate."""
    box_correction: BoxCorrection | None = None
    """Size calibration applied to every candidate box before tracking. None (the default): the
    model's own (its metadata's ``box_correction``, fitted to that model's boxes), identity if it
    has none; a value here overrides the model's (``{}``: identity, whatever the model says)."""
    kalman: KalmanNoise = field(default_factory=KalmanNoise)
    """Noise model of the constant-velocity Kalman filter (see streamcam.stabilizer.kalman)."""
    trail_length: int = 20
    """Centres kept per track for drawing its trail."""
    default_label: str = "person"
    """Label given to inputs without one (heatmap peaks)."""
    gate_labels: bool = True
    """A track keeps to one label: a candidate of another label never continues it. False: the label is
    an attribute of the object (a face's emotion), taken from the latest candidate the track matched;
    face mode sets it, so one face is one track whatever its emotion does."""
    publish_outside: bool = False
    """Publish coasting tracks whose predicted centre left the frame (needs frame_size in update)."""

    def for_model(self, model_correction: dict | None) -> "StabilizerConfig":
        """This config with ``box_correction`` decided: its own if set, else ``model_correction``
        (a model metadata's ``{"width": (a, b, c), "height": (a, b, c)}``), else identity."""
        if self.box_correction is not None:
            return self
        bc = BoxCorrection(**{k: tuple(v) for k, v in model_correction.items()}) if model_correction else BoxCorrection()
        return replace(self, box_correction=bc)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"StabilizerConfig.{name}: expected {why}, got {getattr(self, name)!r}")

        if self.input not in ("boxes", "peaks"):
            raise bad("input", "'boxes' or 'peaks'")
        if not self.max_distance > 0:
            raise bad("max_distance", "> 0")
        if not 0.0 <= self.min_iou < 1.0:
            raise bad("min_iou", "0 <= min_iou < 1")
        if self.iou_weight < 0:
            raise bad("iou_weight", ">= 0")
        for name in ("hits_to_confirm", "trail_length", "merge_min_hits"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "an integer >= 1")
        for name in ("max_misses", "max_tentative_misses", "max_merged", "coast_publish"):
            if int(getattr(self, name)) < 0:
                raise bad(name, "an integer >= 0")
        if not self.score_leave <= self.score_enter:
            raise ValueError(f"StabilizerConfig: expected score_leave <= score_enter, got "
                             f"{self.score_leave} > {self.score_enter}")
        if not 0.0 < self.score_smoothing <= 1.0:
            raise bad("score_smoothing", "0 < x <= 1")
        if not 0.0 <= self.coast_score_decay <= 1.0:
            raise bad("coast_score_decay", "0 <= x <= 1")
        if self.one_euro_min_cutoff <= 0 or self.one_euro_d_cutoff <= 0:
            raise ValueError("StabilizerConfig: expected one_euro_min_cutoff > 0 and one_euro_d_cutoff > 0, got "
                             f"{self.one_euro_min_cutoff}, {self.one_euro_d_cutoff}")
        if self.one_euro_beta < 0:
            raise bad("one_euro_beta", ">= 0")
