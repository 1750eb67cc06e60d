"""The stabilizer: heatmap peaks -> associated, filtered, tracked detections (pure numpy/scipy)."""

from .kalman import KalmanBoxFilter, KalmanNoise
from .one_euro import OneEuroFilter, one_euro_reference
from .peaks import Peak, TemporalSmoother, find_peaks
from .tracker import Stabilizer, Track, TrackerConfig

__all__ = ["find_peaks", "Peak", "TemporalSmoother", "KalmanBoxFilter", "KalmanNoise", "OneEuroFilter",
           "one_euro_reference", "Stabilizer", "Track", "TrackerConfig"]
