"""Moved: the synthetic IR scene is a dataset, :mod:`streamcam.datasets.synthetic`.

Kept so that ``from streamcam.capture.synthetic import SyntheticIRScene`` in scripts and
notebooks written before the move still works; new code imports the dataset.
"""

from ..datasets.synthetic import LABELS, SceneFrame, SceneObject, SyntheticIRScene

__all__ = ["LABELS", "SceneFrame", "SceneObject", "SyntheticIRScene"]
