"""``streamcam label``: label your own footage in a browser, without another tool.

* :mod:`.labels`  the validated labels (frame ranges -> class, validation frames with boxes);
* :mod:`.writer`  labels -> OUT_DIR (training folder, VAL.json, labels.yaml, the session), pure;
* :mod:`.server`  the HTTP server around it (frames by index, the page, Save), loopback by default;
* ``page.html``   the page: scrub, mark ranges, draw boxes; self-contained (works offline).

Frames come from :class:`streamcam.capture.indexed.IndexedFrames` (video file, image folder,
thermal sequence). Nothing is imported here: ``import streamcam.labelling`` stays light.
"""
