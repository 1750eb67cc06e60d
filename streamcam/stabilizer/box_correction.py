"""Size calibration of a detector's boxes before the stabilizer tracks them (pure numpy).

A CAM box's extent follows the blurred blob, not the object, so the stabilizer corrects its size
with a per-model fit (:func:`streamcam.evaluation.tracking.fit_box_correction`) before it
associates boxes with tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kalman


@dataclass(frozen=True)
class BoxCorrection:
    """Size calibration of the detector's boxes: ``log w' = a + b log w + c log h`` (and so for ``h'``).

    A CAM box's extent is not the object's: its width follows the blurred blob, not the
    body, so its error depends on the box size (too wide for small, distant people, too
    narrow for near ones with the default model). Fitted per model against ground truth
    on scenes other than the evaluation's (``python -m streamcam.evaluation.tracking
    --fit-box-correction``); the centre is kept. The default is the identity.
    """

    width: tuple[float, ...] = (0.0, 1.0, 0.0)
    """``(a, b, c)`` of ``log w' = a + b log w + c log h``."""
    height: tuple[float, ...] = (0.0, 0.0, 1.0)
    """``(a, b, c)`` of ``log h' = a + b log w + c log h``."""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if len(v) != 3 or not all(np.isfinite(float(c)) for c in v):
                raise ValueError(f"BoxCorrection.{name}: expected 3 finite numbers (a, b, c), got {v!r}")

    @property
    def is_identity(self) -> bool:
        return tuple(self.width) == (0.0, 1.0, 0.0) and tuple(self.height) == (0.0, 0.0, 1.0)

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """Corrected boxes ``[M, 4]`` (same centres; sides below 1 px are taken as 1 px)."""
        if self.is_identity or not len(boxes):
            return boxes
        z = kalman.box_to_z(boxes)
        lw, lh = np.log(np.maximum(z[:, 2], 1.0)), np.log(np.maximum(z[:, 3], 1.0))
        (aw, bw, cw), (ah, bh, ch) = self.width, self.height
        z[:, 2] = np.exp(aw + bw * lw + cw * lh)
        z[:, 3] = np.exp(ah + bh * lw + ch * lh)
        return kalman.z_to_box(z)
