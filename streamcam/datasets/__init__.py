"""Datasets: frames with ground truth that the capture, training and evaluation rooms draw from.

* :mod:`.synthetic` — the synthetic thermal (IR) surveillance scene (:class:`SyntheticIRScene`):
  deterministic, random-access frames with ground-truth boxes and ids; its two looks are
  :mod:`.synthetic_classic` and :mod:`.synthetic_lwir`. The capture room's ``synthetic``
  source plays it as a live stream.

Nothing is imported here: the scene loads OpenCV.
"""
