"""streamcam: real-time localized detection from live video with Class Activation Maps.

Importing this package is light on purpose: torch, tensorrt, pycuda and onnxruntime
are imported by the backends that need them, when they are chosen.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
