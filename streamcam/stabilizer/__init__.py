"""The stabilizer: heatmap peaks -> associated, filtered, tracked detections (pure numpy/scipy).

The names below are loaded on first use: ``streamcam.config`` reads ``StabilizerConfig`` from
:mod:`.config` in every stage, and scipy (~0.6 s) should load only where tracks are made.

* :mod:`.box_correction` — the per-model size calibration of candidate boxes
* :mod:`.config` — the stabilizer's settings, the config's ``stabilizer:`` section (numpy-only)
* :mod:`.stabilizer` — the :class:`Stabilizer` (association, lifecycle, publishing)
* :mod:`.kalman`, :mod:`.one_euro`, :mod:`.peaks`, :mod:`.clock` — its filters, heatmap peaks, clock
* :mod:`.order` — results in ``seq`` order per stream (the scaled-out stabilizer stage)
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"find_peaks": "peaks", "Peak": "peaks", "KalmanBoxFilter": "kalman", "KalmanNoise": "kalman",
          "OneEuroFilter": "one_euro", "one_euro_reference": "one_euro", "Stabilizer": "stabilizer",
          "Track": "stabilizer", "StabilizerConfig": "config", "BoxCorrection": "box_correction"}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
