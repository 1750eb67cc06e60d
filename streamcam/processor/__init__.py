"""streamcam.processor."""
